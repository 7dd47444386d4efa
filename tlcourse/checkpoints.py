"""Checkpoints that are written atomically, read back safely and verified before use.

``save_checkpoint`` stores only values torch's safe loader (``weights_only=True``) can read
back; anything else is refused before a byte is written, naming where it sits
(``extra['profile']``) and what to pass instead. NumPy scalars (``np.float32(0.9)``) are
stored as the Python number they equal. The file is written by ``atomic_write``.

``load_checkpoint`` checks everything before it changes anything: every record of the
zip archive against its CRC32 (flipped bytes are caught, not loaded as NaN weights), the
saved weights' names and shapes against the model, and the saved optimizer state against
the optimizer (its type, parameter groups and per-parameter buffers). On any mismatch it
raises ``CheckpointError`` listing what differs, and the model and optimizer are untouched.

Example:
    >>> import tempfile, os, tlcourse as tl
    >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "m.pt"), model=tl.LeNet(), epoch=2)
    >>> read_checkpoint(path)["epoch"]
    2
"""

from __future__ import annotations

import collections
import dataclasses
import os
import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from .checkpoint_fit import model_problems, optimizer_problems
from .files import atomic_write, remove_stale_temporaries

if TYPE_CHECKING:
    from .train import History

__all__ = ["CheckpointError", "archive_damage", "save_checkpoint", "read_checkpoint", "load_checkpoint"]

_FORMAT = "tlcourse-checkpoint-v1"  # marks our files, so a foreign torch file is recognised as such
_ADVICE = "Delete it and train again (or pass another path)."
# What torch.load(weights_only=True) reads back; exact types, since a subclass (np.float64 is a float) is refused.
_SAFE_LEAVES = (str, bytes, bytearray, int, float, bool, complex, type(None),
                torch.Size, torch.dtype, torch.device, torch.Tensor, nn.Parameter)
_SAFE_DICTS = (dict, collections.OrderedDict, collections.Counter)  # MultiStepLR keeps a Counter
_SAFE_SEQUENCES = (list, tuple, set)


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be used (damaged, foreign, or for another model)."""


def _safe_value(value: Any, where: str) -> Any:
    """``value`` as the safe loader reads it back (NumPy scalars become Python numbers); else TypeError."""
    kind = type(value)
    if kind in _SAFE_LEAVES:
        return value
    if isinstance(value, np.generic) and type(value.item()) in _SAFE_LEAVES:
        return value.item()  # np.float32(0.5) -> 0.5, the same number
    if kind in _SAFE_DICTS:
        new = {_safe_value(k, f"{where} (a key)"): _safe_value(v, f"{where}[{k!r}]") for k, v in value.items()}
        if all(a is k and b is v for (a, b), (k, v) in zip(new.items(), value.items())):
            return value  # nothing converted: keep the very object
        rebuilt = kind(new)
        if kind is collections.OrderedDict:
            rebuilt.__dict__.update(value.__dict__)  # a state_dict's _metadata (module versions)
        return rebuilt
    if kind in _SAFE_SEQUENCES:
        items = [_safe_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value if all(a is b for a, b in zip(items, value)) else kind(items)
    if isinstance(value, np.ndarray):
        instead = "a tensor (torch.from_numpy(x)) or a list (x.tolist())"
    elif dataclasses.is_dataclass(value):
        instead = "a dict (dataclasses.asdict(x))"
    else:
        instead = "tensors, numbers, strings, None, or lists / tuples / dicts of them"
    raise TypeError(
        f"Cannot save {where}: it is a {kind.__module__}.{kind.__qualname__}, which torch's safe loader "
        f"(weights_only=True) refuses, so the checkpoint could not be loaded again. Pass {instead} instead. "
        f"Nothing was saved."
    )


def archive_damage(path: str | os.PathLike) -> str | None:
    """What is damaged in the zip archive at ``path`` (a torch file), or None if every record is intact.

    torch saves a zip archive holding a CRC32 of every record; a record whose bytes no
    longer match it was changed on disk or in a copy. A file that is not a zip archive at
    all is left to ``torch.load`` to judge (None).

    Args:
        path: a file written by ``torch.save``.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "t.pt"); torch.save(torch.ones(4), path)
        >>> archive_damage(path) is None
        True
    """
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every record and compares its CRC32
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as e:
        return f"its zip structure is broken: {type(e).__name__}: {e}"
    return None if bad is None else f"record {bad!r} fails its CRC32 check: its bytes changed after it was written"


def save_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    epoch: int,
    history: History | dict | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Save a checkpoint atomically: the file at ``path`` is always the old one or the new one.

    Only values ``load_checkpoint``'s safe loader (``weights_only=True``) reads back are
    stored: tensors, numbers, strings, ``None``, and lists / tuples / sets / dicts of them.
    NumPy scalars are stored as the Python number they equal; anything else (a NumPy array,
    a dataclass such as a ``Profile``) raises ``TypeError`` naming where it is and what to
    pass instead, and nothing is written. Temporary files of killed saves are removed.

    Args:
        path: where to write; parent directories are created.
        model: its ``state_dict`` is saved.
        optimizer: its ``state_dict`` (momentum buffers, step counts) and type are saved.
        epoch: number of epochs completed.
        history: a ``History`` or a dict of lists.
        extra: more tensors / plain values (scheduler state, RNG state, a config dict).

    Example:
        >>> import tempfile, os, numpy as np
        >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "m.pt"), model=tl.LeNet(), epoch=3)
        >>> load_checkpoint(path, model=tl.LeNet())["epoch"]
        3
        >>> save_checkpoint(path, model=tl.LeNet(), epoch=3, extra={"mean": np.zeros(3)})
        Traceback (most recent call last):
        ...
        TypeError: Cannot save extra['mean']: it is a numpy.ndarray, which torch's safe loader (weights_only=True) refuses, so the checkpoint could not be loaded again. Pass a tensor (torch.from_numpy(x)) or a list (x.tolist()) instead. Nothing was saved.
    """
    path = Path(path)
    history = history.to_dict() if hasattr(history, "to_dict") else history
    state = {
        "format": _FORMAT,
        "epoch": int(epoch),
        "model": _safe_value(model.state_dict(), "model"),
        "optimizer": _safe_value(optimizer.state_dict(), "optimizer") if optimizer is not None else None,
        "optimizer_type": type(optimizer).__name__ if optimizer is not None else None,
        "history": _safe_value(history, "history"),
        "extra": _safe_value(extra or {}, "extra"),
    }

    def write(f: Any) -> None:
        crc = torch.serialization.get_crc32_options()
        torch.serialization.set_crc32_options(True)  # load_checkpoint verifies every record's CRC32
        try:
            torch.save(state, f)
        finally:
            torch.serialization.set_crc32_options(crc)

    remove_stale_temporaries(path)
    return atomic_write(path, write)


def _safe_loader_refusal(error: Exception) -> str | None:
    """torch's reason when ``weights_only=True`` refused an intact file, e.g. 'Unsupported global: ...'."""
    found = re.search(r"WeightsUnpickler error: (.*?)(?: Please use|\n|$)", str(error))
    return found.group(1).strip() if isinstance(error, pickle.UnpicklingError) and found else None


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """The verified contents of a tlcourse checkpoint file; FileNotFoundError or CheckpointError."""
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}: train first (fit(..., checkpoint=path)) or fix the path")
    remove_stale_temporaries(path)
    damage = archive_damage(path)
    if damage:
        raise CheckpointError(f"Checkpoint {path} is damaged ({damage}); it was not loaded. {_ADVICE}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # bad bytes surface as pickle, zip, EOF, key or runtime errors
        refusal = _safe_loader_refusal(e)
        if refusal:
            raise CheckpointError(
                f"Checkpoint {path} is intact, but torch's safe loader (weights_only=True) refuses a value in it: "
                f"{refusal} It was not written by save_checkpoint, which stores only plain values. "
                f"Save its contents again as tensors, numbers, strings, lists and dicts, or: {_ADVICE}"
            ) from None
        # torch's own message is left out: for such files it is noise, or advice to load unsafely.
        what = "a zip archive but not a torch file" if zipfile.is_zipfile(path) else \
            "unreadable: corrupt, truncated, or not a torch file"
        raise CheckpointError(f"Checkpoint {path} is {what} (torch.load raised {type(e).__name__}). {_ADVICE}") from None
    if not isinstance(state, dict) or state.get("format") != _FORMAT:
        found = f"a dict with keys {sorted(map(str, state))[:6]}" if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is a torch file but not a tlcourse checkpoint (it holds {found}). {_ADVICE}")
    return state


def read_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify a checkpoint and return its ``epoch``, ``history`` and ``extra``, without loading any weights.

    Args:
        path: the checkpoint file.
        map_location: where its tensors are loaded.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file is damaged, unreadable, or not a tlcourse checkpoint.

    Example:
        >>> import tempfile, os
        >>> path = save_checkpoint(os.path.join(tempfile.mkdtemp(), "m.pt"), model=tl.LeNet(), epoch=4)
        >>> sorted(read_checkpoint(path).items())
        [('epoch', 4), ('extra', {}), ('history', None)]
    """
    state = _read(Path(path), map_location)
    return {"epoch": state["epoch"], "history": state["history"], "extra": state["extra"]}


def load_checkpoint(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
    max_epoch: int | None = None,
) -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint`` into ``model`` (and ``optimizer``).

    Everything is checked first (the archive's CRC32s, the weights' names and shapes,
    the optimizer's type, groups and buffers); on any mismatch ``CheckpointError`` lists
    what differs and neither the model nor the optimizer is changed. Returns a dict with
    ``epoch``, ``history`` (a dict of lists, or ``None``) and ``extra``.

    Args:
        path: the checkpoint file.
        model: receives the saved weights (same architecture required).
        optimizer: receives the saved optimizer state (same optimizer type and groups required).
        map_location: where tensors are loaded before being copied into the model.
        max_epoch: refuse (``ValueError``, nothing loaded) a checkpoint of more epochs than this
            (``fit`` continuing a run of ``epochs`` epochs).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the checkpoint holds more than ``max_epoch`` epochs.
        CheckpointError: the file is damaged, not a tlcourse checkpoint, or for another model or optimizer.

    Example:
        >>> load_checkpoint("no/such/file.pt", model=tl.LeNet())
        Traceback (most recent call last):
        ...
        FileNotFoundError: No checkpoint at no/such/file.pt: train first (fit(..., checkpoint=path)) or fix the path
    """
    path = Path(path)
    state = _read(path, map_location)
    if max_epoch is not None and state["epoch"] > max_epoch:
        done = state["epoch"]
        raise ValueError(
            f"{path} already holds {done} epochs, more than epochs={max_epoch}; nothing was loaded or trained. "
            f"Pass epochs>={done} to continue it (epochs={done} returns its history), or another checkpoint "
            f"path to train afresh."
        )
    problems = model_problems(state["model"], model)
    if problems:
        raise CheckpointError(
            f"Checkpoint {path} does not fit this model ({type(model).__name__}): {'; '.join(problems)}. Nothing was "
            f"loaded. Build the same model as when it was saved, or: {_ADVICE}"
        )
    if optimizer is not None:
        if state["optimizer"] is None:
            problems = ["the file holds no optimizer state (saved without optimizer=); pass optimizer=None to load "
                        "only the weights"]
        else:
            problems = optimizer_problems(state["optimizer"], state.get("optimizer_type"), optimizer, model)
        if problems:
            raise CheckpointError(
                f"Checkpoint {path} does not fit this optimizer ({type(optimizer).__name__}): {'; '.join(problems)}. "
                f"Nothing was loaded. Build the same optimizer as when it was saved, or: {_ADVICE}"
            )
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    return {"epoch": state["epoch"], "history": state["history"], "extra": state["extra"]}
