"""The networks the course trains: the document's small CNN, a CIFAR ResNet, ImageNet models.

``LeNet`` is the document's model with its one bug fixed (``LeNetBN``: with BatchNorm): the flatten size is computed
from the image size instead of hard-coded to 320 (right for 28×28, wrong for 32×32). ``WideCNN`` is the same
network made wider (32 and 64 filters, 256 hidden units): a big teacher to distil into a LeNet.
The ImageNet models come from torchvision's weights API, with the head replaced.

Example:
    >>> import torch, tlcourse as tl
    >>> tl.LeNet(in_channels=3, image_size=32)(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.hub
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import WeightsEnum
from torchvision.models.resnet import BasicBlock, ResNet

from .checkpoints import CheckpointError, archive_damage

__all__ = ["LeNet", "LeNetBN", "WideCNN", "cifar_resnet18", "imagenet_weights", "imagenet_weights_file",
           "imagenet_model", "replace_head"]


class LeNet(nn.Module):
    """The document's CNN: two 5×5 convolutions, then two linear layers.

    The attribute names (``conv1``, ``conv2``, ``fc1``, ``fc2``) are the document's, so
    its ``state_dict`` keys (``conv1.weight``, ``fc1.weight``, ...) are the same here.

    Args:
        in_channels: 1 for grey images (MNIST), 3 for colour (CIFAR-10).
        image_size: height = width of the input; sets ``fc1``'s input size
            (320 for 28, 500 for 32).
        num_classes: outputs of ``fc2``.

    Example:
        >>> LeNet(image_size=28).fc1.in_features, LeNet(image_size=32).fc1.in_features
        (320, 500)
    """

    widths = (10, 20, 50)  # conv1's filters, conv2's filters, fc1's hidden units (the document's)

    def __init__(self, *, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> None:
        super().__init__()
        c1, c2, hidden = self.widths
        # Each block: 5×5 conv without padding (-4 pixels), then a 2×2 max-pool (halves).
        side = ((image_size - 4) // 2 - 4) // 2
        if side < 1:
            raise ValueError(f"{type(self).__name__} needs image_size >= 16; got {image_size}")
        self.flat_features = c2 * side * side  # conv2's channels × side × side
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=5)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=5)
        self.fc1 = nn.Linear(self.flat_features, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, c1, (S-4)/2, (S-4)/2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, c2, side, side)
        x = x.flatten(1)  # (B, flat_features); flatten(1) keeps the batch axis, view(-1, 320) did not check it
        x = F.relu(self.fc1(x))  # (B, hidden)
        return self.fc2(x)  # (B, num_classes) logits


class WideCNN(LeNet):
    """``LeNet`` made wider: 32 and 64 filters, 256 hidden units; about 15 times its parameters.

    The same layers and names (``conv1``, ``conv2``, ``fc1``, ``fc2``) and the same forward
    pass; only the widths differ. The course's big model: a teacher to distil into a LeNet
    (``tl.distillation_loss``), trained by ``tl.train_source(..., architecture="wide_cnn")``.

    Args:
        in_channels: 1 for grey images, 3 for colour.
        image_size: height = width of the input; sets ``fc1``'s input size.
        num_classes: outputs of ``fc2``.

    Example:
        >>> count = lambda model: sum(p.numel() for p in model.parameters())
        >>> WideCNN().fc1.in_features, count(WideCNN()) // count(LeNet())
        (1024, 14)
    """

    widths = (32, 64, 256)


class LeNetBN(LeNet):
    """``LeNet`` with a BatchNorm layer after each convolution (``bn1``, ``bn2``).

    The same layer names as ``LeNet`` otherwise, so ``transfer_weights`` between the two
    copies every tensor except the BatchNorm ones.

    Example:
        >>> LeNetBN()(torch.zeros(4, 1, 28, 28)).shape
        torch.Size([4, 10])
    """

    def __init__(self, *, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> None:
        super().__init__(in_channels=in_channels, image_size=image_size, num_classes=num_classes)
        self.bn1 = nn.BatchNorm2d(10)
        self.bn2 = nn.BatchNorm2d(20)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (B, 10, (S-4)/2, (S-4)/2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # (B, 20, side, side)
        x = F.relu(self.fc1(x.flatten(1)))  # (B, 50)
        return self.fc2(x)  # (B, num_classes)


def cifar_resnet18(*, num_classes: int = 10, in_channels: int = 3) -> ResNet:
    """A ResNet-18 for 32×32 images: torchvision's ResNet with a 3×3 stem and no max-pool.

    ImageNet's stem (7×7 stride-2 conv, then a max-pool) shrinks a 32×32 image to 8×8
    before the first block; the CIFAR stem keeps all 32×32 pixels. Module names are
    torchvision's, so ``transfer_weights`` from an ImageNet ResNet-18 copies every
    block and skips only ``conv1`` (7×7 vs 3×3) and ``fc``.

    Args:
        num_classes: outputs of the final ``fc`` layer.
        in_channels: input channels of the stem.

    Example:
        >>> cifar_resnet18()(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")  # as torchvision does
    model.maxpool = nn.Identity()
    return model


def imagenet_weights(name: str = "resnet18", weights: WeightsEnum | str = "DEFAULT") -> WeightsEnum:
    """Return a torchvision weights enum member; its ``.transforms()`` is the matching preprocessing.

    Nothing is downloaded: the enum only describes the weights (URL, metrics, transforms).

    Args:
        name: a torchvision model builder name, e.g. ``"resnet18"``, ``"mobilenet_v3_small"``.
        weights: a member of that model's enum, or its name (``"DEFAULT"``, ``"IMAGENET1K_V1"``).

    Example:
        >>> w = imagenet_weights("resnet18")
        >>> w.meta["num_params"], w.transforms().crop_size
        (11689512, [224])
    """
    enum = torchvision.models.get_model_weights(name)  # ValueError for an unknown model name
    try:
        return enum.verify(weights)
    except KeyError:
        valid = ", ".join(["DEFAULT"] + [w.name for w in enum])
        raise ValueError(f"{name} has no weights {weights!r}; valid: {valid}") from None


def imagenet_weights_file(name: str = "resnet18", weights: WeightsEnum | str = "DEFAULT") -> Path:
    """Where torchvision keeps (or will download) these weights: ``$TORCH_HOME/hub/checkpoints/<file>``.

    Args:
        name: a torchvision model builder name.
        weights: a member of that model's enum, or its name.

    Example:
        >>> imagenet_weights_file("resnet18").name
        'resnet18-f37072fd.pth'
    """
    url = imagenet_weights(name, weights).url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name  # as torch.hub names it


def _pretrained(name: str, weights: WeightsEnum) -> nn.Module:
    """torchvision's model with ``weights``; a damaged or unusable cached file raises CheckpointError naming it."""
    cached = imagenet_weights_file(name, weights)
    advice = (f"Delete it and run again to download it afresh (or copy the right file from {weights.url} "
              f"back into {cached.parent}).")
    damage = archive_damage(cached) if cached.is_file() else None
    if damage:
        raise CheckpointError(f"The cached weights {cached} are damaged ({damage}); they were not loaded. {advice}")
    try:
        return torchvision.models.get_model(name, weights=weights)
    except Exception as e:
        if not cached.is_file():
            raise  # no file: the download failed, and torchvision's error says why
        reason = (str(e).strip().splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"The cached weights {cached} could not be loaded into {name} ({type(e).__name__}: {reason}): the file "
            f"is corrupt, truncated, or not the {weights} weights. {advice}"
        ) from None


def replace_head(model: nn.Module, *, num_classes: int) -> str:
    """Replace the model's last ``nn.Linear`` with a new one that has ``num_classes`` outputs.

    That layer is the classifier of every torchvision classification model except
    SqueezeNet (``fc`` for ResNets, ``classifier.1`` for EfficientNet, ``heads.head`` for
    ViT, ...). Returns its dotted name, e.g. for ``param_groups(head_names=[...])``.

    Args:
        model: the network to modify in place.
        num_classes: outputs of the new head (freshly initialised).

    Example:
        >>> replace_head(torchvision.models.resnet18(), num_classes=10)
        'fc'
    """
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer to replace")
    name, old = linears[-1]
    new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, new.to(device=old.weight.device, dtype=old.weight.dtype))
    return name


def imagenet_model(
    name: str = "resnet18",
    *,
    weights: WeightsEnum | str | None = None,
    num_classes: int | None = 10,
) -> nn.Module:
    """Build a torchvision model, optionally with pretrained weights, and replace its head.

    ``weights`` goes straight to torchvision's builder, which loads the file from
    ``$TORCH_HOME/hub/checkpoints/`` (downloading it the first time). A cached file that
    is damaged or unreadable raises ``CheckpointError`` naming it. Preprocess the inputs
    with ``imagenet_weights(name, weights).transforms()``.

    Args:
        name: a torchvision model builder name, e.g. ``"resnet18"``.
        weights: ``None`` (random initialisation), a weights enum member such as
            ``ResNet18_Weights.IMAGENET1K_V1``, or its name (``"DEFAULT"``).
        num_classes: outputs of the new head; ``None`` keeps the 1000-class ImageNet head.

    Raises:
        CheckpointError: the cached weights file is damaged or cannot be loaded (delete it to re-download).

    Example:
        >>> model = imagenet_model("resnet18", weights=None, num_classes=10)
        >>> model.fc
        Linear(in_features=512, out_features=10, bias=True)
    """
    if weights is None:
        model = torchvision.models.get_model(name, weights=None)
    else:
        model = _pretrained(name, imagenet_weights(name, weights))  # a clear error for a wrong name, before any download
    if num_classes is not None:
        replace_head(model, num_classes=num_classes)
    return model
