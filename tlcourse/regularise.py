"""Chapter 7, regularising towards the source: L2-SP, weight decay towards the source's weights, not zero.

Li, Grandvalet & Davoine (2018): the fine-tuned network pays ``alpha/2 * ||w - w0||^2``
for the weights it took from the source (``w0``, a ``parameter_snapshot``) and
``beta/2 * ||w||^2`` for the new ones (the head), so it may move, but not far.

Example:
    >>> import torch, tlcourse as tl
    >>> model = tl.LeNet()
    >>> anchor = tl.parameter_snapshot(model, exclude="fc2")
    >>> tl.l2sp_penalty(model, anchor, alpha=0.1, beta=0.0).item()
    0.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .names import Names, as_names, check_names, matches

__all__ = ["parameter_snapshot", "distance_from", "l2sp_penalty", "l2sp_loss"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def parameter_snapshot(model: nn.Module, *, exclude: Names = ()) -> dict[str, torch.Tensor]:
    """Detached copies of the parameters (not buffers) outside ``exclude``: L2-SP's anchor w⁰.

    Take it right after copying the source weights in, excluding the new head.

    Example:
        >>> sorted(parameter_snapshot(tl.LeNet(), exclude=["fc1", "fc2"]))
        ['conv1.bias', 'conv1.weight', 'conv2.bias', 'conv2.weight']
    """
    skip = check_names(as_names(exclude), [n for n, _ in model.named_parameters()],
                       what="parameter_snapshot: exclude")
    return {n: p.detach().clone() for n, p in model.named_parameters()
            if not matches(n, skip)}


def distance_from(model: nn.Module, anchor: Mapping[str, torch.Tensor]) -> float:
    """How far ``model``'s weights have moved from ``anchor``: ``‖w − w⁰‖ / ‖w⁰‖`` over the anchor's tensors.

    0 means they are where they started; 1 means they moved as far as their own size.

    Raises:
        ValueError: an anchor name the model has no parameter of.

    Example:
        >>> m = tl.LeNet(); anchor = parameter_snapshot(m, exclude="fc2")
        >>> distance_from(m, anchor)
        0.0
        >>> with torch.no_grad(): _ = m.conv1.weight.mul_(2.0)
        >>> 0 < distance_from(m, anchor) < 1
        True
    """
    params = dict(model.named_parameters())
    missing = [name for name in anchor if name not in params]
    if missing:
        raise ValueError(f"the model has no parameter {missing[0]!r} of the anchor; take the anchor of this model "
                         f"(parameter_snapshot)")
    moved = sum((params[name].detach() - w).pow(2).sum() for name, w in anchor.items())
    size = sum(w.pow(2).sum() for w in anchor.values())
    return float(moved.sqrt() / size.sqrt())


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
