"""What the stand-ins look like: digits, silhouettes and coloured shapes, hard enough not to saturate.

The drawings behind ``tlcourse.standins`` (which writes them in the real datasets' formats):

* MNIST: the digits 0-9 of a 5x7 bitmap font, randomly scaled, rotated, sheared, shifted
  and warped on a 28x28 canvas, beside a fragment of another digit, with stray strokes;
* Fashion-MNIST: ten grey silhouettes (disc, square, triangle, ...), warped and textured,
  beside a smaller silhouette of another class;
* CIFAR-10: five shapes in two colour families ("warm" reds/yellows, "cool" blues/cyans)
  on mottled backgrounds that hold a smaller shape of another class.

Classes differ in shape and colour, so a network learns them (a linear classifier on the
pixels beats chance by far). Clutter, warping and a share of ambiguous images keep even
large training runs clearly below 100% test accuracy, as on real data: patches blanked out
of the digits and silhouettes, ``AMBIGUOUS`` of the CIFAR-10 objects in any hue (their colour
family is not in the image), and ``LABEL_NOISE`` of every split's labels shuffled. Measured
with LeNet from scratch at the cpu profile's sizes (20,000 training images, 10 epochs): about
80% on the CIFAR-10 stand-in, 92% on the digits, 89% on the silhouettes. Nothing here
favours a training method: every image of every split is drawn the same way.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> draw_images("cifar10", torch.arange(10), g=g).shape
    (10, 32, 32, 3)
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["GENERATOR_VERSION", "LABEL_NOISE", "STANDIN_CLASSES", "draw_images", "standin_labels"]

GENERATOR_VERSION = 2  # bump when the images change, so old stand-ins are regenerated
LABEL_NOISE = 0.05  # share of images (every split) whose label is drawn at random: a ceiling below 100%
AMBIGUOUS = 0.3  # share of CIFAR-10 objects drawn in any hue, so their colour family is not in the image

# 5x7 bitmap digits ('#' = ink); 0-9 in order.
_FONT = """
.###. ..#.. .###. ##### ...#. ##### ..##. ##### .###. .###.
#...# .##.. #...# ...#. ..##. #.... .#... ....# #...# #...#
#..## ..#.. ....# ..#.. .#.#. ####. #.... ...#. #...# #...#
#.#.# ..#.. ...#. ...#. #..#. ....# ####. ..#.. .###. .####
##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....#
#...# ..#.. .#... #...# ...#. #...# #...# .#... #...# ...#.
.###. .###. ##### .###. ...#. .###. .###. .#... .###. .##..
"""

_SHAPES = ("disc", "square", "triangle", "ring", "cross", "diamond", "h-stripes", "v-stripes", "x", "half-disc")

STANDIN_CLASSES: dict[str, list[str]] = {
    "mnist": [f"{d}" for d in range(10)],
    "fashion_mnist": list(_SHAPES),
    "cifar10": [f"{tone} {shape}" for tone in ("warm", "cool") for shape in _SHAPES[:5]],
}


def _glyphs() -> torch.Tensor:
    """The 10 digit bitmaps as (10, 1, 9, 7) floats, with a 1-pixel empty border."""
    rows = [r.split() for r in _FONT.strip().splitlines()]  # 7 rows x 10 digits
    g = torch.tensor([[[c == "#" for c in rows[y][d]] for y in range(7)] for d in range(10)], dtype=torch.float32)
    return F.pad(g, (1, 1, 1, 1)).unsqueeze(1)


def _shape_templates(res: int = 64) -> torch.Tensor:
    """The 10 silhouettes of ``_SHAPES`` as (10, 1, res, res) masks in [0, 1]."""
    c = (torch.arange(res, dtype=torch.float32) + 0.5) / res * 2 - 1
    v, u = torch.meshgrid(-c, c, indexing="ij")  # v points up
    r = torch.sqrt(u**2 + v**2)
    box = torch.maximum(u.abs(), v.abs())
    masks = [
        r < 0.85,
        box < 0.7,
        (v > -0.6) & (u.abs() < (0.85 - v) * 0.62),
        (r > 0.5) & (r < 0.88),
        ((u.abs() < 0.24) & (v.abs() < 0.85)) | ((v.abs() < 0.24) & (u.abs() < 0.85)),
        u.abs() + v.abs() < 0.9,
        (box < 0.75) & (torch.sin(v * math.pi * 2.6) > 0),
        (box < 0.75) & (torch.sin(u * math.pi * 2.6) > 0),
        (((u - v).abs() < 0.3) | ((u + v).abs() < 0.3)) & (box < 0.8),
        (r < 0.85) & (v > -0.1),
    ]
    return torch.stack(masks).float().unsqueeze(1)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _smooth_noise(n: int, size: int, g: torch.Generator, *, cells: int = 4, channels: int = 1) -> torch.Tensor:
    """Random fields that vary slowly across the image: (n, channels, size, size), roughly in [-1, 1]."""
    coarse = torch.rand(n, channels, cells, cells, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def _place(templates: torch.Tensor, classes: torch.Tensor, size: int, g: torch.Generator, *,
           extent: tuple[float, float], max_rot: float, max_shift: float, max_shear: float,
           warp: float = 0.0, tx: torch.Tensor | None = None) -> torch.Tensor:
    """Draw ``templates[classes]`` at random scale, rotation, shear, shift and smooth warp: (N, 1, size, size).

    ``tx``, if given, is each drawing's horizontal centre (-1 = left edge, 1 = right edge).
    """
    n = classes.numel()
    scale = _uniform(n, *extent, g)  # fraction of the canvas the template spans
    aspect = _uniform(n, 0.8, 1.2, g)
    rot = _uniform(n, -max_rot, max_rot, g) * math.pi / 180
    shear = _uniform(n, -max_shear, max_shear, g)
    cos, sin = torch.cos(rot), torch.sin(rot)
    # theta maps output coordinates to template coordinates (both in [-1, 1]).
    a11, a12 = cos / (scale * aspect), (-sin + shear * cos) / (scale * aspect)
    a21, a22 = sin / scale, (cos + shear * sin) / scale
    tx = tx if tx is not None else _uniform(n, -max_shift, max_shift, g)
    ty = _uniform(n, -max_shift, max_shift, g)
    theta = torch.stack([
        torch.stack([a11, a12, -(a11 * tx + a12 * ty)], 1),
        torch.stack([a21, a22, -(a21 * tx + a22 * ty)], 1),
    ], 1)  # (N, 2, 3)
    out = torch.empty(n, 1, size, size)
    for i in range(0, n, 4096):  # chunks bound the memory of the sampling grid
        sl = slice(i, i + 4096)
        m = theta[sl].shape[0]
        grid = F.affine_grid(theta[sl], [m, 1, size, size], align_corners=False)
        if warp:  # an elastic wobble of the strokes, different in every image
            grid = grid + warp * _smooth_noise(m, size, g, channels=2).permute(0, 2, 3, 1)
        out[sl] = F.grid_sample(templates[classes[sl]], grid, mode="bilinear", padding_mode="zeros",
                                align_corners=False)
    return out


def _blank_patches(n: int, size: int, g: torch.Generator, *, share: float, side: tuple[int, int]) -> torch.Tensor:
    """(n, 1, size, size) masks: 0 inside one random square patch for ``share`` of the images, else 1."""
    keep = torch.ones(n, 1, size, size)
    hit = torch.nonzero(torch.rand(n, generator=g) < share).flatten().tolist()
    for i in hit:
        s = int(torch.randint(side[0], side[1] + 1, (1,), generator=g))
        y, x = (int(v) for v in torch.randint(0, size - s + 1, (2,), generator=g))
        keep[i, :, y:y + s, x:x + s] = 0
    return keep


def _others(labels: torch.Tensor, g: torch.Generator, classes: int = 10) -> torch.Tensor:
    """A random class different from each label (distractors never repeat the object's class)."""
    return (labels + torch.randint(1, classes, labels.shape, generator=g)) % classes


def _digits(labels: torch.Tensor, g: torch.Generator) -> np.ndarray:
    """MNIST-like digits: (N, 28, 28) uint8, white ink on black, with a neighbour's fragment and stray strokes."""
    n = len(labels)
    glyphs = _glyphs()
    ink = _place(glyphs, labels, 28, g, extent=(0.55, 0.82), max_rot=18, max_shift=0.14, max_shear=0.35, warp=0.06)
    # a fragment of another digit at the left or right edge, as in a crop from a line of handwriting
    side = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    frag = _place(glyphs, _others(labels, g), 28, g, extent=(0.5, 0.75), max_rot=15, max_shift=0.1, max_shear=0.3,
                  tx=side * _uniform(n, 0.95, 1.25, g))
    strokes = (_smooth_noise(n, 28, g, cells=6) > 0.75).float() * (torch.rand(n, 1, 1, 1, generator=g) < 0.4)
    weight = 1.2 + 0.9 * torch.rand(n, 1, 1, 1, generator=g)  # stroke weight varies by writer
    img = torch.maximum(ink * weight, 0.8 * frag * (torch.rand(n, 1, 1, 1, generator=g) < 0.7))
    img = torch.maximum(img.clamp(0, 1), 0.7 * strokes) * _blank_patches(n, 28, g, share=0.3, side=(7, 12))
    img = img + 0.08 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()


def _silhouettes(labels: torch.Tensor, g: torch.Generator) -> np.ndarray:
    """Fashion-MNIST-like grey silhouettes: (N, 28, 28) uint8, textured, partly blanked, beside a distractor."""
    n = len(labels)
    shapes = _shape_templates()
    mask = _place(shapes, labels, 28, g, extent=(0.6, 0.95), max_rot=25, max_shift=0.12, max_shear=0.2, warp=0.08)
    small = _place(shapes, _others(labels, g), 28, g, extent=(0.25, 0.4), max_rot=40, max_shift=0.6, max_shear=0.2)
    level = 0.4 + 0.6 * torch.rand(n, 1, 1, 1, generator=g)
    texture = 1 - 0.35 * torch.rand(mask.shape, generator=g) - 0.25 * _smooth_noise(n, 28, g, cells=5).abs()
    img = torch.maximum(mask * level * texture, small * 0.6 * torch.rand(n, 1, 1, 1, generator=g))
    img = img * _blank_patches(n, 28, g, share=0.35, side=(8, 13)) + 0.05 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV -> RGB for (N,) tensors in [0, 1]; returns (N, 3)."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def _random_colours(n: int, g: torch.Generator, *, sat: tuple[float, float], val: tuple[float, float]) -> torch.Tensor:
    return _hsv_to_rgb(torch.rand(n, generator=g), _uniform(n, *sat, g), _uniform(n, *val, g))


def _colour_shapes(labels: torch.Tensor, g: torch.Generator) -> np.ndarray:
    """CIFAR-10-like images: (N, 32, 32, 3) uint8; class = (warm|cool) x shape, over clutter."""
    n = len(labels)
    shapes = _shape_templates()
    shape, tone = labels % 5, labels // 5
    # background: a pale colour, mottled by a smooth random field, behind a smaller shape of another
    # class, kept away from the centre
    img = _random_colours(n, g, sat=(0, 0.35), val=(0.2, 0.8))[:, :, None, None] * \
        (1 + 0.1 * _smooth_noise(n, 32, g, cells=3, channels=3))
    clutter = _place(shapes, (shape + torch.randint(1, 5, (n,), generator=g)) % 5, 32, g, extent=(0.2, 0.35),
                     max_rot=45, max_shift=0.8, max_shear=0.2)
    colour = _random_colours(n, g, sat=(0.3, 1), val=(0.4, 1))[:, :, None, None]
    img = img * (1 - clutter) + colour * clutter
    mask = _place(shapes, shape, 32, g, extent=(0.55, 0.9), max_rot=20, max_shift=0.18, max_shear=0.15, warp=0.05)
    # object hue: warm (red-yellow) or cool (cyan-blue); AMBIGUOUS of them any hue, so shape must matter
    hue = torch.where(tone == 0, 0.0 + 0.16 * torch.rand(n, generator=g), 0.48 + 0.2 * torch.rand(n, generator=g))
    hue = torch.where(torch.rand(n, generator=g) < AMBIGUOUS, torch.rand(n, generator=g), hue)
    obj = _hsv_to_rgb(hue, _uniform(n, 0.5, 1, g), _uniform(n, 0.55, 1, g))
    shade = 0.85 + 0.15 * torch.rand(n, 1, 32, 32, generator=g)
    img = img * (1 - mask) + obj[:, :, None, None] * mask * shade
    ramp = torch.linspace(-0.15, 0.15, 32).view(1, 1, 32, 1) * torch.randn(n, 1, 1, 1, generator=g)  # lighting
    img = img + ramp + 0.05 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


_DRAW = {"mnist": _digits, "fashion_mnist": _silhouettes, "cifar10": _colour_shapes}


def standin_labels(n: int, *, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` classes to draw (balanced, shuffled) and the labels written for them (``LABEL_NOISE`` shuffled).

    The noisy labels are the drawn classes of those images, shuffled among them: every class
    keeps exactly its count, so label budgets stay balanced.

    Args:
        n: images in the split.
        g: the generator every random choice is drawn from.

    Example:
        >>> drawn, written = standin_labels(1000, g=torch.Generator().manual_seed(0))
        >>> torch.bincount(written).tolist() == [100] * 10, 0.02 < (drawn != written).float().mean().item() < 0.08
        (True, True)
    """
    drawn = (torch.arange(n) % 10)[torch.randperm(n, generator=g)]
    noisy = torch.nonzero(torch.rand(n, generator=g) < LABEL_NOISE).flatten()
    written = drawn.clone()
    written[noisy] = drawn[noisy[torch.randperm(noisy.numel(), generator=g)]]
    return drawn, written


def draw_images(name: str, classes: torch.Tensor, *, g: torch.Generator) -> np.ndarray:
    """Stand-in images of ``classes`` for dataset ``name``, as the real dataset stores them.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` (``(N, 28, 28)`` uint8) or ``"cifar10"`` (``(N, 32, 32, 3)``).
        classes: int64 ``(N,)``, the class each image shows.
        g: the generator every random choice is drawn from; the same state gives the same images.

    Example:
        >>> draw_images("mnist", torch.tensor([3, 1]), g=torch.Generator().manual_seed(0)).dtype
        dtype('uint8')
    """
    return _DRAW[name](classes, g)
