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

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

__all__ = ["show_images"]


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
