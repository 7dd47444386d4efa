"""Figures the chapters share: image grids, learning curves, filters, confusion matrices.

Every function draws with matplotlib and returns the ``Figure`` so a notebook can
save or tweak it.

Example:
    >>> import torch, tlcourse as tl
    >>> fig = tl.show_images(torch.rand(8, 3, 32, 32), labels=list(range(8)))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

__all__ = ["show_images", "plot_history", "show_filters", "confusion_matrix", "plot_confusion", "plot_arms"]


def show_images(
    images: torch.Tensor,
    labels: Sequence[int | str] | torch.Tensor | None = None,
    *,
    class_names: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    size: float = 1.2,
) -> Figure:
    """Draw a grid of images with their labels.

    Args:
        images: ``(B, C, H, W)`` or ``(B, H, W)``, uint8 in [0, 255] or float in [0, 1];
            C is 1 (grey) or 3 (RGB).
        labels: one label per image (class indices or strings), or ``None``.
        class_names: maps class indices to names for the captions.
        ncols: images per row.
        title: a title above the grid.
        size: inches per image.

    Example:
        >>> fig = show_images(torch.zeros(4, 1, 28, 28), labels=[0, 1, 2, 3])
    """
    x = images.detach().cpu()
    if x.ndim == 3:
        x = x.unsqueeze(1)  # (B, H, W) -> (B, 1, H, W)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"show_images expects (B, 1|3, H, W) or (B, H, W); got {tuple(images.shape)}")
    x = x.float() / 255 if x.dtype == torch.uint8 else x.float().clamp(0, 1)
    n = x.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = x[i].permute(1, 2, 0).numpy()  # (H, W, C)
        if img.shape[2] == 1:
            ax.imshow(img[:, :, 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img)
        if labels is not None:
            lab = labels[i]
            lab = int(lab) if isinstance(lab, torch.Tensor) else lab
            caption = class_names[lab] if class_names is not None and isinstance(lab, int) else str(lab)
            ax.set_title(caption, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_history(history: Any, *, title: str | None = None, size: tuple[float, float] = (9, 3.2)) -> Figure:
    """Learning curves: loss and accuracy per epoch, train vs test.

    Args:
        history: a ``History`` from ``fit``, or a dict with any of the lists
            ``train_loss``, ``test_loss``, ``train_acc``, ``test_acc``.
        title: a title above both panels.
        size: figure size in inches.

    Example:
        >>> fig = plot_history({"train_loss": [1.0, 0.6], "test_loss": [1.1, 0.8],
        ...                     "train_acc": [0.6, 0.8], "test_acc": [0.55, 0.7]})
    """
    d = history.to_dict() if hasattr(history, "to_dict") else dict(history)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=size)
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        for split, style in (("train", "o-"), ("test", "s--")):
            values = d.get(f"{split}_{metric}") or []
            if len(values):
                ax.plot(range(1, len(values) + 1), values, style, label=split, markersize=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
            ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_filters(
    weight: torch.Tensor | torch.nn.Module, *, ncols: int = 10, title: str | None = None, size: float = 0.8
) -> Figure:
    """Draw a convolution's filters as a grid of small images (e.g. a first layer's).

    Each filter is min-max scaled on its own, so the pattern shows, not the magnitude.

    Args:
        weight: ``(O, C, kH, kW)`` with C = 1 (grey) or 3 (RGB), or the conv layer itself.
            For a deeper layer pass one input channel: ``weight[:, i:i + 1]``.
        ncols: filters per row.
        title: a title above the grid.
        size: inches per filter.

    Example:
        >>> fig = show_filters(torch.nn.Conv2d(3, 10, 5).weight)
    """
    w = weight.weight if isinstance(weight, torch.nn.Module) else weight
    w = w.detach().float().cpu()
    if w.ndim != 4 or w.shape[1] not in (1, 3):
        raise ValueError(
            f"show_filters expects (O, 1|3, kH, kW); got {tuple(w.shape)}. "
            "For a layer with more input channels pass weight[:, i:i + 1]."
        )
    lo = w.amin(dim=(1, 2, 3), keepdim=True)  # (O, 1, 1, 1)
    hi = w.amax(dim=(1, 2, 3), keepdim=True)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)  # each filter scaled to [0, 1]
    n = w.shape[0]
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            img = w[i].permute(1, 2, 0).numpy()  # (kH, kW, C)
            ax.imshow(img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def confusion_matrix(
    y_true: torch.Tensor | Sequence[int], y_pred: torch.Tensor | Sequence[int], *, num_classes: int | None = None
) -> torch.Tensor:
    """Counts ``C[i, j]`` of examples of true class ``i`` predicted as class ``j``.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_pred: predicted class indices, shape ``(N,)``.
        num_classes: K; defaults to the largest index seen + 1.

    Example:
        >>> confusion_matrix([0, 1, 1], [0, 1, 0])
        tensor([[1, 0],
                [1, 1]])
    """
    t = torch.as_tensor(y_true).long().flatten().cpu()
    p = torch.as_tensor(y_pred).long().flatten().cpu()
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.numel()} vs {p.numel()}")
    k = num_classes if num_classes is not None else int(max(t.max(), p.max())) + 1 if t.numel() else 0
    # Each pair (i, j) gets the unique index i·K + j; counting those gives the K×K table.
    return torch.bincount(t * k + p, minlength=k * k).reshape(k, k)


def plot_confusion(
    y_true: torch.Tensor | Sequence[int],
    y_pred: torch.Tensor | Sequence[int],
    class_names: Sequence[str] | None = None,
    *,
    normalize: bool = False,
    title: str | None = None,
    size: float = 5.0,
) -> Figure:
    """Draw the confusion matrix: rows are true classes, columns predicted ones.

    Args:
        y_true: true class indices, shape ``(N,)``.
        y_pred: predicted class indices, shape ``(N,)``.
        class_names: one name per class (also fixes the number of classes).
        normalize: show each row as fractions of that class (recall on the diagonal).
        title: a title above the matrix.
        size: figure width and height in inches.

    Example:
        >>> fig = plot_confusion([0, 1, 1], [0, 1, 0], ["cat", "dog"])
    """
    cm = confusion_matrix(y_true, y_pred, num_classes=len(class_names) if class_names is not None else None)
    k = cm.shape[0]
    values = cm.float() / cm.sum(dim=1, keepdim=True).clamp_min(1) if normalize else cm
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(values.numpy(), cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 20:  # numbers stay legible up to about 20 classes
        top = float(values.max()) if values.numel() else 0.0
        for i in range(k):
            for j in range(k):
                v = float(values[i, j])
                ax.text(j, i, f"{v:.2f}" if normalize else f"{int(v)}", ha="center", va="center",
                        fontsize=8, color="white" if v > top / 2 else "black")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_arms(runs: Any, *, x: str, value: str, xlabel: str, ylabel: str, title: str, scale: float = 1.0,
              by: str = "method", reference: tuple[str, float] | None = None) -> Figure:
    """One line per arm: ``value`` against ``x``, the mean over seeds, bars from the lowest seed to the highest.

    Args:
        runs: a table with one row per run (the columns ``by``, ``x``, ``value``).
        x, value: the columns on the two axes; ``x`` is shown in the order it first appears.
        xlabel, ylabel, title: the labels.
        scale: multiplies ``value`` (100 shows a fraction as percent).
        by: the column naming the arm.
        reference: ``(label, y)``: a dotted horizontal line, e.g. chance.
    """
    xs = list(dict.fromkeys(runs[x]))
    arms = list(dict.fromkeys(runs[by]))
    fig, ax = plt.subplots(figsize=(7, 4))
    for n, arm in enumerate(arms):
        g = runs[runs[by] == arm].groupby(x, sort=False)[value]
        mean, low, high = (scale * g.agg(f).reindex(xs) for f in ("mean", "min", "max"))
        at = [i + 0.06 * (n - (len(arms) - 1) / 2) for i in range(len(xs))]  # side by side, not on top
        ax.errorbar(at, mean, yerr=[mean - low, high - mean], marker="o", capsize=3, label=arm)
    if reference is not None:
        ax.axhline(reference[1], color="grey", lw=0.8, ls=":", label=reference[0])
    ax.set(xticks=range(len(xs)), xticklabels=[str(v) for v in xs], xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
