"""Which parameters train, and how fast: freeze and unfreeze modules, optimiser param groups.

Every function here takes module names (``"conv1"``, ``["layer1", "fc"]``) and checks all
of them before it changes anything: a name that matches nothing in the model is a typo,
and the error names the nearest real names (``tl.UnknownNameError``, a ``ValueError``).

Example:
    >>> import tlcourse as tl
    >>> m = tl.LeNet()
    >>> tl.freeze(m, ["conv1", "cnv2"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tlcourse.names.UnknownNameError: freeze: names: 'cnv2' names no module or tensor (did you mean conv2, ...?). Nothing was changed.
    >>> all(p.requires_grad for p in m.parameters())  # conv1 was not frozen either
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from .names import Names, UnknownNameError, as_names, check_names, matches
from .tables import html_table, text_table

__all__ = [
    "freeze",
    "unfreeze",
    "freeze_all_but",
    "keep_frozen_bn_eval",
    "TrainableSummary",
    "trainable_summary",
    "trainable_parameters",
    "param_groups",
    "layerwise_lr_groups",
]

_FROZEN_BN = "_tlcourse_frozen_bn"  # flag freeze() sets on a BatchNorm module it put in eval mode


def _module_names(model: nn.Module, names: Names, *, what: str) -> list[str]:
    """``names`` as a list, after checking each names a module or parameter of ``model``."""
    available = [n for n, _ in model.named_modules() if n] + [n for n, _ in model.named_parameters()]
    prefixes = check_names(names, available, what=what)
    if not prefixes:
        raise UnknownNameError(f"{what}: no names given; pass None to mean the whole model. Nothing was changed.")
    return prefixes


def _freeze_unfreeze(model: nn.Module, names: Names | None, *, freeze: bool, bn_eval: bool, what: str) -> list[str]:
    """Set requires_grad (and frozen-BatchNorm state) for modules under ``names``; return parameter names."""
    prefixes = None if names is None else _module_names(model, names, what=what)

    def selected(name: str) -> bool:
        return prefixes is None or matches(name, prefixes)

    params = [(n, p) for n, p in model.named_parameters() if selected(n)]
    for _, p in params:
        p.requires_grad_(not freeze)
    for n, m in model.named_modules():
        if not (selected(n) and isinstance(m, _BatchNorm)):
            continue
        if freeze and bn_eval:
            m.eval()  # use running statistics, stop updating them
            setattr(m, _FROZEN_BN, True)  # so keep_frozen_bn_eval() can undo model.train()
        elif not freeze and getattr(m, _FROZEN_BN, False):
            delattr(m, _FROZEN_BN)
            m.train(model.training)
    return [n for n, _ in params]


def freeze(model: nn.Module, names: Names | None = None, *, bn_eval: bool = True) -> list[str]:
    """Stop training the modules under ``names`` (all of ``model`` if ``None``).

    Their parameters get ``requires_grad=False``. With ``bn_eval`` (the default) their
    BatchNorm layers are also put in eval mode: they normalise with their running
    statistics and stop updating them. ``model.train()`` would switch them back to
    training mode; ``train_one_epoch`` calls ``keep_frozen_bn_eval`` after it to undo
    that, and a hand-written loop should do the same. A name that matches nothing
    raises before anything is frozen.

    Args:
        model: the network (modified in place).
        names: module-name prefixes, e.g. ``["conv1", "conv2"]`` or ``"layer1"``.
        bn_eval: also freeze the running statistics of BatchNorm layers under ``names``.

    Returns:
        The names of the parameters that were frozen.

    Example:
        >>> freeze(tl.LeNet(), ["conv1", "conv2"])
        ['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias']
    """
    return _freeze_unfreeze(model, names, freeze=True, bn_eval=bn_eval, what="freeze: names")


def unfreeze(model: nn.Module, names: Names | None = None) -> list[str]:
    """Train the modules under ``names`` again (all if ``None``), BatchNorm statistics included.

    Args:
        model: the network (modified in place).
        names: module-name prefixes.

    Example:
        >>> m = tl.LeNet(); _ = freeze(m)
        >>> unfreeze(m, "fc2")
        ['fc2.weight', 'fc2.bias']
    """
    return _freeze_unfreeze(model, names, freeze=False, bn_eval=True, what="unfreeze: names")


def freeze_all_but(model: nn.Module, names: Names, *, bn_eval: bool = True) -> list[str]:
    """Freeze everything except the modules under ``names`` (e.g. a new head); return the trainable names.

    The names are checked first: with a typo among them, nothing is frozen.

    Args:
        model: the network (modified in place).
        names: module-name prefixes that stay trainable.
        bn_eval: freeze the running statistics of the frozen BatchNorm layers too.

    Example:
        >>> freeze_all_but(tl.LeNet(), "fc2")
        ['fc2.weight', 'fc2.bias']
    """
    keep = _module_names(model, names, what="freeze_all_but: names")
    freeze(model, bn_eval=bn_eval)
    return unfreeze(model, keep)


def keep_frozen_bn_eval(model: nn.Module) -> int:
    """Put the BatchNorm layers that ``freeze`` froze back in eval mode; call after ``model.train()``.

    Returns the number of such layers.

    Example:
        >>> m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)); _ = freeze(m)
        >>> _ = m.train()  # switches every BatchNorm to training mode
        >>> keep_frozen_bn_eval(m), m[1].training
        (1, False)
    """
    frozen = [m for m in model.modules() if getattr(m, _FROZEN_BN, False)]
    for m in frozen:
        m.eval()
    return len(frozen)


@dataclass
class TrainableSummary:
    """Trainable and frozen parameter counts per top-level module; prints as a table."""

    rows: list[tuple[str, int, int, int]]  # (module, trainable, frozen, frozen BatchNorm layers)

    @property
    def trainable(self) -> int:
        return sum(r[1] for r in self.rows)

    @property
    def frozen(self) -> int:
        return sum(r[2] for r in self.rows)

    def _table(self) -> tuple[list[str], list[list[object]]]:
        headers = ["module", "trainable", "frozen", "frozen BN"]
        rows = [[n, f"{t:,}", f"{f:,}", b] for n, t, f, b in self.rows]
        rows.append(["total", f"{self.trainable:,}", f"{self.frozen:,}", sum(r[3] for r in self.rows)])
        return headers, rows

    def __str__(self) -> str:
        return text_table(*self._table())

    def _repr_html_(self) -> str:
        total = self.trainable + self.frozen
        return html_table(*self._table(), caption=f"{self.trainable:,} of {total:,} parameters trainable")


def trainable_summary(model: nn.Module) -> TrainableSummary:
    """Count trainable and frozen parameters (elements) per top-level module.

    Args:
        model: the network.

    Example:
        >>> m = tl.LeNet(); _ = freeze(m, "conv1")
        >>> print(trainable_summary(m))
        module  trainable  frozen  frozen BN
        ------  ---------  ------  ---------
        conv1   0          260     0
        conv2   5,020      0       0
        fc1     16,050     0       0
        fc2     510        0       0
        total   21,580     260     0
    """
    groups: dict[str, list[int]] = {}  # top-level name -> [trainable, frozen, frozen BN]
    for name, p in model.named_parameters():
        top = name.split(".")[0] if "." in name else "(root)"
        g = groups.setdefault(top, [0, 0, 0])
        g[0 if p.requires_grad else 1] += p.numel()
    for name, m in model.named_modules():
        if getattr(m, _FROZEN_BN, False):
            groups.setdefault(name.split(".")[0] or "(root)", [0, 0, 0])[2] += 1
    return TrainableSummary([(n, *g) for n, g in groups.items()])


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters with ``requires_grad``: what an optimiser should be built from.

    Example:
        >>> m = tl.LeNet(); _ = freeze_all_but(m, "fc2")
        >>> opt = torch.optim.SGD(trainable_parameters(m), lr=0.01)
        >>> len(opt.param_groups[0]["params"])
        2
    """
    return [p for p in model.parameters() if p.requires_grad]


def _groups(model: nn.Module, layers: Sequence[Names], lrs: Sequence[float], labels: Sequence[str]) -> list[dict]:
    """One param group per entry of ``layers``; trainable params only; empty groups dropped."""
    out = []
    for prefixes, lr, label in zip(layers, lrs, labels):
        prefixes = as_names(prefixes)
        params = [p for n, p in model.named_parameters() if p.requires_grad and matches(n, prefixes)]
        if params:
            out.append({"params": params, "lr": lr, "name": label})
    if not out:
        raise ValueError("No trainable parameters: unfreeze something before building an optimiser")
    return out


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    head_names: Names = ("fc",),
    head_lr_mult: float = 10.0,
) -> list[dict]:
    """Two optimiser param groups: the body at ``lr``, the new head at ``lr × head_lr_mult``.

    A freshly initialised head has far to go; the pretrained body should move little.
    Only parameters with ``requires_grad`` are included. Each group has a ``"name"``.
    Every head name must select parameters of ``model``; a typo raises.

    Args:
        model: the network.
        lr: learning rate of the body.
        head_names: module-name prefixes of the head (``"fc"`` for torchvision's ResNets,
            ``"fc2"`` for ``LeNet``).
        head_lr_mult: how much faster the head learns.

    Example:
        >>> groups = param_groups(tl.LeNet(), lr=0.01, head_names="fc2")
        >>> [(g["name"], g["lr"]) for g in groups]
        [('body', 0.01), ('head', 0.1)]
        >>> opt = torch.optim.SGD(groups, momentum=0.9)
    """
    names = [n for n, _ in model.named_parameters()]
    heads = check_names(head_names, names, what="param_groups: head_names")
    if not heads:
        raise UnknownNameError("param_groups: head_names is empty; name the head's modules, e.g. 'fc'.")
    body = [n for n in names if not matches(n, heads)]
    return _groups(model, [body, heads], [lr, lr * head_lr_mult], ["body", "head"])


def layerwise_lr_groups(model: nn.Module, *, lr: float, decay: float, layers: Sequence[Names]) -> list[dict]:
    """Layer-wise learning-rate decay: the last layer at ``lr``, each earlier one ``decay`` times less.

    With ``L = len(layers)``, layer ``i`` (0 = closest to the input) learns at
    ``lr · decay^(L-1-i)``, so early, general features change least (ULMFiT's
    discriminative fine-tuning). Every trainable parameter must fall under some layer,
    and every name in ``layers`` must select parameters of ``model``.

    Args:
        model: the network.
        lr: learning rate of the last layer.
        decay: factor between neighbouring layers, in (0, 1].
        layers: module-name prefixes from input to output; an entry may be a list of
            prefixes that share one rate, e.g. ``[["conv1", "bn1"], "layer1", ..., "fc"]``.

    Example:
        >>> groups = layerwise_lr_groups(tl.LeNet(), lr=0.1, decay=0.5, layers=["conv1", "conv2", "fc1", "fc2"])
        >>> [g["lr"] for g in groups]
        [0.0125, 0.025, 0.05, 0.1]
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1]; got {decay}")
    names = [n for n, _ in model.named_parameters()]
    flat = check_names([p for entry in layers for p in as_names(entry)], names, what="layerwise_lr_groups: layers")
    missing = [n for n, p in model.named_parameters() if p.requires_grad and not matches(n, flat)]
    if missing:
        raise ValueError(f"Trainable parameters not under any of layers: {', '.join(missing)}")
    n = len(layers)
    labels = [entry if isinstance(entry, str) else "+".join(entry) for entry in layers]
    return _groups(model, layers, [lr * decay ** (n - 1 - i) for i in range(n)], labels)
