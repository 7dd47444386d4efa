"""Distribution shifts made on purpose: at the input (inverted, noisy images) or at the output (relabelled classes).

Surgical fine-tuning (``tlcourse.surgical``) asks which layer to tune after a shift; these
functions make the shifts from real images, so the answer can be measured:

* ``inverted``: every pixel ``v`` becomes ``255 - v`` (white digits on black become black on
  white): the same shapes, the opposite input statistics;
* ``noisy``: Gaussian noise of standard deviation ``std`` (a fraction of the full 0-255
  range) added to every pixel, seeded, clipped back to 0-255;
* ``permuted_labels``: the images stay, the classes are renamed by a *derangement* (a
  permutation in which no class keeps its own label): the input is unchanged, the mapping to
  the output is not.

Images are uint8 ``(N, C, H, W)`` as ``tl.dataset_tensors`` returns them; labels int64 ``(N,)``.

Example:
    >>> import torch, tlcourse as tl
    >>> tl.inverted(torch.tensor([[[[0, 200, 255]]]], dtype=torch.uint8)).flatten().tolist()
    [255, 55, 0]
    >>> y = torch.arange(10)
    >>> bool((tl.permuted_labels(y, seed=0) != y).all())  # no class keeps its label
    True
"""

from __future__ import annotations

import torch

__all__ = ["inverted", "noisy", "label_derangement", "permuted_labels"]


def _check_images(x: torch.Tensor, what: str) -> None:
    """Raise unless ``x`` is uint8 ``(N, C, H, W)``."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise ValueError(f"{what} takes uint8 images (N, C, H, W) as tl.dataset_tensors returns them; "
                         f"got {x.dtype} {tuple(x.shape)}")


def inverted(x: torch.Tensor) -> torch.Tensor:
    """The photographic negative of uint8 images: ``255 - x``.

    Args:
        x: uint8 ``(N, C, H, W)``.

    Example:
        >>> inverted(torch.zeros(1, 1, 2, 2, dtype=torch.uint8)).unique().tolist()
        [255]
    """
    _check_images(x, "inverted")
    return 255 - x


def noisy(x: torch.Tensor, *, std: float, seed: int) -> torch.Tensor:
    """uint8 images plus seeded Gaussian noise, clipped to 0-255 and rounded.

    Args:
        x: uint8 ``(N, C, H, W)``.
        std: the noise's standard deviation as a fraction of the range (0.5 = 127.5 grey levels).
        seed: which noise; the same seed gives the same noisy images.

    Example:
        >>> x = torch.full((1, 1, 4, 4), 128, dtype=torch.uint8)
        >>> torch.equal(noisy(x, std=0.2, seed=0), noisy(x, std=0.2, seed=0)), torch.equal(noisy(x, std=0.0, seed=0), x)
        (True, True)
    """
    _check_images(x, "noisy")
    if std < 0:
        raise ValueError(f"std is a standard deviation, 0 or more (a fraction of 0-255, e.g. 0.5); got {std}")
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=g) * (255 * std)
    return (x.float() + noise).round().clamp(0, 255).to(torch.uint8)


def label_derangement(num_classes: int, *, seed: int) -> torch.Tensor:
    """A random permutation of ``0 … num_classes-1`` with no fixed point: class ``c`` becomes ``perm[c] != c``.

    Drawn by rejection (a uniform permutation has no fixed point with probability about 1/e),
    so every derangement is equally likely; seeded.

    Example:
        >>> perm = label_derangement(5, seed=1)
        >>> sorted(perm.tolist()), any(perm[c] == c for c in range(5))
        ([0, 1, 2, 3, 4], False)
    """
    if num_classes < 2:
        raise ValueError(f"a derangement needs at least 2 classes (1 class can only keep its label); got {num_classes}")
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(num_classes, generator=g)
        if not (perm == torch.arange(num_classes)).any():
            return perm


def permuted_labels(y: torch.Tensor, *, seed: int, num_classes: int | None = None) -> torch.Tensor:
    """``y`` with its classes renamed by ``label_derangement``: every example gets another class's label.

    Args:
        y: int64 ``(N,)`` class labels.
        seed: which derangement.
        num_classes: how many classes there are; default ``y.max() + 1``.

    Example:
        >>> permuted_labels(torch.tensor([0, 0, 1, 2]), seed=0).tolist()  # a consistent renaming: both 0s alike
        [2, 2, 0, 1]
    """
    if y.dim() != 1 or y.dtype != torch.int64:
        raise ValueError(f"permuted_labels takes int64 class labels (N,); got {y.dtype} {tuple(y.shape)}")
    n = int(y.max()) + 1 if num_classes is None else num_classes
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n):
        raise ValueError(f"labels must lie in 0 … {n - 1}; got {int(y.min())} … {int(y.max())}")
    return label_derangement(n, seed=seed)[y]
