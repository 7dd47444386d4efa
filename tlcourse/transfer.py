"""Moving weights between models: copy with a report, freeze, learning-rate groups, interpolate.

``transfer_weights`` is the document's ``target.load_state_dict(source.state_dict())``
done so that it cannot fail silently or loudly without explanation: it copies every
tensor whose name and shape match, adapts the first convolution when only its number
of input channels differs, and returns a report of what it copied, adapted and skipped.

Example:
    >>> import tlcourse as tl
    >>> report = tl.transfer_weights(tl.LeNet(image_size=28), tl.LeNet(in_channels=3, image_size=32))
    >>> report.counts
    {'copied': 6, 'adapted': 1, 'skipped': 1}
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd

__all__ = [
    "TransferError",
    "TransferRow",
    "TransferReport",
    "transfer_weights",
    "freeze",
    "unfreeze",
    "freeze_all_but",
    "keep_frozen_bn_eval",
    "TrainableSummary",
    "trainable_summary",
    "trainable_parameters",
    "param_groups",
    "layerwise_lr_groups",
    "interpolate_state_dicts",
]

Names = str | Iterable[str]
_FROZEN_BN = "_tlcourse_frozen_bn"  # flag freeze() sets on a BatchNorm module it put in eval mode


class TransferError(ValueError):
    """``transfer_weights(..., strict=True)`` found tensors it cannot copy; the message lists all."""


@dataclass(frozen=True)
class TransferRow:
    """What happened to one tensor."""

    name: str  # state_dict key, e.g. "fc1.weight"
    action: Literal["copied", "adapted", "skipped"]
    source_shape: tuple[int, ...] | None  # None: not in the source
    target_shape: tuple[int, ...] | None  # None: not in the target
    reason: str = ""  # why it was adapted or skipped


def _shape(s: tuple[int, ...] | None) -> str:
    return "—" if s is None else str(tuple(s))


def _text_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned plain-text table."""
    cells = [list(map(str, headers))] + [list(map(str, r)) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[object]], caption: str) -> str:
    """HTML table for Jupyter's rich display."""
    head = "".join(f"<th style='text-align:left'>{html.escape(str(h))}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(c))}</td>" for c in r) + "</tr>"
        for r in rows
    )
    return f"<table><caption>{html.escape(caption)}</caption><tr>{head}</tr>{body}</table>"


@dataclass
class TransferReport:
    """The result of ``transfer_weights``: one row per tensor; prints as a table.

    Example:
        >>> report = transfer_weights(nn.Linear(2, 2), nn.Linear(2, 2))
        >>> report.copied
        ['weight', 'bias']
    """

    rows: list[TransferRow] = field(default_factory=list)

    def _names(self, action: str) -> list[str]:
        return [r.name for r in self.rows if r.action == action]

    @property
    def copied(self) -> list[str]:
        return self._names("copied")

    @property
    def adapted(self) -> list[str]:
        return self._names("adapted")

    @property
    def skipped(self) -> list[str]:
        return self._names("skipped")

    @property
    def counts(self) -> dict[str, int]:
        return {a: len(self._names(a)) for a in ("copied", "adapted", "skipped")}

    def _table(self) -> tuple[list[str], list[list[str]]]:
        headers = ["name", "action", "source", "target", "reason"]
        rows = [[r.name, r.action, _shape(r.source_shape), _shape(r.target_shape), r.reason] for r in self.rows]
        return headers, rows

    def _summary(self) -> str:
        return ", ".join(f"{n} {a}" for a, n in self.counts.items())

    def __str__(self) -> str:
        return _text_table(*self._table()) + "\n" + self._summary()

    def _repr_html_(self) -> str:
        return _html_table(*self._table(), caption=self._summary())


def _matches(name: str, prefixes: Sequence[str]) -> bool:
    """True if ``name`` is one of ``prefixes`` or lies under one (``fc`` matches ``fc.weight``, not ``fc1``)."""
    return any(p == "" or name == p or name.startswith(p + ".") for p in prefixes)


def _as_list(names: Names | None) -> list[str]:
    if names is None:
        return []
    return [names] if isinstance(names, str) else list(names)


def _adapt_conv(w: torch.Tensor, in_channels: int, mode: str | None) -> tuple[torch.Tensor | None, str]:
    """Adapt conv weight ``(O, C_s, k, k)`` to ``(O, in_channels, k, k)``; (None, why) if it cannot."""
    c_s = w.shape[1]
    if mode == "repeat" and in_channels % c_s == 0:
        # Tile the C_s filters over the C_t channels and scale by C_s/C_t: the sum over the
        # colour axis is unchanged, so equal input channels give the source's response.
        return w.repeat(1, in_channels // c_s, *([1] * (w.ndim - 2))) * c_s / in_channels, (
            f"repeat: {c_s}→{in_channels} channels, W·{c_s}/{in_channels}"
        )
    if mode in ("sum", "mean") and in_channels == 1:
        return getattr(w, mode)(dim=1, keepdim=True), f"{mode} over {c_s} input channels"
    if mode is None:
        return None, "input channels differ (adapt_first_conv=None)"
    need = "'repeat'" if in_channels > c_s else "'sum' or 'mean'"
    return None, f"adapt_first_conv={mode!r} cannot map {c_s}→{in_channels} channels; use {need}"


def transfer_weights(
    source: nn.Module | Mapping[str, torch.Tensor],
    target: nn.Module,
    *,
    strict: bool = False,
    adapt_first_conv: Literal["repeat", "sum", "mean"] | None = "repeat",
    skip: Names = (),
) -> TransferReport:
    """Copy every tensor (parameters and buffers) whose name and shape match into ``target``.

    The target's first convolution, if its weight differs from the source's only in the
    number of input channels (dim 1), is adapted. With ``W_s`` of shape ``(O, C_s, k, k)``
    and ``W_t`` of shape ``(O, C_t, k, k)``:

    - ``"repeat"`` (C_t a multiple of C_s, e.g. grey 1 → RGB 3):
      ``W_t[:, c] = W_s[:, c mod C_s] · C_s / C_t``. For 1 → 3, every colour channel
      gets ``W_s / 3``, so a grey image replicated to 3 channels gives exactly the
      source's output on the grey image.
    - ``"sum"`` (C_t = 1, e.g. RGB → grey): ``W_t[:, 0] = Σ_c W_s[:, c]``; the target on a
      grey image equals the source on that image replicated to C_s channels.
    - ``"mean"`` (C_t = 1): ``W_t[:, 0] = (1/C_s) Σ_c W_s[:, c]``; keeps the filters'
      scale (the pre-activation, bias aside, is the "sum" one divided by C_s).

    The bias is copied unchanged. Everything else that differs is skipped, with the
    reason in the report; the target keeps its own (random) values there.

    Args:
        source: a model or a ``state_dict``.
        target: the model to copy into (modified in place).
        strict: raise one ``TransferError`` listing every tensor that is missing,
            unexpected or of another shape (and not adapted), before copying anything.
        adapt_first_conv: ``"repeat"``, ``"sum"``, ``"mean"`` or ``None`` (never adapt).
        skip: module-name prefixes not to copy, e.g. ``"fc2"`` for a new head.

    Example:
        >>> src, dst = tl.LeNet(in_channels=1, image_size=28), tl.LeNet(in_channels=3, image_size=32)
        >>> print(transfer_weights(src, dst, skip="fc2"))
        name          action   source          target          reason
        ------------  -------  --------------  --------------  ---------------------------
        conv1.weight  adapted  (10, 1, 5, 5)   (10, 3, 5, 5)   repeat: 1→3 channels, W·1/3
        conv1.bias    copied   (10,)           (10,)
        conv2.weight  copied   (20, 10, 5, 5)  (20, 10, 5, 5)
        conv2.bias    copied   (20,)           (20,)
        fc1.weight    skipped  (50, 320)       (50, 500)       shape mismatch
        fc1.bias      copied   (50,)           (50,)
        fc2.weight    skipped  (10, 50)        (10, 50)        in skip
        fc2.bias      skipped  (10,)           (10,)           in skip
        4 copied, 1 adapted, 3 skipped
    """
    src = source.state_dict() if isinstance(source, nn.Module) else dict(source)
    dst = target.state_dict()  # tensors that share storage with target's parameters and buffers
    skip = _as_list(skip)
    convs = [n for n, m in target.named_modules() if isinstance(m, _ConvNd) and m.groups == 1]
    first_conv = f"{convs[0]}.weight" if convs else None

    rows: list[TransferRow] = []
    plan: list[tuple[str, torch.Tensor]] = []  # (target key, tensor to copy into it)
    problems: list[TransferRow] = []
    for name, t in dst.items():
        s = src.get(name)
        s_shape, t_shape = (None if s is None else tuple(s.shape)), tuple(t.shape)
        if _matches(name, skip):
            rows.append(TransferRow(name, "skipped", s_shape, t_shape, "in skip"))
            continue
        if s is None:
            row = TransferRow(name, "skipped", None, t_shape, "not in source")
        elif s.dtype.is_floating_point != t.dtype.is_floating_point:
            row = TransferRow(name, "skipped", s_shape, t_shape, f"dtype {s.dtype} vs {t.dtype}")
        elif s_shape == t_shape:
            rows.append(TransferRow(name, "copied", s_shape, t_shape))
            plan.append((name, s))
            continue
        elif name == first_conv and s.ndim == t.ndim and s_shape[:1] + s_shape[2:] == t_shape[:1] + t_shape[2:]:
            adapted, why = _adapt_conv(s, t.shape[1], adapt_first_conv)
            if adapted is not None:
                rows.append(TransferRow(name, "adapted", s_shape, t_shape, why))
                plan.append((name, adapted))
                continue
            row = TransferRow(name, "skipped", s_shape, t_shape, why)
        else:
            row = TransferRow(name, "skipped", s_shape, t_shape, "shape mismatch")
        rows.append(row)
        problems.append(row)
    for name, s in src.items():
        if name not in dst and not _matches(name, skip):
            row = TransferRow(name, "skipped", tuple(s.shape), None, "not in target")
            rows.append(row)
            problems.append(row)

    if strict and problems:
        lines = [
            f"  {r.name}: source {_shape(r.source_shape)} vs target {_shape(r.target_shape)} — {r.reason}"
            for r in problems
        ]
        raise TransferError(
            f"Cannot transfer all weights ({len(problems)} problem(s)); nothing was copied:\n"
            + "\n".join(lines)
            + "\nUse strict=False to copy what matches (the report lists what was skipped), "
            "skip= for layers you replace, or adapt_first_conv='repeat' / 'sum' for a channel change."
        )
    with torch.no_grad():
        for name, s in plan:
            dst[name].copy_(s)  # copy_ casts dtype and moves device as needed
    return TransferReport(rows)


def _freeze_unfreeze(model: nn.Module, names: Names | None, *, freeze: bool, bn_eval: bool) -> list[str]:
    """Set requires_grad (and frozen-BatchNorm state) for modules under ``names``; return parameter names."""
    prefixes = _as_list(names) if names is not None else [""]
    modules = [(n, m) for n, m in model.named_modules() if _matches(n, prefixes)]
    params = [n for n, _ in model.named_parameters() if _matches(n, prefixes)]
    if not modules and not params:
        children = ", ".join(n for n, _ in model.named_children())
        raise ValueError(f"No module or parameter matches {prefixes}; top-level modules are: {children}")
    for n, p in model.named_parameters():
        if _matches(n, prefixes):
            p.requires_grad_(not freeze)
    for _, m in modules:
        if not isinstance(m, _BatchNorm):
            continue
        if freeze and bn_eval:
            m.eval()  # use running statistics, stop updating them
            setattr(m, _FROZEN_BN, True)  # so keep_frozen_bn_eval() can undo model.train()
        elif not freeze and getattr(m, _FROZEN_BN, False):
            delattr(m, _FROZEN_BN)
            m.train(model.training)
    return params


def freeze(model: nn.Module, names: Names | None = None, *, bn_eval: bool = True) -> list[str]:
    """Stop training the modules under ``names`` (all of ``model`` if ``None``).

    Their parameters get ``requires_grad=False``. With ``bn_eval`` (the default) their
    BatchNorm layers are also put in eval mode: they normalise with their running
    statistics and stop updating them. ``model.train()`` would switch them back to
    training mode; ``train_one_epoch`` calls ``keep_frozen_bn_eval`` after it to undo
    that, and a hand-written loop should do the same.

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
    return _freeze_unfreeze(model, names, freeze=True, bn_eval=bn_eval)


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
    return _freeze_unfreeze(model, names, freeze=False, bn_eval=True)


def freeze_all_but(model: nn.Module, names: Names, *, bn_eval: bool = True) -> list[str]:
    """Freeze everything except the modules under ``names`` (e.g. a new head); return the trainable names.

    Args:
        model: the network (modified in place).
        names: module-name prefixes that stay trainable.
        bn_eval: freeze the running statistics of the frozen BatchNorm layers too.

    Example:
        >>> freeze_all_but(tl.LeNet(), "fc2")
        ['fc2.weight', 'fc2.bias']
    """
    freeze(model, bn_eval=bn_eval)
    return unfreeze(model, names)


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
        return _text_table(*self._table())

    def _repr_html_(self) -> str:
        total = self.trainable + self.frozen
        return _html_table(*self._table(), caption=f"{self.trainable:,} of {total:,} parameters trainable")


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
        prefixes = _as_list(prefixes)
        params = [p for n, p in model.named_parameters() if p.requires_grad and _matches(n, prefixes)]
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
    heads = _as_list(head_names)
    if not any(_matches(n, heads) for n, _ in model.named_parameters()):
        children = ", ".join(n for n, _ in model.named_children())
        raise ValueError(f"head_names {heads} match no parameter; top-level modules are: {children}")
    body = [n for n, _ in model.named_parameters() if not _matches(n, heads)]
    return _groups(model, [body, heads], [lr, lr * head_lr_mult], ["body", "head"])


def layerwise_lr_groups(model: nn.Module, *, lr: float, decay: float, layers: Sequence[Names]) -> list[dict]:
    """Layer-wise learning-rate decay: the last layer at ``lr``, each earlier one ``decay`` times less.

    With ``L = len(layers)``, layer ``i`` (0 = closest to the input) learns at
    ``lr · decay^(L-1-i)``, so early, general features change least (ULMFiT's
    discriminative fine-tuning). Every trainable parameter must fall under some layer.

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
    flat = [p for entry in layers for p in _as_list(entry)]
    missing = [n for n, p in model.named_parameters() if p.requires_grad and not _matches(n, flat)]
    if missing:
        raise ValueError(f"Trainable parameters not under any of layers: {', '.join(missing)}")
    n = len(layers)
    labels = [entry if isinstance(entry, str) else "+".join(entry) for entry in layers]
    return _groups(model, layers, [lr * decay ** (n - 1 - i) for i in range(n)], labels)


def interpolate_state_dicts(
    sd_a: Mapping[str, torch.Tensor], sd_b: Mapping[str, torch.Tensor], lam: float
) -> dict[str, torch.Tensor]:
    """Blend two state dicts: ``λ · sd_a + (1 − λ) · sd_b``, tensor by tensor.

    With ``sd_a = θ_S`` (source / pretrained) and ``sd_b = θ_T'`` (fine-tuned) this is
    the course's ``θ_T = λ·θ_S + (1−λ)·θ_T'``: λ = 0 gives the fine-tuned model, λ = 1
    the source. Floating tensors are blended in float32 (float64 stays float64) and cast back. Integer and bool
    tensors (e.g. BatchNorm's ``num_batches_tracked``) are never blended: they are taken
    from the nearer end point, ``sd_a`` if λ > 0.5 else ``sd_b``. So λ = 0 and λ = 1
    return copies of the inputs exactly. BatchNorm running statistics are blended
    linearly, which is only approximate; recomputing them on training data is better.

    Args:
        sd_a: state dict weighted by λ.
        sd_b: state dict weighted by 1 − λ, with the same keys and shapes.
        lam: λ in [0, 1].

    Example:
        >>> a, b = {"w": torch.tensor([0.0, 2.0])}, {"w": torch.tensor([2.0, 4.0])}
        >>> interpolate_state_dicts(a, b, 0.5)["w"]
        tensor([1., 3.])
    """
    lam = float(lam)
    if not (math.isfinite(lam) and 0.0 <= lam <= 1.0):
        raise ValueError(f"lam must be in [0, 1]; got {lam}")
    only_a, only_b = [k for k in sd_a if k not in sd_b], [k for k in sd_b if k not in sd_a]
    if only_a or only_b:
        raise ValueError(f"State dicts have different keys: only in sd_a: {only_a}; only in sd_b: {only_b}")
    bad = [
        f"{k}: {tuple(sd_a[k].shape)} {sd_a[k].dtype} vs {tuple(sd_b[k].shape)} {sd_b[k].dtype}"
        for k in sd_a
        if sd_a[k].shape != sd_b[k].shape or sd_a[k].dtype.is_floating_point != sd_b[k].dtype.is_floating_point
    ]
    if bad:
        raise ValueError("State dicts differ in shape or kind at: " + "; ".join(bad))
    out = {}
    for k, a in sd_a.items():
        b = sd_b[k].to(a.device)
        if lam == 0.0 or (not a.dtype.is_floating_point and lam <= 0.5):
            out[k] = b.clone()
        elif lam == 1.0 or not a.dtype.is_floating_point:
            out[k] = a.clone()
        else:
            acc = torch.promote_types(a.dtype, torch.float32)  # float16/bfloat16 blended in float32
            out[k] = (lam * a.to(acc) + (1.0 - lam) * b.to(acc)).to(a.dtype)
    return out
