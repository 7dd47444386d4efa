"""Interpolating two state dicts: the course's fusion formula θ_T = λ·θ_S + (1−λ)·θ_T'.

``tlcourse.fusion`` measures what the blend does (curves, barriers, soups); this module
only computes it, tensor by tensor, with integer buffers taken from the nearer end point.

Example:
    >>> import torch, tlcourse as tl
    >>> tl.interpolate_state_dicts({"w": torch.tensor([0.0])}, {"w": torch.tensor([4.0])}, 0.25)["w"]
    tensor([3.])
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch

__all__ = ["interpolate_state_dicts"]


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
