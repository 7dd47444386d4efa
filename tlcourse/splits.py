"""Label budgets and validation splits: which labelled examples train, which choose, which test.

The course's one protocol: a run gets a *label budget* of ``k`` labelled examples per class
(``per_class_subset``). Every choice that is tuned (a learning rate, λ, which layers, which
soup ingredients, how many epochs) is made on a validation split carved **from that
budget** (``carve_validation``), never on the test set; the test set is touched once, for
the final numbers.

Example:
    >>> import torch
    >>> y = torch.tensor([0, 1] * 5)
    >>> train, val = carve_validation(y, per_class=1, seed=0)
    >>> len(train), len(val), sorted(y[val].tolist())
    (8, 2, [0, 1])
"""

from __future__ import annotations

import torch

__all__ = ["per_class_subset", "carve_validation"]


def per_class_subset(labels: torch.Tensor, k: int, *, seed: int = 0) -> torch.Tensor:
    """Indices of exactly ``k`` examples of every class, drawn at random (seeded).

    This is a *label budget*: "100 labels per class" means ``k=100``.

    Args:
        labels: int64 ``(N,)`` class of each example.
        k: examples per class.
        seed: which ``k`` are drawn.

    Returns:
        sorted int64 indices, ``k * num_classes`` of them.

    Example:
        >>> per_class_subset(torch.tensor([0, 1, 0, 1, 0, 1]), 2, seed=0).numel()
        4
    """
    labels = torch.as_tensor(labels)
    if k < 1:
        raise ValueError(f"k must be at least 1 example per class; got {k}")
    g = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == c).flatten()
        if idx.numel() < k:
            raise ValueError(f"Class {c} has only {idx.numel()} examples; cannot take {k} per class. "
                             f"Use a smaller budget or a bigger profile.")
        chosen.append(idx[torch.randperm(idx.numel(), generator=g)[:k]])
    return torch.cat(chosen).sort().values


def carve_validation(labels: torch.Tensor, *, per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Split labelled examples into training and validation, ``per_class`` of every class for validation.

    Use it on the labels of a label budget (``y[per_class_subset(y, k)]``): the validation
    examples then come out of the budget, not in addition to it, and never from the test set.

    Args:
        labels: int64 ``(N,)`` class of each labelled example.
        per_class: validation examples per class; every class must keep at least one for training.
        seed: which ones.

    Returns:
        ``(train, val)``: sorted int64 indices into ``labels``, disjoint, together all of them.

    Raises:
        ValueError: ``per_class`` below 1, or a class with no more than ``per_class`` examples.
    """
    labels = torch.as_tensor(labels)
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1; got {per_class}")
    counts = torch.bincount(labels)
    small = [c for c in torch.unique(labels).tolist() if counts[c] <= per_class]
    if small:
        raise ValueError(f"class {small[0]} has only {int(counts[small[0]])} labelled examples: it cannot give "
                         f"{per_class} to validation and keep one to train on. Carve fewer per class, or use a "
                         f"bigger label budget.")
    val = per_class_subset(labels, per_class, seed=seed)
    keep = torch.ones(len(labels), dtype=torch.bool)
    keep[val] = False
    return torch.nonzero(keep).flatten(), val
