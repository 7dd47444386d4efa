"""Mini-batches from whole tensors on the device, with batched augmentation (the airbench way).

``DeviceLoader`` replaces the PIL -> ``ToTensor`` -> ``DataLoader`` pipeline for small
datasets: the images are moved to the device and normalised once, and every epoch is a
seeded permutation of the indices. ``channel_stats`` gives the normalisation and
``flip_and_crop`` a batched augmentation. (``classic_loader``, at the end of this module,
is the classic pipeline it is measured against.)

Example:
    >>> import torch, tlcourse as tl
    >>> x = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    >>> [len(yb) for _, yb in tl.DeviceLoader(x, torch.arange(6), batch_size=4, device="cpu")]
    [4, 2]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torchvision import transforms

from .config import Profile
from .data import load_dataset
from .images import GreyToRGB32

__all__ = ["channel_stats", "flip_and_crop", "DeviceLoader", "classic_loader"]


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 ``(N, C, H, W)`` images, on the [0, 1] scale.

    Example:
        >>> m, s = channel_stats(torch.full((2, 3, 4, 4), 255, dtype=torch.uint8))
        >>> m.tolist()
        [1.0, 1.0, 1.0]
    """
    x = images.double() / 255
    return x.mean(dim=(0, 2, 3)).float(), x.std(dim=(0, 2, 3)).float()


Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def flip_and_crop(pad: int = 2, *, flip: bool = True) -> Augment:
    """Batched augmentation: random horizontal flip and random crop after ``pad`` pixels of padding.

    Each image gets its own flip and shift, computed as whole-batch tensor operations
    on the batch's device (no per-image Python loop).

    Example:
        >>> aug = flip_and_crop(2)
        >>> aug(torch.rand(4, 3, 32, 32), torch.Generator()).shape
        torch.Size([4, 3, 32, 32])
    """

    def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        if flip:
            flipped = torch.rand(b, generator=g, device=g.device).to(x.device) < 0.5
            x = torch.where(flipped[:, None, None, None], x.flip(-1), x)
        if pad > 0:
            xp = F.pad(x, (pad, pad, pad, pad))  # (B, C, H+2p, W+2p)
            dy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device).to(x.device)
            dx = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (B, 1, H, 1)
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (B, 1, 1, W)
            bi = torch.arange(b, device=x.device)[:, None, None, None]
            ci = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = xp[bi, ci, rows, cols]  # (B, C, H, W)
        return x

    return augment


class DeviceLoader:
    """Mini-batches sliced from whole tensors that live on the device (the airbench way).

    The images are converted to float and normalised once, on the device; each epoch
    is one seeded permutation of the indices, so every example appears exactly once
    per epoch and the same seed gives the same order. There is no worker process and
    no per-image conversion, which is what makes small datasets fast on a GPU.

    Args:
        images: uint8 ``(N, C, H, W)``.
        labels: int64 ``(N,)``.
        batch_size: examples per batch.
        device: where the data lives and batches are produced.
        shuffle: a new seeded permutation each epoch (else the stored order).
        drop_last: drop a final incomplete batch.
        seed: the seed of epoch 0; epoch ``e`` uses ``seed + e``.
        mean, std: per-channel normalisation (``channel_stats`` gives them); ``None`` skips it.
        augment: a batched augmentation such as ``flip_and_crop()``, applied per batch.
        dtype: storage dtype on the device (``torch.float16`` halves the memory on a GPU).
        channels_last: store in channels-last memory format (faster convolutions on GPUs).

    Example:
        >>> x = torch.randint(0, 256, (10, 1, 28, 28), dtype=torch.uint8)
        >>> loader = DeviceLoader(x, torch.arange(10), batch_size=4, device="cpu")
        >>> [len(yb) for _, yb in loader]
        [4, 4, 2]
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                 device: torch.device | str, shuffle: bool = True, drop_last: bool = False, seed: int = 0,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None,
                 augment: Augment | None = None, dtype: torch.dtype = torch.float32,
                 channels_last: bool = False) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W); got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive; got {batch_size}")
        self.device = torch.device(device)
        x = images.to(self.device).to(dtype).div_(255)  # (N, C, H, W) in [0, 1]
        if mean is not None and std is not None:
            shape = (1, -1, 1, 1)
            x = (x - mean.to(self.device, dtype).view(shape)) / std.to(self.device, dtype).view(shape)
        self.channels_last = channels_last
        self.x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
        self.y = labels.to(self.device, torch.int64)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.seed, self.augment, self.epoch = seed, augment, 0

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's permutation the next iteration uses (for resuming)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.y)
        cpu_gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(n, generator=cpu_gen) if self.shuffle else torch.arange(n)
        if self.device.type == "cuda":  # a pinned, non-blocking copy: no host-device sync per pass
            order = order.pin_memory().to(self.device, non_blocking=True)
        else:
            order = order.to(self.device)
        aug_gen = None
        if self.augment is not None:
            aug_gen = torch.Generator(device=self.device).manual_seed(self.seed + self.epoch)
        self.epoch += 1
        stop = n - n % self.batch_size if self.drop_last else n
        for start in range(0, stop, self.batch_size):
            idx = order[start:start + self.batch_size]
            xb = self.x[idx]
            if self.augment is not None:
                xb = self.augment(xb, aug_gen)
                if self.channels_last:  # the augmentation's indexing returns a contiguous tensor
                    xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, self.y[idx]


def classic_loader(name: str, *, train: bool, batch_size: int = 100, shuffle: bool | None = None,
                   num_workers: int = 2, rgb32: bool = False, limit: int | None = None,
                   profile: Profile | None = None) -> torch.utils.data.DataLoader:
    """The source document's pipeline: PIL images -> ``ToTensor`` -> ``DataLoader`` workers.

    Kept as the baseline that ``DeviceLoader`` is measured against.

    Args:
        name: dataset name, as in ``load_dataset``.
        train: which split; also the default for ``shuffle``.
        batch_size, num_workers: as in ``torch.utils.data.DataLoader``.
        rgb32: append ``GreyToRGB32()`` (digits as 3x32x32).
        limit: use only the first ``limit`` images.
        profile: stand-in sizes, as in ``load_dataset``.

    Example:
        >>> loader = classic_loader("mnist", train=True, num_workers=0)  # doctest: +SKIP
    """
    steps: list[Callable] = [transforms.ToTensor()]
    if rgb32:
        steps.append(GreyToRGB32())
    ds = load_dataset(name, train=train, transform=transforms.Compose(steps), profile=profile)
    if limit is not None and limit < len(ds):
        ds = torch.utils.data.Subset(ds, range(limit))
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=train if shuffle is None else shuffle,
                                       num_workers=num_workers, persistent_workers=num_workers > 0)
