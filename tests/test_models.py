"""Model shapes, and torchvision's real ``weights=`` path loaded offline from a stand-in file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.hub
import torchvision
from torchvision.models import ResNet18_Weights

import tlcourse as tl


@pytest.mark.parametrize(("in_channels", "size", "flat"), [(1, 28, 320), (3, 32, 500)])
def test_lenet_output_shape_and_computed_flatten_size(in_channels: int, size: int, flat: int) -> None:
    model = tl.LeNet(in_channels=in_channels, image_size=size, num_classes=7)
    assert model.fc1.in_features == flat
    assert model(torch.randn(2, in_channels, size, size)).shape == (2, 7)
    # The document's state_dict keys, which the course's pitfall demonstration relies on.
    assert list(model.state_dict()) == [
        "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"
    ]


def test_lenet_rejects_images_too_small() -> None:
    with pytest.raises(ValueError, match="image_size"):
        tl.LeNet(image_size=12)


def test_cifar_resnet18_has_a_3x3_stem_and_no_maxpool() -> None:
    model = tl.cifar_resnet18(num_classes=10)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TORCH_HOME in a temp dir, with any download turned into an error."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"attempted a download: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return tmp_path


def test_imagenet_model_loads_weights_through_torchvision_without_downloading(offline_hub: Path) -> None:
    weights = ResNet18_Weights.IMAGENET1K_V1
    torch.manual_seed(0)
    standin = torchvision.models.resnet18().state_dict()  # random weights in the real file's place
    cache = offline_hub / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(standin, cache / os.path.basename(weights.url))

    for w in (weights, "IMAGENET1K_V1"):
        model = tl.imagenet_model("resnet18", weights=w, num_classes=10)
        state = model.state_dict()
        backbone = [k for k in standin if not k.startswith("fc.")]
        assert len(backbone) > 100
        assert all(torch.equal(state[k], standin[k]) for k in backbone)
        assert model.fc.out_features == 10 and model.fc.in_features == 512
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_imagenet_model_without_weights_and_missing_file_would_download(offline_hub: Path) -> None:
    model = tl.imagenet_model("resnet18", weights=None, num_classes=None)
    assert model.fc.out_features == 1000
    with pytest.raises(AssertionError, match="attempted a download"):
        tl.imagenet_model("resnet18", weights="DEFAULT")  # no file in the cache: the guard fires


def test_imagenet_weights_gives_the_preprocessing_and_rejects_bad_names() -> None:
    w = tl.imagenet_weights("resnet18", "DEFAULT")
    assert w is ResNet18_Weights.IMAGENET1K_V1
    x = w.transforms()(torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        tl.imagenet_weights("resnet18", "NO_SUCH_WEIGHTS")


def test_replace_head_finds_the_classifier_of_other_architectures() -> None:
    model = torchvision.models.mobilenet_v3_small()
    assert tl.replace_head(model, num_classes=3) == "classifier.3"
    assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def _damaged(kind: str, path: Path) -> None:
    """Write a cached weights file damaged in one of the ways a download or a disk can damage it."""
    if kind == "random bytes":
        path.write_bytes(os.urandom(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "wrong weights":
        torch.save({"x": torch.zeros(2)}, path)  # readable, but not resnet18's
    else:
        torch.save(torchvision.models.resnet18().state_dict(), path)
        raw = bytearray(path.read_bytes())
        if kind == "truncated":
            del raw[len(raw) // 2:]
        else:  # "flipped bytes": inside conv weights, the archive structure intact
            raw[len(raw) // 2:len(raw) // 2 + 8] = b"\xff" * 8
        path.write_bytes(bytes(raw))


@pytest.mark.parametrize("kind", ["random bytes", "empty", "truncated", "flipped bytes", "wrong weights"])
def test_a_damaged_cached_imagenet_file_names_the_file_and_says_delete_it(offline_hub: Path, kind: str) -> None:
    cached = offline_hub / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir(parents=True)
    _damaged(kind, cached)
    with pytest.raises(tl.CheckpointError) as info:
        tl.imagenet_model("resnet18", weights="DEFAULT")
    msg = str(info.value)
    assert str(cached) in msg and "Delete it" in msg and "download it afresh" in msg, msg
    assert ResNet18_Weights.IMAGENET1K_V1.url in msg, msg
    assert info.value.__suppress_context__ or info.value.__context__ is None  # no raw UnpicklingError chained
    assert tl.imagenet_weights_file("resnet18", "DEFAULT") == cached and cached.is_file()  # named, not deleted
