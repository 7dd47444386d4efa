"""Adapting a pretrained network to the target task: what to train, how fast, and how far.

The methods of chapter 6, each a small function over the course's building blocks
(``freeze``, ``layerwise_lr_groups``, ``train_one_epoch``):

* ``copy_first_layers``: the layer-by-layer experiment of Yosinski et al. (2014):
  copy the first n layers of the source, freeze them or not, train the rest.
* ``fine_tune``, ``linear_probe``, ``lp_ft``: full fine-tuning, feature extraction,
  and linear-probe-then-fine-tune (Kumar et al., 2022).
* ``unfreezing_stages``, ``gradual_unfreezing``: ULMFiT's gradual unfreezing with
  discriminative learning rates (Howard & Ruder, 2018).
* ``l2sp_penalty``, ``l2sp_loss``: L2-SP, weight decay towards the source weights
  instead of towards zero (Li et al., 2018).
* ``LeNetBN``: the document's CNN with BatchNorm, to see what freezing does to it.

``pretrained_lenet`` trains (once, then loads from a cache) the LeNet sources these
chapters start from; ``summarise_runs`` and ``describe_difference`` turn runs over
several seeds into a table and a sentence computed from the numbers.

Example:
    >>> import torch, tlcourse as tl
    >>> model = tl.LeNet()
    >>> anchor = tl.parameter_snapshot(model, exclude="fc2")
    >>> tl.l2sp_penalty(model, anchor, alpha=0.1, beta=0.0).item()
    0.0
"""

from __future__ import annotations

import hashlib
import html
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .config import Profile, get_profile
from .data import DATA_ENV, data_dir, dataset_tensors, load_dataset
from .loaders import DeviceLoader
from .files import ensure_writable
from .models import LeNet
from .session import dataset_title
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .train import evaluate, train_one_epoch
from .freezing import freeze, freeze_all_but, layerwise_lr_groups, trainable_parameters, unfreeze
from .names import Names, check_names
from .transfer import TransferReport, transfer_weights

__all__ = [
    "LeNetBN",
    "TrainedSource",
    "pretrained_lenet",
    "copy_first_layers",
    "fine_tune",
    "linear_probe",
    "lp_ft",
    "unfreezing_stages",
    "gradual_unfreezing",
    "parameter_snapshot",
    "l2sp_penalty",
    "l2sp_loss",
    "summarise_runs",
    "describe_difference",
    ]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class LeNetBN(LeNet):
    """``LeNet`` with a BatchNorm layer after each convolution (``bn1``, ``bn2``).

    The same layer names as ``LeNet`` otherwise, so ``transfer_weights`` between the two
    copies every tensor except the BatchNorm ones.

    Example:
        >>> LeNetBN()(torch.zeros(4, 1, 28, 28)).shape
        torch.Size([4, 10])
    """

    def __init__(self, *, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> None:
        super().__init__(in_channels=in_channels, image_size=image_size, num_classes=num_classes)
        self.bn1 = nn.BatchNorm2d(10)
        self.bn2 = nn.BatchNorm2d(20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (B, 10, (S-4)/2, (S-4)/2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # (B, 20, side, side)
        x = F.relu(self.fc1(x.flatten(1)))  # (B, 50)
        return self.fc2(x)  # (B, num_classes)


# --- the source networks -------------------------------------------------------------------------


@dataclass
class TrainedSource:
    """A source network trained by ``pretrained_lenet``, with what it was trained on."""

    model: nn.Module  # the trained network, in eval mode, on the requested device
    dataset: str  # "mnist", "fashion_mnist" or "cifar10"
    test_accuracy: float  # on the profile's test subset of that dataset
    train_images: int  # how many training images it saw
    epochs: int  # passes over them
    path: Path  # the cached checkpoint
    loaded: bool  # True: read from the cache; False: trained just now
    seconds: float  # time to train or load

    def __repr__(self) -> str:
        how = f"loaded from {self.path}" if self.loaded else f"trained in {self.seconds:.1f} s, saved to {self.path}"
        return (f"{type(self.model).__name__} trained on {dataset_title(self.dataset)}: test accuracy "
                f"{100 * self.test_accuracy:.1f}% ({self.train_images:,} training images, {self.epochs} epochs; {how})")

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(repr(self))}</p>"


def _fingerprint(*parts: object) -> str:
    """Short SHA-1 of tensors and plain values: names a cache file after exactly what made it."""
    h = hashlib.sha1()
    for p in parts:
        h.update(p.numpy().tobytes() if isinstance(p, torch.Tensor) else repr(p).encode())
    return h.hexdigest()[:12]


def pretrained_lenet(
    dataset: str = "mnist",
    *,
    profile: Profile | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
    batch_norm: bool = False,
    epochs: int | None = None,
    lr: float = 2e-3,
    cache: bool = True,
) -> TrainedSource:
    """Train a LeNet source on a digit-sized dataset once; later calls load it from a cache.

    The network trains with Adam on ``profile.train_size`` training images (all if
    ``None``), inputs in [0, 1] without normalisation. The cache file in
    ``data_dir()/checkpoints/`` is named after a hash of the training images, labels and
    settings, so a change in any of them (real vs stand-in data included) trains anew.
    Training is seeded: a cached and a freshly trained source are identical on the CPU.

    Args:
        dataset: ``"mnist"`` or ``"fashion_mnist"`` (a 1×28×28 LeNet), or ``"cifar10"`` (3×32×32).
        profile: sizes; default ``get_profile()``.
        device: where the returned model lives (training runs there too).
        seed: initialisation, data order, and which images a ``train_size`` limit keeps.
        batch_norm: train a ``LeNetBN`` instead of a ``LeNet``.
        epochs: passes over the data; default ``max(profile.source_epochs, 5)``, so that every
            profile's source learns (quick: over 90% on the real MNIST sample, in seconds).
        lr: Adam's learning rate.
        cache: load / save the checkpoint.

    Raises:
        OutputNotWritableError: it must be trained but the cache folder cannot be written
            (checked before training).

    Example:
        >>> src = pretrained_lenet("mnist", profile=tl.get_profile("quick"))  # doctest: +SKIP
        >>> src.model.fc2.out_features                                       # doctest: +SKIP
        10
    """
    p = profile or get_profile()
    device = torch.device(device)
    epochs = epochs if epochs is not None else max(p.source_epochs, 5)
    x, y = dataset_tensors(load_dataset(dataset, train=True, profile=p), limit=p.train_size, seed=seed)
    xt, yt = dataset_tensors(load_dataset(dataset, train=False, profile=p), limit=p.test_size, seed=seed)
    arch = LeNetBN if batch_norm else LeNet
    key = _fingerprint(x, y, arch.__name__, seed, epochs, lr, p.batch_size)
    path = data_dir() / "checkpoints" / f"source-{arch.__name__.lower()}-{dataset}-{key}.pt"

    def fresh() -> nn.Module:
        with torch.random.fork_rng(devices=[]):  # the caller's random stream is the same, cached or not
            torch.manual_seed(seed)
            return arch(in_channels=x.shape[1], image_size=x.shape[-1]).to(device)

    model = fresh()
    test = DeviceLoader(xt, yt, batch_size=512, device=device, shuffle=False)
    t0 = time.perf_counter()
    loaded = False
    if cache and path.is_file():
        try:
            load_checkpoint(path, model=model, map_location=device)
            loaded = True
        except CheckpointError:  # damaged or foreign file: train again (from scratch) and overwrite it
            model = fresh()
    if not loaded:
        if cache:  # checked before training: an unwritable folder costs a second, not the training
            ensure_writable(path.parent, what="the trained source (cache=False trains it without saving)",
                            env=DATA_ENV)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        train = DeviceLoader(x, y, batch_size=p.batch_size, device=device, seed=seed)
        for epoch in range(epochs):
            train.set_epoch(epoch)
            train_one_epoch(model, train, opt, device, progress=False)
        if cache:
            save_checkpoint(path, model=model, epoch=epochs)
    acc = evaluate(model, test, device)["accuracy"]
    return TrainedSource(model, dataset, acc, len(y), epochs, path, loaded, time.perf_counter() - t0)


# --- which layers to copy and train ------------------------------------------------------------


def _flatten(layers: Sequence[Names]) -> list[str]:
    """Layer entries (a prefix, or a list of prefixes forming one layer) as one flat list of prefixes."""
    return [p for entry in layers for p in ([entry] if isinstance(entry, str) else entry)]


def copy_first_layers(source: nn.Module, target: nn.Module, n: int, *, layers: Sequence[Names],
                      freeze_copied: bool = True) -> TransferReport:
    """Copy the first ``n`` layers of ``source`` into ``target``; optionally freeze them.

    Yosinski et al. (2014) call a network with the first n layers copied from task A and
    frozen "AnB", and with them copied and then fine-tuned "AnB+". ``n = 0`` leaves the
    target as it is (training from scratch); ``n = len(layers)`` copies the head as well.

    Args:
        source: the trained network.
        target: a network of the same architecture (modified in place).
        n: how many layers to copy, counted from the input.
        layers: module-name prefixes from input to output; an entry may be a list of
            prefixes that form one layer, e.g. ``["conv1", "bn1"]``.
        freeze_copied: freeze the copied layers (AnB) or leave them trainable (AnB+).

    Returns:
        The ``transfer_weights`` report (the layers not copied show as "in skip").

    Example:
        >>> report = copy_first_layers(tl.LeNet(), tl.LeNet(), 2, layers=["conv1", "conv2", "fc1", "fc2"])
        >>> report.copied
        ['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias']
    """
    if not 0 <= n <= len(layers):
        raise ValueError(f"n must be between 0 and {len(layers)}; got {n}")
    report = transfer_weights(source, target, skip=_flatten(layers[n:]))
    if freeze_copied and n > 0:
        freeze(target, _flatten(layers[:n]))
    return report


# --- training recipes --------------------------------------------------------------------------


def fine_tune(
    model: nn.Module,
    loader: Any,
    *,
    epochs: int,
    lr: float,
    device: torch.device,
    groups: list[dict] | None = None,
    loss_fn: LossFn = F.cross_entropy,
    weight_decay: float = 0.0,
) -> list[float]:
    """Train the trainable parameters of ``model`` with Adam for ``epochs`` passes; return the losses.

    Whatever is frozen stays frozen (and frozen BatchNorm layers stay in eval mode, as
    ``train_one_epoch`` ensures). With nothing trainable it trains nothing and returns ``[]``.

    Args:
        model: the network, on ``device``.
        loader: training batches (a ``DeviceLoader`` or any iterable of ``(x, y)``).
        epochs: passes over ``loader``.
        lr: Adam's learning rate (for ``groups`` without their own ``"lr"``).
        device: where the model lives.
        groups: optimiser param groups, e.g. from ``tl.layerwise_lr_groups``; default all
            trainable parameters at ``lr``.
        loss_fn: ``loss_fn(logits, y)``; ``l2sp_loss`` gives one with a penalty.
        weight_decay: Adam's (coupled) L2 weight decay towards zero.

    Example:
        >>> m = tl.LeNet(); data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
        >>> len(fine_tune(m, data, epochs=2, lr=1e-3, device=torch.device("cpu")))
        2
    """
    if groups is None:
        params = trainable_parameters(model)
        if not params:
            return []
        groups = [{"params": params}]
    opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    losses = []
    for epoch in range(epochs):
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        losses.append(train_one_epoch(model, loader, opt, device, loss_fn=loss_fn, progress=False)["loss"])
    return losses


def linear_probe(model: nn.Module, loader: Any, *, head: Names, epochs: int, lr: float,
                 device: torch.device) -> list[float]:
    """Feature extraction: freeze everything except ``head`` and train the head alone.

    BatchNorm layers in the frozen body are put in eval mode (``tl.freeze``), so the
    features the head sees do not drift while it learns.

    Args:
        model: the network with its new head, on ``device`` (modified in place).
        loader: training batches.
        head: module-name prefix(es) of the head, e.g. ``"fc2"``.
        epochs, lr: as in ``fine_tune``.
        device: where the model lives.

    Example:
        >>> m = tl.LeNet(); data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
        >>> _ = linear_probe(m, data, head="fc2", epochs=1, lr=1e-2, device=torch.device("cpu"))
        >>> [n for n, p in m.named_parameters() if p.requires_grad]
        ['fc2.weight', 'fc2.bias']
    """
    freeze_all_but(model, head)
    return fine_tune(model, loader, epochs=epochs, lr=lr, device=device)


def lp_ft(model: nn.Module, loader: Any, *, head: Names, probe_epochs: int, finetune_epochs: int,
          probe_lr: float, finetune_lr: float, device: torch.device) -> dict[str, list[float]]:
    """Linear probe, then fine-tune everything (LP-FT, Kumar et al., 2022).

    A random head sends large, random gradients into the pretrained body during the
    first steps of fine-tuning and distorts its features. Training the head first on
    frozen features (phase 1) means fine-tuning (phase 2, usually at a smaller learning
    rate) starts from a head that already fits, so the features change less.

    Args:
        model: the network with its new head, on ``device`` (modified in place).
        loader: training batches.
        head: module-name prefix(es) of the head.
        probe_epochs, probe_lr: phase 1, the head alone.
        finetune_epochs, finetune_lr: phase 2, every layer.
        device: where the model lives.

    Returns:
        ``{"probe": losses, "finetune": losses}``, one mean loss per epoch.

    Example:
        >>> m = tl.LeNet(); data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
        >>> out = lp_ft(m, data, head="fc2", probe_epochs=1, finetune_epochs=1, probe_lr=1e-2,
        ...             finetune_lr=1e-4, device=torch.device("cpu"))
        >>> sorted(out), all(p.requires_grad for p in m.parameters())
        (['finetune', 'probe'], True)
    """
    probe = linear_probe(model, loader, head=head, epochs=probe_epochs, lr=probe_lr, device=device)
    unfreeze(model)
    return {"probe": probe, "finetune": fine_tune(model, loader, epochs=finetune_epochs, lr=finetune_lr,
                                                  device=device)}


def unfreezing_stages(model: nn.Module, layers: Sequence[Names]) -> Iterator[list[str]]:
    """Gradual unfreezing: freeze all, then unfreeze one more layer per stage, from the top.

    Stage 0 makes only the last layer trainable, stage 1 the last two, and so on; each
    ``next()`` applies a stage to ``model`` and yields the names of the layers that are now
    trainable. Train between the ``next()`` calls.

    Args:
        model: the network (modified in place at every stage).
        layers: module-name prefixes from input to output; entries may be lists.

    Example:
        >>> m = tl.LeNet()
        >>> [stage for stage in unfreezing_stages(m, ["conv1", "conv2", "fc1", "fc2"])]
        [['fc2'], ['fc1', 'fc2'], ['conv2', 'fc1', 'fc2'], ['conv1', 'conv2', 'fc1', 'fc2']]
    """
    labels = [e if isinstance(e, str) else "+".join(e) for e in layers]
    check_names(_flatten(layers), [n for n, _ in model.named_parameters()], what="unfreezing_stages: layers")
    freeze(model)  # only once every layer is known to exist: a typo freezes nothing
    for i in reversed(range(len(layers))):
        unfreeze(model, layers[i])
        yield labels[i:]


def gradual_unfreezing(model: nn.Module, loader: Any, *, layers: Sequence[Names], epochs_per_stage: int,
                       lr: float, decay: float, device: torch.device) -> list[list[str]]:
    """ULMFiT's recipe: gradual unfreezing with discriminative learning rates.

    At each stage one more layer (from the top) becomes trainable and a new optimiser
    is built with ``tl.layerwise_lr_groups``: layer ``i`` of ``L`` learns at
    ``lr · decay^(L-1-i)``, so the head moves fastest and the first layer slowest.
    (ULMFiT also uses slanted triangular learning rates; this keeps a constant rate.)

    Args:
        model: the network with its new head, on ``device`` (modified in place).
        loader: training batches.
        layers: module-name prefixes from input to output.
        epochs_per_stage: epochs trained after each unfreezing.
        lr: learning rate of the last layer.
        decay: factor between neighbouring layers (ULMFiT used 1/2.6).
        device: where the model lives.

    Returns:
        The trainable layers at each stage.

    Example:
        >>> m = tl.LeNet(); data = [(torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,)))]
        >>> gradual_unfreezing(m, data, layers=["conv1", "conv2", "fc1", "fc2"], epochs_per_stage=1,
        ...                    lr=1e-3, decay=0.5, device=torch.device("cpu"))[1]
        ['fc1', 'fc2']
    """
    stages = []
    for trainable in unfreezing_stages(model, layers):
        stages.append(trainable)
        groups = layerwise_lr_groups(model, lr=lr, decay=decay, layers=layers)
        fine_tune(model, loader, epochs=epochs_per_stage, lr=lr, device=device, groups=groups)
    return stages


# --- L2-SP ---------------------------------------------------------------------------------------


def parameter_snapshot(model: nn.Module, *, exclude: Names = ()) -> dict[str, torch.Tensor]:
    """Detached copies of the parameters (not buffers) outside ``exclude``: L2-SP's anchor w⁰.

    Take it right after copying the source weights in, excluding the new head.

    Example:
        >>> sorted(parameter_snapshot(tl.LeNet(), exclude=["fc1", "fc2"]))
        ['conv1.bias', 'conv1.weight', 'conv2.bias', 'conv2.weight']
    """
    skip = check_names(_flatten([exclude]), [n for n, _ in model.named_parameters()],
                       what="parameter_snapshot: exclude")
    return {n: p.detach().clone() for n, p in model.named_parameters()
            if not any(n == s or n.startswith(s + ".") for s in skip)}


def l2sp_penalty(model: nn.Module, anchor: Mapping[str, torch.Tensor], *, alpha: float,
                 beta: float) -> torch.Tensor:
    """The L2-SP regulariser of Li et al. (2018).

    .. math:: Ω(w) = \\frac{α}{2} \\lVert w_S - w^0_S \\rVert^2 + \\frac{β}{2} \\lVert w_{\\bar S} \\rVert^2

    where ``w_S`` are the parameters named in ``anchor`` (copied from the source, with
    their source values ``w⁰``) and ``w_S̄`` all other *trainable* parameters (the new
    head). Its gradient is ``α (w − w⁰)`` on the first and ``β w`` on the second: plain
    weight decay, but pulling the transferred weights back to the source instead of to 0.
    Frozen parameters are left out (they cannot move).

    Args:
        model: the network being fine-tuned.
        anchor: ``{name: w⁰}``, e.g. from ``parameter_snapshot``.
        alpha: strength of the pull towards the source weights.
        beta: ordinary L2 strength on the new parameters.

    Returns:
        A scalar tensor that ``backward()`` can differentiate.

    Example:
        >>> m = tl.LeNet(); anchor = parameter_snapshot(m, exclude="fc2")
        >>> with torch.no_grad(): _ = m.conv1.weight.add_(1.0)  # 250 weights, each 1 away
        >>> round(l2sp_penalty(m, anchor, alpha=0.1, beta=0.0).item(), 4)
        12.5
    """
    total = torch.zeros((), device=next(model.parameters()).device)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name in anchor:
            w0 = anchor[name].to(p.device)
            if w0.shape != p.shape:
                raise ValueError(f"anchor {name} has shape {tuple(w0.shape)}, the parameter {tuple(p.shape)}")
            total = total + 0.5 * alpha * (p - w0).pow(2).sum()
        elif beta:
            total = total + 0.5 * beta * p.pow(2).sum()
    return total


def l2sp_loss(model: nn.Module, anchor: Mapping[str, torch.Tensor], *, alpha: float, beta: float,
              loss_fn: LossFn = F.cross_entropy) -> LossFn:
    """A ``loss_fn(logits, y)`` for ``train_one_epoch`` / ``fine_tune``: the task loss plus L2-SP.

    Use it for training only; evaluate with the plain task loss.

    Example:
        >>> m = tl.LeNet(); loss = l2sp_loss(m, parameter_snapshot(m, exclude="fc2"), alpha=0.1, beta=0.01)
        >>> loss(m(torch.zeros(2, 1, 28, 28)), torch.tensor([0, 1])).ndim
        0
    """

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss_fn(logits, y) + l2sp_penalty(model, anchor, alpha=alpha, beta=beta)

    return loss


# --- results over seeds --------------------------------------------------------------------------


def summarise_runs(runs: pd.DataFrame | Sequence[Mapping[str, Any]], *, by: str | Sequence[str] = "method",
                   value: str = "accuracy", percent: bool = True) -> pd.DataFrame:
    """One row per method: mean, spread (sample std over seeds), min, max and the number of runs.

    Rows keep the order in which methods first appear. ``"mean ± std"`` is a display column.

    Args:
        runs: one row per run, with the columns ``by`` and ``value`` (and usually ``seed``).
        by: the column(s) that name a method.
        value: the measurement.
        percent: show the display column in percent (for accuracies in [0, 1]).

    Example:
        >>> t = summarise_runs([{"method": "a", "seed": 0, "accuracy": 0.5},
        ...                     {"method": "a", "seed": 1, "accuracy": 0.7}])
        >>> t.loc["a", "mean ± std"]
        '60.0 ± 14.1'
    """
    df = pd.DataFrame(runs)
    keys = [by] if isinstance(by, str) else list(by)
    g = df.groupby(keys, sort=False)[value]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "min": g.min(), "max": g.max(), "runs": g.count()})
    scale = 100 if percent else 1
    out["mean ± std"] = [f"{scale * m:.1f} ± {scale * s:.1f}" if not math.isnan(s) else f"{scale * m:.1f}"
                         for m, s in zip(out["mean"], out["std"])]
    return out


def describe_difference(table: pd.DataFrame, a: str, b: str, *, what: str = "accuracy",
                        percent: bool = True) -> str:
    """A sentence comparing methods ``a`` and ``b`` of a ``summarise_runs`` table, from its numbers.

    The difference of the means counts as clear only when it is larger than the larger
    of the two seed-to-seed spreads; otherwise the sentence says the runs cannot tell.

    Example:
        >>> t = summarise_runs([{"method": m, "seed": s, "accuracy": v} for m, s, v in
        ...                     [("a", 0, 0.80), ("a", 1, 0.82), ("b", 0, 0.60), ("b", 1, 0.62)]])
        >>> describe_difference(t, "a", "b")
        'a: 81.0% vs b: 61.0% accuracy, a is higher by 20.0 points, more than the seed-to-seed spread (1.4 points).'
    """
    scale, unit = (100, "%") if percent else (1, "")
    pts = "points" if percent else ""
    ma, mb = table.loc[a, "mean"], table.loc[b, "mean"]
    spread = max(0.0 if math.isnan(s) else s for s in (table.loc[a, "std"], table.loc[b, "std"]))
    diff = ma - mb
    head = f"{a}: {scale * ma:.1f}{unit} vs {b}: {scale * mb:.1f}{unit} {what}"
    if int(table.loc[a, "runs"]) < 2 or int(table.loc[b, "runs"]) < 2:
        return f"{head}; with one run each there is no spread to judge the difference by."
    digits = 1 if f"{scale * abs(diff):.1f}" != f"{scale * spread:.1f}" else 3  # never "3.7, more than 3.7"
    unit_pts = f" {pts}" if pts else ""
    spread_txt = f"{scale * spread:.{digits}f}{unit_pts}"
    if abs(diff) > spread:
        word = "higher" if diff > 0 else "lower"
        return (f"{head}, {a} is {word} by {scale * abs(diff):.{digits}f}{unit_pts}, "
                f"more than the seed-to-seed spread ({spread_txt}).")
    signed = f"{scale * diff:+.{digits}f}"
    signed = signed[1:] if float(signed) == 0 else signed  # "0.0", not "-0.0"
    return (f"{head}: a difference of {signed}{unit_pts}, within the seed-to-seed "
            f"spread ({spread_txt}); these runs cannot tell the two apart.")
