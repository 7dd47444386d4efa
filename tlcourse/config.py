"""Run profiles, device choice and seeding.

A *run profile* decides how much data a notebook uses, for how many epochs, and on
which device. One environment variable, ``TLCOURSE_PROFILE``, picks it, so the same
notebook runs in seconds in CI (``quick``), in minutes on a laptop (``cpu``) and as
the real experiment on a GPU (``full``).

Which profile a helper uses when it is given none (``get_profile()``), first match wins:

1. the profile given to ``tl.start(profile=...)`` (or ``set_session_profile``) in this session;
2. ``TLCOURSE_PROFILE``;
3. ``full`` when CUDA is available, else ``cpu``.

Environment variables are read strictly (``tlcourse.envvars``): a value that is not one of
the accepted ones raises a ``ValueError`` naming them, never guessed at.

Example:
    >>> import tlcourse as tl
    >>> tl.get_profile("quick").source_epochs
    5
"""

from __future__ import annotations

import dataclasses
import difflib
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
    "env_profile_name",
    "set_session_profile",
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
    standin_train: int  # training images per stand-in dataset (only used for those TLCOURSE_STANDIN names)
    standin_test: int  # test images per stand-in dataset


PROFILES: dict[str, Profile] = {
    # CI: small subsets and one target epoch, so every notebook executes in seconds; the source
    # still learns (LeNet on 4,000 real MNIST digits for 5 epochs: over 90% test accuracy in ~3 s).
    "quick": Profile(
        name="quick",
        device="cpu",
        train_size=4_000,
        test_size=500,
        source_epochs=5,
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


_session_profile: Profile | None = None  # set by start(profile=...): every later get_profile()'s default


def _lookup(name: str, *, where: str) -> Profile:
    """The registered profile called ``name`` (any case); an unknown name raises, naming the valid ones."""
    key = name.strip().lower()
    if key not in PROFILES:
        valid = ", ".join(sorted(PROFILES))
        near = difflib.get_close_matches(key, sorted(PROFILES), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"Unknown run profile {name!r}{where}.{hint} Valid profiles: {valid}. "
                         f"Set {PROFILE_ENV} to one of them (or unset it for the default).")
    return PROFILES[key]


def env_profile_name() -> str | None:
    """The profile ``TLCOURSE_PROFILE`` names (checked, lower case), or ``None`` when it is unset or empty.

    Raises:
        ValueError: it names no profile; the message lists the valid ones.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {PROFILE_ENV: " CPU "}):
        ...     env_profile_name()
        'cpu'
    """
    raw = os.environ.get(PROFILE_ENV, "").strip()
    return _lookup(raw, where=f" in {PROFILE_ENV}").name if raw else None


def get_profile(name: str | None = None, **overrides: object) -> Profile:
    """Return the run profile named ``name``, else the session's, else the one ``TLCOURSE_PROFILE`` names.

    Without any of them, the default is ``full`` when CUDA is available, else ``cpu``
    (the order is in the module's docstring).

    Args:
        name: ``"quick"``, ``"cpu"`` or ``"full"``; ``None``: the session's profile, else the environment.
        **overrides: fields to replace, e.g. ``target_epochs=3``.

    Example:
        >>> get_profile("cpu", seeds=(0,)).seeds
        (0,)
    """
    if name is not None:
        profile = _lookup(name, where="")
    elif _session_profile is not None:
        profile = _session_profile
    else:
        profile = PROFILES[env_profile_name() or ("full" if torch.cuda.is_available() else "cpu")]
    return dataclasses.replace(profile, **overrides) if overrides else profile


def set_session_profile(*, profile: str | Profile | None) -> Profile | None:
    """Make ``profile`` the default of every later ``get_profile()`` in this Python session.

    ``tl.start(profile=...)`` calls it, so the profile a notebook starts with is the one its
    helpers (``load_dataset``, ``train_source``, ...) use. It outranks ``TLCOURSE_PROFILE``;
    ``None`` forgets it, and ``get_profile()`` reads the environment again. Child processes
    (``python -m tlcourse ...``) do not inherit it: they follow ``TLCOURSE_PROFILE``.

    Args:
        profile: a profile name or object; ``None`` forgets the session's profile.

    Example:
        >>> set_session_profile(profile="quick").name
        'quick'
        >>> get_profile().name
        'quick'
        >>> set_session_profile(profile=None)  # back to TLCOURSE_PROFILE, else the device default
    """
    global _session_profile
    chosen = profile if isinstance(profile, Profile) or profile is None else get_profile(profile)
    _session_profile = chosen  # validated above: a bad name raised before anything changed
    return chosen


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
        if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeError(f"{device} does not exist: this machine has {torch.cuda.device_count()} CUDA "
                               f"device(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}. Use 'cuda' or 'auto'.")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError("Device 'mps' (Apple's GPU) was requested but is not available on this machine. "
                               "Use 'auto' or 'cpu'.")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    """True on a Mac whose torch build can use Apple's GPU."""
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


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
