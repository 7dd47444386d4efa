"""Run profiles, device choice and seeding.

A *run profile* decides how much data a notebook uses, for how many epochs, and on
which device. One environment variable, ``TLCOURSE_PROFILE``, picks it, so the same
notebook runs in seconds in CI (``quick``), in minutes on a laptop (``cpu``) and as
the real experiment on a GPU (``full``).

Example:
    >>> import tlcourse as tl
    >>> tl.get_profile("quick").source_epochs
    1
"""

from __future__ import annotations

import dataclasses
import os
import random
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "PROFILE_ENV",
    "Profile",
    "PROFILES",
    "get_profile",
    "choose_device",
    "seed_everything",
]

PROFILE_ENV = "TLCOURSE_PROFILE"


@dataclass(frozen=True)
class Profile:
    """How big a run is. Every chapter reads its sizes from here, never from literals."""

    name: str  # the value of TLCOURSE_PROFILE that selects this profile
    device: str  # "auto" (CUDA, then Apple MPS, then CPU), or a torch device string
    train_size: int | None  # training images used per dataset; None = the whole split
    test_size: int | None  # test images used per dataset; None = the whole split
    source_epochs: int  # epochs to train the source model (MNIST)
    target_epochs: int  # epochs to fine-tune on the target task (CIFAR-10)
    batch_size: int  # mini-batch size for training and evaluation
    label_budgets: tuple[int, ...]  # labelled target images *per class* in the budget experiments
    seeds: tuple[int, ...]  # one run per seed; spread across seeds is the error bar
    standin_train: int  # training images per stand-in dataset (only used with TLCOURSE_STANDIN=1)
    standin_test: int  # test images per stand-in dataset


PROFILES: dict[str, Profile] = {
    # CI: tiny subsets and one epoch, so every notebook executes in seconds.
    "quick": Profile(
        name="quick",
        device="cpu",
        train_size=1_000,
        test_size=500,
        source_epochs=1,
        target_epochs=1,
        batch_size=128,
        label_budgets=(10, 50),
        seeds=(0, 1),
        standin_train=2_000,
        standin_test=500,
    ),
    # A laptop: the full LeNet case study in a few minutes on two CPU cores.
    "cpu": Profile(
        name="cpu",
        device="auto",
        train_size=None,
        test_size=None,
        source_epochs=10,
        target_epochs=10,
        batch_size=128,
        label_budgets=(10, 100, 1_000),
        seeds=(0, 1, 2),
        standin_train=20_000,
        standin_test=5_000,
    ),
    # A GPU: full datasets, the real training (stand-ins at the real datasets' sizes).
    "full": Profile(
        name="full",
        device="auto",
        train_size=None,
        test_size=None,
        source_epochs=10,
        target_epochs=30,
        batch_size=256,
        label_budgets=(10, 100, 1_000, 5_000),
        seeds=(0, 1, 2, 3, 4),
        standin_train=60_000,
        standin_test=10_000,
    ),
}


def get_profile(name: str | None = None, **overrides: object) -> Profile:
    """Return the run profile named ``name``, or the one ``TLCOURSE_PROFILE`` names.

    Without either, the default is ``full`` when CUDA is available, else ``cpu``.

    Args:
        name: ``"quick"``, ``"cpu"`` or ``"full"``; ``None`` reads the environment.
        **overrides: fields to replace, e.g. ``target_epochs=3``.

    Example:
        >>> get_profile("cpu", seeds=(0,)).seeds
        (0,)
    """
    if name is None:
        name = os.environ.get(PROFILE_ENV, "").strip() or None
    if name is None:
        name = "full" if torch.cuda.is_available() else "cpu"
    key = name.strip().lower()
    if key not in PROFILES:
        valid = ", ".join(sorted(PROFILES))
        raise ValueError(
            f"Unknown run profile {name!r}. Valid profiles: {valid}. "
            f"Set {PROFILE_ENV} to one of them (or unset it for the default)."
        )
    profile = PROFILES[key]
    return dataclasses.replace(profile, **overrides) if overrides else profile


def choose_device(preference: str = "auto") -> torch.device:
    """Pick the device to run on: CUDA, then Apple MPS, then CPU.

    Called explicitly by each notebook (never at import time), so a learner can see
    and change the choice.

    Args:
        preference: ``"auto"``, or a device string such as ``"cpu"`` or ``"cuda:1"``.

    Example:
        >>> choose_device("cpu")
        device(type='cpu')
    """
    if preference != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"Device {preference!r} was requested but CUDA is not available here. "
                "Use 'auto' or 'cpu', or choose the 'cpu' run profile."
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (CPU and CUDA); return a seeded CPU generator.

    The same seed twice on the CPU gives identical runs. On a GPU some kernels are
    non-deterministic, so runs agree only to within noise there.

    Example:
        >>> g = seed_everything(0)
        >>> a = torch.rand(2, generator=g)
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return torch.Generator().manual_seed(seed)
