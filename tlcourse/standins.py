"""Small, learnable stand-ins for MNIST, Fashion-MNIST and CIFAR-10, written in the real formats.

Tests, CI and learners without internet cannot download the real datasets. With
``TLCOURSE_STANDIN=1`` the course generates stand-ins instead and loads them through
the *same* torchvision classes a download would use:

* MNIST: the digits 0-9 drawn from a 5x7 bitmap font, randomly scaled, rotated,
  sheared and shifted on a 28x28 canvas (IDX files, as torchvision stores MNIST).
* Fashion-MNIST: ten grey silhouettes (disc, square, triangle, ...), same format.
* CIFAR-10: five shapes in two colour families ("warm" reds/yellows and "cool"
  blues/cyans) on noisy coloured backgrounds, 32x32 RGB, as CIFAR-10's python pickles.

Classes differ in shape and colour, not in noise, so a network can learn them; but
they are *not* the real datasets and numbers measured on them say nothing about
MNIST or CIFAR-10. Every notebook says so on screen when they are in use.

Each stand-in folder holds a ``STANDIN.json`` marker, written last, with the settings and
the SHA-256 of every file: ``ensure_standin`` regenerates a stand-in that is missing,
stale, truncated or damaged (saying so in one line), and leaves an intact one alone.

Example:
    >>> from pathlib import Path; import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> write_standin("mnist", root, n_train=100, n_test=20)
    >>> from torchvision.datasets import MNIST
    >>> len(MNIST(root, train=True))
    100
"""

from __future__ import annotations

import json
import math
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .datafiles import checksum_problems, file_digest
from .files import ensure_writable

__all__ = ["STANDIN_CLASSES", "NOT_GENERATED", "write_standin", "standin_problem", "standin_ready", "ensure_standin"]

GENERATOR_VERSION = 1  # bump when the images change, so old stand-ins are regenerated

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

# Where torchvision looks for each dataset under its root, and the files it reads there.
_FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "cifar-10-batches-py"}
_IDX_FILES = [f"raw/{split}-{kind}-ubyte" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]
_FILES = {"mnist": _IDX_FILES, "fashion_mnist": _IDX_FILES,
          "cifar10": [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]}

NOT_GENERATED = "not generated yet"  # standin_problem's answer for a folder that never held the stand-in


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


def _place(templates: torch.Tensor, classes: torch.Tensor, size: int, g: torch.Generator, *,
           extent: tuple[float, float], max_rot: float, max_shift: float, max_shear: float) -> torch.Tensor:
    """Draw ``templates[classes]`` at random scale, rotation, shear and shift: (N, 1, size, size)."""
    n = classes.numel()

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=g)

    scale = uniform(*extent)  # fraction of the canvas the template spans
    aspect = uniform(0.85, 1.15)
    rot = uniform(-max_rot, max_rot) * math.pi / 180
    shear = uniform(-max_shear, max_shear)
    cos, sin = torch.cos(rot), torch.sin(rot)
    # theta maps output coordinates to template coordinates (both in [-1, 1]).
    a11, a12 = cos / (scale * aspect), (-sin + shear * cos) / (scale * aspect)
    a21, a22 = sin / scale, (cos + shear * sin) / scale
    tx, ty = uniform(-max_shift, max_shift), uniform(-max_shift, max_shift)
    theta = torch.stack([
        torch.stack([a11, a12, -(a11 * tx + a12 * ty)], 1),
        torch.stack([a21, a22, -(a21 * tx + a22 * ty)], 1),
    ], 1)  # (N, 2, 3)
    out = torch.empty(n, 1, size, size)
    for i in range(0, n, 4096):  # chunks bound the memory of the sampling grid
        sl = slice(i, i + 4096)
        grid = F.affine_grid(theta[sl], [theta[sl].shape[0], 1, size, size], align_corners=False)
        out[sl] = F.grid_sample(templates[classes[sl]], grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out


def _digits(labels: torch.Tensor, g: torch.Generator) -> np.ndarray:
    """MNIST-like digits: (N, 28, 28) uint8, white ink on black."""
    ink = _place(_glyphs(), labels, 28, g, extent=(0.62, 0.8), max_rot=12, max_shift=0.12, max_shear=0.25)
    weight = 1.4 + 0.8 * torch.rand(len(labels), 1, 1, 1, generator=g)  # stroke weight varies by writer
    img = (ink * weight).clamp(0, 1) + 0.04 * torch.randn(ink.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()


def _silhouettes(labels: torch.Tensor, g: torch.Generator) -> np.ndarray:
    """Fashion-MNIST-like grey silhouettes: (N, 28, 28) uint8."""
    mask = _place(_shape_templates(), labels, 28, g, extent=(0.7, 0.95), max_rot=15, max_shift=0.1, max_shear=0.1)
    level = 0.45 + 0.55 * torch.rand(len(labels), 1, 1, 1, generator=g)
    texture = 1 - 0.25 * torch.rand(mask.shape, generator=g)
    img = mask * level * texture
    return (img.clamp(0, 1) * 255).round().to(torch.uint8)[:, 0].numpy()


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Vectorised HSV -> RGB for (N,) tensors in [0, 1]; returns (N, 3)."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None] * 6) % 6
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def _colour_shapes(labels: torch.Tensor, g: torch.Generator) -> np.ndarray:
    """CIFAR-10-like images: (N, 32, 32, 3) uint8; class = (warm|cool) x shape."""
    n = len(labels)
    shape, tone = labels % 5, labels // 5
    mask = _place(_shape_templates(), shape, 32, g, extent=(0.55, 0.9), max_rot=20, max_shift=0.18, max_shear=0.15)
    # Object hue: warm (red-yellow) or cool (cyan-blue); 20% of images get any hue, so shape must matter.
    hue = torch.where(tone == 0, 0.0 + 0.16 * torch.rand(n, generator=g), 0.48 + 0.2 * torch.rand(n, generator=g))
    anyhue = torch.rand(n, generator=g) < 0.2
    hue = torch.where(anyhue, torch.rand(n, generator=g), hue)
    obj = _hsv_to_rgb(hue, 0.5 + 0.5 * torch.rand(n, generator=g), 0.55 + 0.45 * torch.rand(n, generator=g))
    bg = _hsv_to_rgb(torch.rand(n, generator=g), 0.35 * torch.rand(n, generator=g), 0.2 + 0.6 * torch.rand(n, generator=g))
    ramp = torch.linspace(-0.15, 0.15, 32).view(1, 1, 32, 1) * torch.randn(n, 1, 1, 1, generator=g)  # lighting
    img = bg[:, :, None, None] + ramp
    img = img * (1 - mask) + obj[:, :, None, None] * mask * (0.85 + 0.15 * torch.rand(n, 1, 32, 32, generator=g))
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _balanced_labels(n: int, g: torch.Generator) -> torch.Tensor:
    """``n`` labels, as equal a count per class as ``n`` allows, in random order."""
    return (torch.arange(n) % 10)[torch.randperm(n, generator=g)]


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array in the IDX format of MNIST (magic 0x08 = unsigned byte)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def _write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _marker(name: str, n_train: int, n_test: int, seed: int) -> dict:
    return {"dataset": name, "n_train": n_train, "n_test": n_test, "seed": seed, "version": GENERATOR_VERSION,
            "note": "Generated by tlcourse as a stand-in; this is NOT the real dataset."}


def standin_problem(name: str, root: str | os.PathLike, *, n_train: int, n_test: int, seed: int = 0) -> str | None:
    """Why ``root`` does not hold an intact copy of this stand-in, or ``None`` when it does.

    Args:
        name, n_train, n_test, seed: the stand-in, as given to ``write_standin``.
        root: the directory it was written under.

    Returns:
        ``None``; ``NOT_GENERATED``; or what is wrong: stale settings, a missing or damaged file.

    Example:
        >>> import tempfile
        >>> standin_problem("mnist", tempfile.mkdtemp(), n_train=100, n_test=20) == NOT_GENERATED
        True
    """
    folder = Path(root) / _FOLDERS[name]
    marker_path = folder / "STANDIN.json"
    if not marker_path.is_file():
        return NOT_GENERATED
    try:
        marker = json.loads(marker_path.read_text())
    except (OSError, ValueError):
        return "its marker STANDIN.json is unreadable"
    files = marker.pop("files", None) if isinstance(marker, dict) else None
    if marker != _marker(name, n_train, n_test, seed) or not isinstance(files, dict) or set(files) != set(_FILES[name]):
        return "it was made with other settings or by another version of tlcourse"
    for rel in _FILES[name]:
        if not (folder / rel).is_file():
            return f"{rel} is missing"
    damaged = checksum_problems({folder / rel: files[rel] for rel in _FILES[name]}, algorithm="sha256")
    return f"{damaged[0][0].relative_to(folder)} is damaged: {damaged[0][1]}" if damaged else None


def standin_ready(name: str, root: str | os.PathLike, *, n_train: int, n_test: int, seed: int = 0) -> bool:
    """True when ``root`` already holds this stand-in, intact, at these sizes.

    Example:
        >>> import tempfile
        >>> standin_ready("cifar10", tempfile.mkdtemp(), n_train=50, n_test=10)
        False
    """
    return standin_problem(name, root, n_train=n_train, n_test=n_test, seed=seed) is None


def ensure_standin(name: str, root: str | os.PathLike, *, n_train: int, n_test: int, seed: int = 0,
                   damaged: str | None = None, env: str | None = None) -> None:
    """Generate this stand-in unless ``root`` holds it intact; a stale or damaged one is replaced, with a note.

    Args:
        name, n_train, n_test, seed: the stand-in, as given to ``write_standin``.
        root: the directory it lives under.
        damaged: why the caller could not read it (a failed load); regenerates even when the files look intact.
        env: the environment variable that sets ``root``, named when ``root`` is not writable.

    Raises:
        OutputNotWritableError: it must be (re)generated but ``root`` cannot be written.

    Example:
        >>> import tempfile; root = tempfile.mkdtemp()
        >>> ensure_standin("mnist", root, n_train=20, n_test=10)  # generated silently the first time
        >>> standin_ready("mnist", root, n_train=20, n_test=10)
        True
    """
    problem = damaged or standin_problem(name, root, n_train=n_train, n_test=n_test, seed=seed)
    if problem is None:
        return
    ensure_writable(root, what=f"the generated {name} stand-in", env=env)
    if problem != NOT_GENERATED:
        print(f"note: regenerating the {name} stand-in in {Path(root) / _FOLDERS[name]}: {problem}.", file=sys.stderr)
    write_standin(name, root, n_train=n_train, n_test=n_test, seed=seed)


def write_standin(name: str, root: str | os.PathLike, *, n_train: int, n_test: int, seed: int = 0) -> None:
    """Generate the stand-in for ``name`` under ``root``, laid out as torchvision expects.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        root: the directory passed as ``root=`` to the torchvision dataset class.
        n_train: training images (about ``n_train / 10`` per class).
        n_test: test images.
        seed: the same seed gives byte-identical files.

    Example:
        >>> import tempfile; write_standin("cifar10", tempfile.mkdtemp(), n_train=50, n_test=10)
    """
    if name not in _FOLDERS:
        raise ValueError(f"No stand-in for {name!r}; choose one of {sorted(_FOLDERS)}")
    if n_train < 10 or n_test < 10:
        raise ValueError(f"Stand-ins need at least 10 train and 10 test images (one per class); got {n_train}, {n_test}")
    g = torch.Generator().manual_seed(seed)
    folder = Path(root) / _FOLDERS[name]
    (folder / "STANDIN.json").unlink(missing_ok=True)  # written last: its presence means 'complete'
    splits = {"train": _balanced_labels(n_train, g), "test": _balanced_labels(n_test, g)}
    if name in ("mnist", "fashion_mnist"):
        raw = folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        draw = _digits if name == "mnist" else _silhouettes
        for split, prefix in (("train", "train"), ("test", "t10k")):
            labels = splits[split]
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", draw(labels, g))
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels.numpy().astype(np.uint8))
    else:
        folder.mkdir(parents=True, exist_ok=True)
        train_labels = splits["train"]
        train_images = _colour_shapes(train_labels, g)
        # CIFAR-10 stores each image as 3072 bytes: the red plane, then green, then blue.
        flat = train_images.transpose(0, 3, 1, 2).reshape(len(train_labels), -1)
        for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
            _write_pickle(folder / f"data_batch_{i}", {"batch_label": f"stand-in training batch {i} of 5",
                          "labels": train_labels[part].tolist(), "data": flat[part]})
        test_labels = splits["test"]
        test_flat = _colour_shapes(test_labels, g).transpose(0, 3, 1, 2).reshape(n_test, -1)
        _write_pickle(folder / "test_batch", {"batch_label": "stand-in testing batch 1 of 1",
                      "labels": test_labels.tolist(), "data": test_flat})
        _write_pickle(folder / "batches.meta", {"label_names": STANDIN_CLASSES["cifar10"],
                      "num_cases_per_batch": math.ceil(n_train / 5), "num_vis": 3072})
    marker = _marker(name, n_train, n_test, seed)
    marker["files"] = {rel: file_digest(folder / rel) for rel in _FILES[name]}
    (folder / "STANDIN.json").write_text(json.dumps(marker, indent=1))
