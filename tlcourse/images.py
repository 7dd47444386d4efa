"""Digits for colour networks: the 28->32, 1->3 channel adapter, as a function and as a transform.

MNIST digits are 1x28x28; CIFAR-10 networks expect 3x32x32. ``grey_to_rgb32`` pads (or
resizes) a digit to 32x32 and repeats its grey channel as R, G and B.

Example:
    >>> import torch, tlcourse as tl
    >>> tl.grey_to_rgb32(torch.zeros(2, 1, 28, 28, dtype=torch.uint8)).shape
    torch.Size([2, 3, 32, 32])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["grey_to_rgb32", "GreyToRGB32"]


def grey_to_rgb32(x: torch.Tensor, *, mode: str = "pad") -> torch.Tensor:
    """Turn 1x28x28 digits into 3x32x32 images, so a CIFAR-shaped network accepts them.

    ``mode="pad"`` adds a 2-pixel black border (what LeNet-5 did with MNIST: the digit
    keeps its pixel size); ``mode="resize"`` stretches it bilinearly. The grey channel
    is then repeated as R, G and B.

    Args:
        x: ``(1, H, W)`` or ``(B, 1, H, W)``, any dtype (uint8 stays uint8 when padding).
        mode: ``"pad"`` or ``"resize"``.

    Example:
        >>> grey_to_rgb32(torch.zeros(5, 1, 28, 28)).shape
        torch.Size([5, 3, 32, 32])
    """
    if x.ndim not in (3, 4) or x.shape[-3] != 1:
        raise ValueError(f"Expected a grey image (1, H, W) or batch (B, 1, H, W); got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if mode == "pad":
        if h > 32 or w > 32:
            raise ValueError(f"Cannot pad a {h}x{w} image to 32x32; use mode='resize'")
        top, left = (32 - h) // 2, (32 - w) // 2
        x = F.pad(x, (left, 32 - w - left, top, 32 - h - top))
    elif mode == "resize":
        batch = x if x.ndim == 4 else x.unsqueeze(0)
        out = F.interpolate(batch.float(), size=(32, 32), mode="bilinear", align_corners=False)
        out = out.round().clamp(0, 255).to(x.dtype) if x.dtype == torch.uint8 else out.to(x.dtype)
        x = out if x.ndim == 4 else out[0]
    else:
        raise ValueError(f"mode must be 'pad' or 'resize'; got {mode!r}")
    reps = [1] * x.ndim
    reps[-3] = 3
    return x.repeat(*reps)


class GreyToRGB32(torch.nn.Module):
    """``grey_to_rgb32`` as a torchvision transform (use it after ``ToTensor()``).

    Example:
        >>> from torchvision import transforms
        >>> t = transforms.Compose([transforms.ToTensor(), GreyToRGB32()])
    """

    def __init__(self, mode: str = "pad") -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grey_to_rgb32(x, mode=self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
