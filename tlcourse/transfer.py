"""Copying weights between models, with a report of what was copied, adapted and skipped.

``transfer_weights`` is the document's ``target.load_state_dict(source.state_dict())``
done so that it cannot fail silently or loudly without explanation: it copies every
tensor whose name and shape match, adapts the first convolution when only its number
of input channels differs, and returns a report of what it copied, adapted and skipped.
Freezing and learning-rate groups are in ``tlcourse.freezing``, the blend of two state
dicts in ``tlcourse.interpolation``.

Example:
    >>> import tlcourse as tl
    >>> report = tl.transfer_weights(tl.LeNet(image_size=28), tl.LeNet(in_channels=3, image_size=32))
    >>> report.counts
    {'copied': 6, 'adapted': 1, 'skipped': 1}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn.modules.conv import _ConvNd

from .names import Names, check_names, matches
from .tables import html_table, text_table

__all__ = ["TransferError", "TransferRow", "TransferReport", "transfer_weights"]


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
        return text_table(*self._table()) + "\n" + self._summary()

    def _repr_html_(self) -> str:
        return html_table(*self._table(), caption=self._summary())


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
        skip: module or tensor names not to copy, e.g. ``"fc2"`` for a new head. Each must
            name something in the source or the target: a typo raises
            ``tl.UnknownNameError`` (naming the nearest names) before anything is copied.

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
    skip = check_names(skip, [*dst, *src], what="transfer_weights: skip")  # before anything is copied
    convs = [n for n, m in target.named_modules() if isinstance(m, _ConvNd) and m.groups == 1]
    first_conv = f"{convs[0]}.weight" if convs else None

    rows: list[TransferRow] = []
    plan: list[tuple[str, torch.Tensor]] = []  # (target key, tensor to copy into it)
    problems: list[TransferRow] = []
    for name, t in dst.items():
        s = src.get(name)
        s_shape, t_shape = (None if s is None else tuple(s.shape)), tuple(t.shape)
        if matches(name, skip):
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
        if name not in dst and not matches(name, skip):
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
