"""Adapting a pretrained network to the target task: what to copy, what to train, how fast.

The methods of chapter 6, each a small function over the course's building blocks
(``freeze``, ``layerwise_lr_groups``, ``train_one_epoch``):

* ``copy_first_layers``: the layer-by-layer experiment of Yosinski et al. (2014):
  copy the first n layers of the source, freeze them or not, train the rest.
* ``fine_tune``, ``linear_probe``, ``lp_ft``: full fine-tuning, feature extraction,
  and linear-probe-then-fine-tune (Kumar et al., 2022).
* ``unfreezing_stages``, ``gradual_unfreezing``: ULMFiT's gradual unfreezing with
  discriminative learning rates (Howard & Ruder, 2018).

How far the weights may move from the source's (L2-SP) is ``tlcourse.regularise``; the
sources come from ``tlcourse.sources.train_source``.

Example:
    >>> import tlcourse as tl
    >>> list(tl.unfreezing_stages(tl.LeNet(), ["conv1", "conv2", "fc1", "fc2"]))  # head first, then downwards
    [['fc2'], ['fc1', 'fc2'], ['conv2', 'fc1', 'fc2'], ['conv1', 'conv2', 'fc1', 'fc2']]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .loaders import DeviceLoader
from .train import train_one_epoch
from .freezing import freeze, freeze_all_but, layerwise_lr_groups, trainable_parameters, unfreeze
from .names import Names, check_names
from .transfer import TransferReport, transfer_weights

__all__ = ["copy_first_layers", "fine_tune", "fine_tune_budget", "linear_probe", "lp_ft", "unfreezing_stages", "gradual_unfreezing"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


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


def fine_tune_budget(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, min_steps: int,
                     batch_size: int, lr: float, seed: int, device: torch.device,
                     loss_fn: LossFn = F.cross_entropy) -> list[float]:
    """``fine_tune`` on a label budget of uint8 images: ``epochs`` passes, more if they make fewer than ``min_steps`` steps.

    A budget of 5 labels per class is one batch: ``epochs`` passes alone would be a handful of
    Adam steps. Batches of ``batch_size`` (the whole budget if smaller), seeded, the last
    incomplete one dropped (``tl.DeviceLoader``).

    Example:
        >>> x, y = torch.zeros(8, 1, 28, 28, dtype=torch.uint8), torch.arange(8) % 2
        >>> len(fine_tune_budget(tl.LeNet(), x, y, epochs=1, min_steps=3, batch_size=4, lr=1e-3, seed=0,
        ...                      device=torch.device("cpu")))  # 2 steps per pass: 2 passes for 3 steps
        2
    """
    loader = DeviceLoader(x, y, batch_size=min(batch_size, len(y)), device=device, seed=seed, drop_last=True)
    return fine_tune(model, loader, epochs=max(epochs, math.ceil(min_steps / len(loader))), lr=lr, device=device,
                     loss_fn=loss_fn)


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
