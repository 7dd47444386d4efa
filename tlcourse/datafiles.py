"""Are a dataset's files whole? Cheap checks that name the damaged file instead of guessing; and the IDX writer.

torchvision reads MNIST-style IDX files and CIFAR-10 pickles without saying *which* file
is wrong: a truncated file gives a bare ``AssertionError`` or a reshape error, a damaged
batch "not found or corrupted", and a labels file shorter than its images file loads
without a word. These checks look at one file (or one images/labels pair) at a time, and
at a loaded dataset's arrays, and say what is wrong in a sentence; ``tlcourse.data``
turns that into "present but unreadable: delete FILE".

Each check returns *problems*: ``(file, what is wrong)`` pairs, empty when all is well.
Files that are absent are not problems here (absent data is reported by ``load_dataset``).
``write_idx`` writes MNIST's IDX format (the stand-ins and the offline MNIST sample use it).

Example:
    >>> import tempfile, numpy as np
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> (folder / "labels").write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]))  # says 3 labels, holds 2
    10
    >>> [(path.name, why) for path, why in idx_problems(folder / "images", folder / "labels")]
    [('labels', 'truncated: its header promises 3 bytes of data, the file holds 2')]
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .files import atomic_write

__all__ = ["Problem", "write_idx", "idx_shape", "idx_problems", "file_digest", "checksum_problems", "arrays_problem"]

Problem = tuple[Path, str]  # a file, and what is wrong with it


def write_idx(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a uint8 array as an IDX file of unsigned bytes (MNIST's format), atomically.

    Args:
        path: the file to write; parent folders are created. A reader never sees half a file.
        array: the data, ``(N,)`` labels or ``(N, H, W)`` images; cast to uint8.

    Example:
        >>> import tempfile
        >>> f = write_idx(Path(tempfile.mkdtemp()) / "labels", np.array([3, 1, 4]))
        >>> idx_shape(f), f.read_bytes()[-3:]
        ((3,), b'\\x03\\x01\\x04')
    """
    data = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">BBBB", 0, 0, 0x08, data.ndim) + struct.pack(f">{data.ndim}I", *data.shape)
    return atomic_write(path, lambda f: f.write(header + data.tobytes()))


def idx_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape an IDX file of unsigned bytes (MNIST's format) declares, once its size is checked.

    Reads only the header; the data must be exactly as long as the header promises.

    Args:
        path: the IDX file (not gzipped).

    Raises:
        ValueError: the file is not an IDX file of bytes, or is truncated / too long; the
            message says which.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x"
        >>> _ = f.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 7]))
        >>> idx_shape(f)
        (2,)
    """
    size = Path(path).stat().st_size
    with open(path, "rb") as f:
        magic = f.read(4)
        if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] != 0x08 or not 1 <= magic[3] <= 4:
            raise ValueError(f"not an IDX file of unsigned bytes (its first bytes are {magic.hex() or 'missing'})")
        ndim = magic[3]
        dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(f"truncated: the file ends inside its {ndim}-dimensional header")
    shape = struct.unpack(f">{ndim}I", dims)
    expected, held = int(np.prod(shape)), size - 4 - 4 * ndim
    if held < expected:
        raise ValueError(f"truncated: its header promises {expected} bytes of data, the file holds {held}")
    if held > expected:
        raise ValueError(f"too long: its header promises {expected} bytes of data, the file holds {held}")
    return tuple(shape)


def idx_problems(images: str | os.PathLike, labels: str | os.PathLike, *,
                 image_shape: tuple[int, ...] = (28, 28)) -> list[Problem]:
    """What is wrong with a pair of IDX files, images ``(N, H, W)`` and labels ``(N,)``; absent ones are skipped.

    Args:
        images: the images file, e.g. ``.../MNIST/raw/train-images-idx3-ubyte``.
        labels: the labels file of the same split.
        image_shape: ``(H, W)`` each image must have.

    Example:
        >>> idx_problems(Path("/nonexistent/images"), Path("/nonexistent/labels"))
        []
    """
    images, labels = Path(images), Path(labels)
    shapes: dict[Path, tuple[int, ...]] = {}
    problems: list[Problem] = []
    for path, want in ((images, (None, *image_shape)), (labels, (None,))):
        if not path.is_file():
            continue
        try:
            shape = idx_shape(path)
        except (OSError, ValueError) as err:
            problems.append((path, str(err)))
            continue
        if len(shape) != len(want) or shape[1:] != want[1:]:
            problems.append((path, f"holds an array of shape {shape}; expected {('N', *want[1:])}".replace("'", "")))
        else:
            shapes[path] = shape
    if len(shapes) == 2 and shapes[images][0] != shapes[labels][0]:
        n_images, n_labels = shapes[images][0], shapes[labels][0]
        problems.append((labels, f"holds {n_labels} labels but {images.name} holds {n_images} images"))
        problems.append((images, f"holds {n_images} images but {labels.name} holds {n_labels} labels"))
    return problems


def file_digest(path: str | os.PathLike, *, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in chunks.

    Args:
        path: the file.
        algorithm: any ``hashlib`` name (``"sha256"``, ``"md5"``, ...).

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "x"; _ = f.write_bytes(b"abc")
        >>> file_digest(f, algorithm="md5")
        '900150983cd24fb0d6963f7d28e17f72'
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def checksum_problems(expected: Mapping[Path, str], *, algorithm: str) -> list[Problem]:
    """Files that are present but whose checksum differs from the expected one.

    Args:
        expected: file -> hex digest of its intact bytes.
        algorithm: the ``hashlib`` name of those digests.

    Example:
        >>> checksum_problems({Path("/nonexistent"): "00"}, algorithm="md5")
        []
    """
    problems: list[Problem] = []
    for path, digest in expected.items():
        path = Path(path)
        if not path.is_file():
            continue
        try:
            actual = file_digest(path, algorithm=algorithm)
        except OSError as err:
            problems.append((path, f"cannot be read ({type(err).__name__}: {err})"))
            continue
        if actual != digest:
            problems.append((path, f"its {algorithm} checksum differs from the intact file's"))
    return problems


def arrays_problem(images: object, labels: object, *, item_shape: tuple[int, ...] | None = None,
                   num_classes: int | None = None) -> str | None:
    """What is wrong with a loaded dataset's images and labels, or ``None`` when they fit together.

    Args:
        images: array-like ``(N, ...)`` of uint8 pixels.
        labels: array-like ``(N,)`` of class indices.
        item_shape: the shape each image must have, e.g. ``(28, 28)`` or ``(32, 32, 3)``.
        num_classes: labels must lie in ``[0, num_classes)``.

    Example:
        >>> arrays_problem(np.zeros((200, 28, 28), np.uint8), np.zeros(100, np.int64))
        '200 images but 100 labels'
    """
    x, y = np.asarray(images), np.asarray(labels)
    if y.ndim != 1:
        return f"labels of shape {y.shape}; expected one label per image"
    if len(x) != len(y):
        return f"{len(x)} images but {len(y)} labels"
    if x.dtype != np.uint8:
        return f"images of dtype {x.dtype}; expected uint8 pixels"
    if item_shape is not None and x.shape[1:] != tuple(item_shape):
        return f"images of shape {x.shape[1:]}; expected {tuple(item_shape)}"
    if num_classes is not None and len(y) and (y.min() < 0 or y.max() >= num_classes):
        return f"labels from {y.min()} to {y.max()}; expected 0 to {num_classes - 1}"
    return None
