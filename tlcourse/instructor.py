"""Tools for instructors: student copies of the notebooks, and offline data packs.

``python -m tlcourse instructor student-copies --out student/``
    writes every notebook with its solution cells (tagged ``solution``) removed and its
    outputs cleared; the exercise prompts, answer cells and checks stay, and a check
    with no answer says so (``tlcourse.classroom``).

``python -m tlcourse instructor collect returned/*.ipynb [--execute] [--out results.csv]``
    tabulates which checks each returned notebook passes: correct, not yet, no answer
    yet, not run; ``--execute`` runs each again first rather than trusting its saved outputs.

``python -m tlcourse instructor fetch``
    downloads every dataset and pretrained weight the course uses, with torchvision's
    own download and checksum code (needs internet).

``python -m tlcourse instructor pack --archive tlcourse-data.tar.gz``
``python -m tlcourse instructor unpack tlcourse-data.tar.gz``
    pack what ``fetch`` downloaded into one archive (with a SHA-256 manifest) and unpack
    it on machines without internet: datasets into the data directory, weights into
    torch's hub cache. Unpacking is all or nothing: the archive is checked and verified
    before any file is moved into place.

"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import zlib
from pathlib import Path
from typing import BinaryIO

import torch

from .data import DATA_ENV, DATASETS, STANDIN_ENV, data_dir, load_dataset, using_standins
from .provenance import DATASET_TITLES, DOWNLOAD_ENV, data_source, downloads_allowed
from .classroom import collect_results, write_student_copies
from .files import atomic_write, ensure_writable

__all__ = ["PRETRAINED_WEIGHTS", "fetch_all", "pack_data", "unpack_data"]

# The torchvision weights the course loads (by their enum name); fetch/pack/unpack cover these.
PRETRAINED_WEIGHTS = ("ResNet18_Weights.IMAGENET1K_V1",)
# Folders torchvision keeps under the data directory for each dataset.
_DATA_FOLDERS = ("MNIST", "FashionMNIST", "cifar-10-batches-py")
_MANIFEST = "MANIFEST.json"
_STAGING_PREFIX = ".tlcourse-unpack-"  # temporary folder inside each destination while unpacking


def fetch_all() -> None:
    """Download every dataset and pretrained weight the course uses (torchvision checks them)."""
    if using_standins():
        raise RuntimeError(f"{STANDIN_ENV} is set: unset it to fetch the real datasets.")
    if not downloads_allowed():
        raise RuntimeError(f"{DOWNLOAD_ENV} switches downloads off: unset it to fetch the real datasets.")
    for name in DATASETS:
        for train in (True, False):
            load_dataset(name, train=train, download=True)
        source = data_source(name)
        if source.kind != "real":  # an offline sample is not the full dataset an instructor packs
            raise RuntimeError(f"{DATASET_TITLES[name]} could not be downloaded in full: {source.description}")
    from torchvision.models import get_weight

    for weights in PRETRAINED_WEIGHTS:
        get_weight(weights).get_state_dict(progress=True)


def _weight_files() -> list[Path]:
    """Paths the pretrained weights occupy in torch's hub cache (present or not)."""
    from torchvision.models import get_weight

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / os.path.basename(get_weight(w).url) for w in PRETRAINED_WEIGHTS]


def _sha256(f: BinaryIO, *, copy_to: BinaryIO | None = None) -> str:
    """SHA-256 of what ``f`` reads, optionally writing the bytes to ``copy_to`` on the way."""
    h = hashlib.sha256()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
        if copy_to is not None:
            copy_to.write(chunk)
    return h.hexdigest()


def pack_data(archive: Path, *, root: Path | None = None) -> dict[str, str]:
    """Pack the downloaded datasets and weights into ``archive`` (.tar.gz); return its manifest.

    Members are ``data/<folder>/...`` and ``torch-hub/checkpoints/<file>``; stand-ins are
    never packed. Missing datasets or weights are an error that names them.

    Example:
        >>> pack_data(Path("tlcourse-data.tar.gz"))  # doctest: +SKIP
    """
    root = root or data_dir()
    members: dict[str, Path] = {}
    missing = [f for f in _DATA_FOLDERS if not (root / f).is_dir()]
    missing += [str(p) for p in _weight_files() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Nothing to pack for: {', '.join(missing)}. Run "
                                f"`python -m tlcourse instructor fetch` first (with internet).")
    for folder in _DATA_FOLDERS:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and not path.name.endswith((".gz", ".tar.gz")):  # skip downloaded archives
                members[f"data/{path.relative_to(root).as_posix()}"] = path
    for path in _weight_files():
        members[f"torch-hub/checkpoints/{path.name}"] = path
    manifest = {}
    for name, path in members.items():
        with open(path, "rb") as f:
            manifest[name] = _sha256(f)
    def write(f: BinaryIO) -> None:
        with tarfile.open(fileobj=f, mode="w:gz") as tar:
            blob = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo(_MANIFEST)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            for name, path in members.items():
                tar.add(path, arcname=name)

    atomic_write(archive, write)  # a half-written archive never has the final name, nor stays behind
    return manifest


def _read_manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, str]:
    """The archive's manifest (member name -> SHA-256), after checking it is one."""
    entries = [m for m in tar.getmembers() if m.name == _MANIFEST]
    if not entries:
        raise ValueError(f"{archive} has no {_MANIFEST}: it was not made by `instructor pack`. Nothing was unpacked.")
    f = tar.extractfile(entries[0]) if len(entries) == 1 and entries[0].isfile() else None
    try:
        manifest = json.load(f) if f is not None else None
    except ValueError:  # not JSON, or not UTF-8
        manifest = None
    if not (isinstance(manifest, dict) and manifest
            and all(isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v) for v in manifest.values())):
        raise ValueError(f"{archive}: {_MANIFEST} is not a manifest written by `instructor pack`; the archive is "
                         "damaged or was changed: copy it again. Nothing was unpacked.")
    return manifest


def _member_problem(member: tarfile.TarInfo, manifest: dict[str, str], bases: dict[str, Path]) -> str | None:
    """Why ``member`` may not be unpacked, or ``None``: the path, the kind, the manifest, the destination."""
    top, _, rest = member.name.partition("/")
    parts = rest.split("/")
    if (top not in bases or "\\" in member.name or any(p in ("", ".", "..") for p in parts)
            or (top == "torch-hub" and (len(parts) != 2 or parts[0] != "checkpoints"))):
        return "a path outside data/ and torch-hub/checkpoints/"
    if not member.isfile():
        return "not a regular file (a link, folder or device)"
    if member.name not in manifest:
        return f"not listed in {_MANIFEST}"
    dest = bases[top].joinpath(*parts)
    if dest.is_dir() or any(p.exists() and not p.is_dir() for p in dest.parents):
        return f"{dest} (or a folder above it) is in the way: move it aside"
    return None


def _check_members(tar: tarfile.TarFile, manifest: dict[str, str], bases: dict[str, Path],
                   archive: Path) -> list[tarfile.TarInfo]:
    """Every member besides the manifest, after checking all of them and the whole manifest; else raise."""
    members = [m for m in tar.getmembers() if m.name != _MANIFEST]
    names = [m.name for m in members]
    problems = [f"{m.name!r}: {why}" for m in members if (why := _member_problem(m, manifest, bases))]
    problems += [f"{n}: in the archive twice" for n in sorted({n for n in names if names.count(n) > 1})]
    problems += [f"{n}: listed in {_MANIFEST} but missing from the archive" for n in manifest if n not in names]
    if problems:
        shown = "\n  ".join(problems[:10]) + (f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ValueError(f"{archive} cannot be unpacked ({len(problems)} problem(s)); nothing was unpacked:\n  "
                         f"{shown}\nMake the archive again with `python -m tlcourse instructor pack`, or copy it again.")
    return members


def _remove_stale_staging(base: Path, *, older_than_s: float = 3600.0) -> None:
    """Delete staging folders that an unpack killed long ago left in ``base``."""
    for old in base.glob(f"{_STAGING_PREFIX}*"):
        with contextlib.suppress(OSError):
            if time.time() - old.stat().st_mtime > older_than_s:
                shutil.rmtree(old)


def unpack_data(archive: Path, *, root: Path | None = None) -> int:
    """Unpack an archive made by ``pack_data``, all or nothing; return the number of files.

    Every member and the whole manifest are checked before anything is written (safe
    paths, regular files, each listed in the manifest, each manifest entry present).
    The files are then extracted into a temporary folder inside each destination (so on
    the same file system), their SHA-256 verified, and only then moved into place. On
    any problem a ``ValueError`` says what is wrong and the data folder and hub cache are
    left exactly as they were.

    Args:
        archive: the ``.tar.gz`` written by ``pack_data``.
        root: the data directory (default ``data_dir()``); weights go to torch's hub cache.

    Example:
        >>> unpack_data(Path("tlcourse-data.tar.gz"))  # doctest: +SKIP
    """
    root = root or data_dir()
    bases = {"data": root, "torch-hub": Path(torch.hub.get_dir())}
    envs = {"data": DATA_ENV, "torch-hub": "TORCH_HOME"}
    staging: dict[str, Path] = {}
    created = {top: [p for p in (base, *base.parents) if not p.exists()] for top, base in bases.items()}
    done = False
    try:
        with tarfile.open(archive, "r:gz") as tar:
            manifest = _read_manifest(tar, archive)
            members = _check_members(tar, manifest, bases, archive)
            for top in sorted({m.name.partition("/")[0] for m in members}):
                base = ensure_writable(bases[top], what="the unpacked files", env=envs[top])
                _remove_stale_staging(base)
                staging[top] = Path(tempfile.mkdtemp(dir=base, prefix=_STAGING_PREFIX))
            damaged = []
            for m in members:  # archive order: one pass through the compressed stream
                top, _, rest = m.name.partition("/")
                tmp = staging[top] / rest
                tmp.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as out:
                    if _sha256(tar.extractfile(m), copy_to=out) != manifest[m.name]:
                        damaged.append(m.name)
        if damaged:
            raise ValueError(f"{archive} is damaged; nothing was unpacked:\n  "
                             + "\n  ".join(f"{n} does not match its checksum" for n in damaged)
                             + "\nCopy the archive again (or make it again with `instructor pack`).")
        for m in members:  # all verified: move into place
            top, _, rest = m.name.partition("/")
            dest = bases[top] / rest
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging[top] / rest, dest)
        done = True
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise ValueError(f"{archive} is not a readable .tar.gz ({e}): it is damaged or incomplete; copy it again. "
                         "Nothing was unpacked.") from None
    finally:
        for tmp in staging.values():
            shutil.rmtree(tmp, ignore_errors=True)
        if not done:  # folders this call created, deepest first, if they are still empty
            for folder in (p for paths in created.values() for p in paths):
                with contextlib.suppress(OSError):
                    folder.rmdir()
    return len(members)


def main(argv: list[str]) -> int:
    """Command line for instructors; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m tlcourse instructor", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("student-copies", help="notebooks without solution cells")
    s.add_argument("--out", type=Path, required=True, help="folder for the copies")
    s.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    c = sub.add_parser("collect", help="which checks each returned notebook passes")
    c.add_argument("notebooks", nargs="+", type=Path, help="the students' notebooks")
    c.add_argument("--execute", action="store_true", help="run each again first instead of reading its outputs")
    c.add_argument("--out", type=Path, help="also write the table as CSV here")
    sub.add_parser("fetch", help="download every dataset and pretrained weight (needs internet)")
    p = sub.add_parser("pack", help="pack fetched data and weights into one archive")
    p.add_argument("--archive", type=Path, default=Path("tlcourse-data.tar.gz"))
    u = sub.add_parser("unpack", help="unpack an archive made by pack")
    u.add_argument("archive", type=Path)
    args = parser.parse_args(argv)
    if args.command == "student-copies":
        notebooks = args.notebooks or sorted(Path("notebooks").glob("*.ipynb"))
        if not notebooks:
            parser.error("no notebooks given and none in ./notebooks")
        for path in write_student_copies(notebooks, args.out):
            print(f"wrote {path}")
    elif args.command == "collect":
        missing = [str(p) for p in args.notebooks if not p.is_file()]
        if missing:
            parser.error(f"no such notebook: {', '.join(missing)}")
        table = collect_results(args.notebooks, execute=args.execute)
        print(table.to_string())
        if args.out:
            atomic_write(args.out, lambda f: f.write(table.to_csv().encode()))
            print(f"wrote {args.out}")
    elif args.command == "fetch":
        fetch_all()
        print(f"datasets in {data_dir()}, weights in {Path(torch.hub.get_dir()) / 'checkpoints'}")
    elif args.command == "pack":
        manifest = pack_data(args.archive)
        print(f"packed {len(manifest)} files into {args.archive}")
    else:
        if not args.archive.is_file():
            parser.error(f"no such archive: {args.archive}")
        try:
            n = unpack_data(args.archive)
        except (ValueError, OSError) as e:  # nothing was unpacked; say why in plain words
            parser.exit(1, f"error: {e}\n")
        print(f"unpacked {n} files: datasets into {data_dir()}, weights into {torch.hub.get_dir()}")
    return 0
