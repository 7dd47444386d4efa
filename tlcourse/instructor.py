"""Tools for instructors: student copies of the notebooks, and offline data packs.

``python -m tlcourse instructor student-copies --out student/``
    writes every notebook with its solution cells (tagged ``solution``) removed and its
    outputs cleared; the exercise prompts, placeholders and checks stay, and a check
    with no answer says so instead of failing.

``python -m tlcourse instructor fetch``
    downloads every dataset and pretrained weight the course uses, with torchvision's
    own download and checksum code (needs internet).

``python -m tlcourse instructor pack --archive tlcourse-data.tar.gz``
``python -m tlcourse instructor unpack tlcourse-data.tar.gz``
    pack what ``fetch`` downloaded into one archive (with a SHA-256 manifest) and unpack
    it on machines without internet: datasets into the data directory, weights into
    torch's hub cache.

"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import nbformat
import torch

from .data import DATASETS, STANDIN_ENV, data_dir, load_dataset, using_standins

__all__ = ["PRETRAINED_WEIGHTS", "strip_solutions", "write_student_copies", "fetch_all", "pack_data", "unpack_data"]

SOLUTION_TAG = "solution"
# The torchvision weights the course loads (by their enum name); fetch/pack/unpack cover these.
PRETRAINED_WEIGHTS = ("ResNet18_Weights.IMAGENET1K_V1",)
# Folders torchvision keeps under the data directory for each dataset.
_DATA_FOLDERS = ("MNIST", "FashionMNIST", "cifar-10-batches-py")
_MANIFEST = "MANIFEST.json"


def strip_solutions(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return a copy of ``nb`` without solution cells and without outputs.

    Example:
        >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["solution"]})])
        >>> len(strip_solutions(nb).cells)
        0
    """
    out = nbformat.from_dict(json.loads(json.dumps(nb)))  # deep copy
    out.cells = [c for c in out.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return out


def write_student_copies(notebooks: list[Path], out_dir: Path) -> list[Path]:
    """Write solution-free copies of ``notebooks`` into ``out_dir``; return their paths.

    Example:
        >>> write_student_copies(sorted(Path("notebooks").glob("*.ipynb")), Path("student"))  # doctest: +SKIP
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        target = out_dir / path.name
        nbformat.write(strip_solutions(nb), target)
        written.append(target)
    return written


def fetch_all() -> None:
    """Download every dataset and pretrained weight the course uses (torchvision checks them)."""
    if using_standins():
        raise RuntimeError(f"{STANDIN_ENV} is set: unset it to fetch the real datasets.")
    for name in DATASETS:
        for train in (True, False):
            load_dataset(name, train=train, download=True)
    from torchvision.models import get_weight

    for weights in PRETRAINED_WEIGHTS:
        get_weight(weights).get_state_dict(progress=True)


def _weight_files() -> list[Path]:
    """Paths the pretrained weights occupy in torch's hub cache (present or not)."""
    from torchvision.models import get_weight

    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return [hub / os.path.basename(get_weight(w).url) for w in PRETRAINED_WEIGHTS]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
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
    manifest = {name: _sha256(path) for name, path in members.items()}
    archive.parent.mkdir(parents=True, exist_ok=True)
    tmp = archive.with_name(archive.name + ".partial")
    with tarfile.open(tmp, "w:gz") as tar:
        blob = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(_MANIFEST)
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
        for name, path in members.items():
            tar.add(path, arcname=name)
    os.replace(tmp, archive)  # a half-written archive never has the final name
    return manifest


def unpack_data(archive: Path, *, root: Path | None = None) -> int:
    """Unpack an archive made by ``pack_data``; verify every file's SHA-256; return the file count.

    Example:
        >>> unpack_data(Path("tlcourse-data.tar.gz"))  # doctest: +SKIP
    """
    root = root or data_dir()
    hub = Path(torch.hub.get_dir())
    with tarfile.open(archive, "r:gz") as tar:
        try:
            manifest = json.load(tar.extractfile(_MANIFEST))
        except KeyError:
            raise ValueError(f"{archive} has no {_MANIFEST}: it was not made by `instructor pack`.") from None
        for member in tar.getmembers():
            if member.name == _MANIFEST:
                continue
            if member.name not in manifest:
                raise ValueError(f"{archive}: unexpected member {member.name}")
            top, _, rest = member.name.partition("/")
            if top not in ("data", "torch-hub") or not rest:
                raise ValueError(f"{archive}: unexpected member {member.name}")
            base = root if top == "data" else hub
            tar.extract(member.replace(name=rest), base, filter="data")  # 'data' filter: no paths outside base
            dest = base / rest
            if member.isfile() and _sha256(dest) != manifest[member.name]:
                raise ValueError(f"{dest} does not match its checksum: the archive is damaged; copy it again.")
    return len(manifest)


def main(argv: list[str]) -> int:
    """Command line for instructors; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m tlcourse instructor", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("student-copies", help="notebooks without solution cells")
    s.add_argument("--out", type=Path, required=True, help="folder for the copies")
    s.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
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
    elif args.command == "fetch":
        fetch_all()
        print(f"datasets in {data_dir()}, weights in {Path(torch.hub.get_dir()) / 'checkpoints'}")
    elif args.command == "pack":
        manifest = pack_data(args.archive)
        print(f"packed {len(manifest)} files into {args.archive}")
    else:
        if not args.archive.is_file():
            parser.error(f"no such archive: {args.archive}")
        n = unpack_data(args.archive)
        print(f"unpacked {n} files: datasets into {data_dir()}, weights into {torch.hub.get_dir()}")
    return 0
