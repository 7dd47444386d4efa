"""The training loop as plain functions, and a ``History`` of each run.

``train_one_epoch`` and ``evaluate`` are a few lines each so a learner can read the
whole loop; ``fit`` strings them together, times each epoch and can checkpoint and
resume (with ``save_checkpoint`` / ``load_checkpoint`` from ``checkpoints``). A loader is
any iterable of ``(x, y)`` batches: a ``DataLoader``, or a ``DeviceLoader`` whose batches
already live on the device.

Example:
    >>> import torch, tlcourse as tl
    >>> data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
    >>> model = tl.LeNet()
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.01)
    >>> history = tl.fit(model, data, data, opt, epochs=2, device=torch.device("cpu"), progress=False)
    >>> len(history.train_loss)
    2
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import nn
from tqdm.auto import tqdm

from . import plots
from .checkpoints import load_checkpoint, save_checkpoint
from .freezing import keep_frozen_bn_eval
from .loaders import DeviceLoader

__all__ = ["History", "train_one_epoch", "evaluate", "accuracy_on", "fit"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class History:
    """Per-epoch metrics of a ``fit`` run.

    Example:
        >>> h = History(train_loss=[1.0], train_acc=[0.5], test_loss=[1.1], test_acc=[0.4], seconds=[2.0])
        >>> History.from_dict(h.to_dict()) == h
        True
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of each epoch (train + test)

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.train_loss)

    def to_dict(self) -> dict[str, list[float]]:
        """Plain dict of lists (what checkpoints store)."""
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> History:
        """The inverse of ``to_dict``."""
        return cls(**{k: list(d.get(k, [])) for k in cls.__dataclass_fields__})

    def plot(self, **kwargs: Any) -> Figure:
        """Learning curves; keyword arguments go to ``plot_history``."""
        return plots.plot_history(self, **kwargs)


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on CUDA GPUs that have it, else float16 on CUDA; None (no AMP) elsewhere."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _is_classification(logits: torch.Tensor, y: torch.Tensor) -> bool:
    """One class label per example (``y`` is ``(B,)``) and one score per class (``logits`` is ``(B, C)``).

    Not a regression (``(B,)`` outputs, e.g. a predicted rating), nor a target with several values
    per example (``(B, tasks)`` labels of a multi-task network, ``(B, 1 + C)`` of distillation).
    """
    return logits.dim() == 2 and y.dim() == 1


def _correct(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How many of a batch's predictions are right: the argmax class; nothing to count unless it is a classification."""
    return (logits.argmax(dim=1) == y).sum() if _is_classification(logits, y) else torch.zeros((), dtype=torch.long)


def _accuracy(last_logits: torch.Tensor, last_y: torch.Tensor, correct: torch.Tensor, seen: int) -> float:
    """Classification accuracy; NaN when there is no one class per example to be right about (see above)."""
    return correct.item() / seen if _is_classification(last_logits, last_y) else float("nan")


def train_one_epoch(
    model: nn.Module,
    loader: Batches,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    scaler: torch.amp.GradScaler | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    progress: bool = True,
) -> dict[str, float]:
    """Train for one pass over ``loader``; return the mean loss and accuracy on it.

    On CUDA the forward pass runs under autocast (bfloat16, or float16 with a
    ``GradScaler``); elsewhere in full precision. Loss and correct counts are summed
    on the device and read once at the end, so the GPU never waits for the host.

    Args:
        model: the network; BatchNorm layers frozen by ``freeze`` stay in eval mode.
        loader: ``(x, y)`` batches; ``x`` is moved to ``device`` (a no-op if already there).
        optimizer: built from the trainable parameters.
        device: where the model lives.
        scaler: a float16 ``GradScaler`` to reuse across epochs (made here if needed).
        loss_fn: ``loss_fn(logits, y)``, the mean over the batch.
        progress: show a progress bar.

    Example:
        >>> model = tl.LeNet(); opt = torch.optim.SGD(model.parameters(), lr=0.01)
        >>> batches = [(torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))]
        >>> sorted(train_one_epoch(model, batches, opt, torch.device("cpu"), progress=False))
        ['accuracy', 'loss']
    """
    model.train()
    keep_frozen_bn_eval(model)  # model.train() put frozen BatchNorm layers back in training mode
    amp_dtype = _autocast_dtype(device)
    if amp_dtype == torch.float16 and scaler is None:
        scaler = torch.amp.GradScaler("cuda")  # float16 gradients underflow without loss scaling
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    for x, y in tqdm(loader, desc="train", leave=False, disable=not progress):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(x)  # (B, num_classes)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total_loss += loss.detach().float() * len(y)  # mean -> sum over the batch
        correct += _correct(logits, y)
        seen += len(y)
    if seen == 0:
        raise ValueError("The training loader yielded no batches")
    return {"loss": total_loss.item() / seen, "accuracy": _accuracy(logits, y, correct, seen)}


def evaluate(
    model: nn.Module,
    loader: Batches,
    device: torch.device,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    progress: bool = False,
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on ``loader``, without gradients; leaves it in eval mode.

    Args:
        model: the network.
        loader: ``(x, y)`` batches.
        device: where the model lives.
        loss_fn: ``loss_fn(logits, y)``, the mean over the batch.
        progress: show a progress bar.

    Example:
        >>> model = nn.Linear(4, 2)  # zero weights, bias (1, 0): always predicts class 0
        >>> _ = nn.init.zeros_(model.weight), model.bias.data.copy_(torch.tensor([1.0, 0.0]))
        >>> evaluate(model, [(torch.randn(4, 4), torch.tensor([0, 0, 0, 1]))], torch.device("cpu"))["accuracy"]
        0.75
    """
    model.eval()
    amp_dtype = _autocast_dtype(device)
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen = 0
    with torch.inference_mode():
        for x, y in tqdm(loader, desc="eval", leave=False, disable=not progress):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(x)  # (B, num_classes)
            total_loss += loss_fn(logits.float(), y) * len(y)
            correct += _correct(logits, y)
            seen += len(y)
    if seen == 0:
        raise ValueError("The evaluation loader yielded no batches")
    return {"loss": total_loss.item() / seen, "accuracy": _accuracy(logits, y, correct, seen)}


def accuracy_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device | str, *,
                batch_size: int = 1024) -> float:
    """The accuracy of ``model`` on the inputs ``x`` with labels ``y``: ``evaluate`` over them in order.

    uint8 images ``(N, C, H, W)`` are scaled to [0, 1] on the device, as ``DeviceLoader`` does;
    any other tensor is fed to the model as it is.

    Example:
        >>> accuracy_on(nn.Identity(), torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 1]), "cpu")
        0.5
    """
    device = torch.device(device)
    if x.dtype == torch.uint8:
        batches = DeviceLoader(x, y, batch_size=batch_size, device=device, shuffle=False)
    else:
        batches = [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return evaluate(model, batches, device)["accuracy"]


def fit(
    model: nn.Module,
    train_loader: Batches,
    test_loader: Batches,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    device: torch.device,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
) -> History:
    """Train for ``epochs`` epochs, evaluating after each; return the ``History``.

    Args:
        model: the network, already on ``device``.
        train_loader: training batches; its ``set_epoch(e)`` is called if it has one.
        test_loader: evaluation batches.
        optimizer: built from the trainable parameters.
        epochs: total number of epochs (including those already done when resuming).
        device: where the model lives.
        scheduler: stepped once per epoch, e.g. ``CosineAnnealingLR(opt, T_max=epochs)``.
        checkpoint: a path; model, optimizer, scheduler, RNG state and history are
            saved there after every epoch.
        resume: if ``checkpoint`` exists, load it and continue after its last epoch
            (a finished run returns its stored history at once); if not, start afresh.
            A checkpoint with more than ``epochs`` epochs raises ``ValueError`` and loads nothing.
        progress: show progress bars.
        loss_fn: ``loss_fn(logits, y)``, the mean over the batch.

    Example:
        >>> model = tl.LeNet(); opt = torch.optim.SGD(model.parameters(), lr=0.01)
        >>> data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
        >>> fit(model, data, data, opt, epochs=1, device=torch.device("cpu"), progress=False).epochs
        1
    """
    history, start = History(), 0
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint=<path>")
    if resume and Path(checkpoint).exists():  # read once: checked, then loaded
        state = load_checkpoint(checkpoint, model=model, optimizer=optimizer, max_epoch=epochs)
        history, start = History.from_dict(state["history"] or {}), state["epoch"]
        extra = state["extra"]
        if scheduler is not None and "scheduler" in extra:
            scheduler.load_state_dict(extra["scheduler"])
        if "rng" in extra:
            torch.set_rng_state(extra["rng"])  # so shuffling and dropout continue as in one run
        if "cuda_rng" in extra and device.type == "cuda":
            torch.cuda.set_rng_state(extra["cuda_rng"], device)
    # One float16 loss scaler for the whole run, so its scale carries across epochs.
    scaler = torch.amp.GradScaler("cuda") if _autocast_dtype(device) == torch.float16 else None
    bar = tqdm(range(start, epochs), desc="epochs", leave=False, disable=not progress)
    for epoch in bar:
        if hasattr(train_loader, "set_epoch"):
            train_loader.set_epoch(epoch)  # the epoch's shuffle depends on the epoch, not on history
        t0 = time.perf_counter()
        train = train_one_epoch(model, train_loader, optimizer, device, scaler=scaler, loss_fn=loss_fn,
                                progress=progress)
        test = evaluate(model, test_loader, device, loss_fn=loss_fn, progress=progress)
        history.seconds.append(time.perf_counter() - t0)  # .item() in both synced the device
        history.train_loss.append(train["loss"])
        history.train_acc.append(train["accuracy"])
        history.test_loss.append(test["loss"])
        history.test_acc.append(test["accuracy"])
        bar.set_postfix(train_loss=f"{train['loss']:.3f}", test_acc=f"{test['accuracy']:.3f}")
        if scheduler is not None:
            scheduler.step()
        if checkpoint is not None:
            extra: dict[str, Any] = {"rng": torch.get_rng_state()}
            if device.type == "cuda":
                extra["cuda_rng"] = torch.cuda.get_rng_state(device)
            if scheduler is not None:
                extra["scheduler"] = scheduler.state_dict()
            save_checkpoint(checkpoint, model=model, optimizer=optimizer, epoch=epoch + 1,
                            history=history, extra=extra)
    return history
