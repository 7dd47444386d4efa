"""Module-name prefixes: which tensors a name like ``"fc2"`` selects, and a clear error for a typo.

``freeze``, ``transfer_weights(skip=...)``, ``param_groups`` and ``layerwise_lr_groups`` take
names of modules or tensors. A name selects itself and everything under it: ``"fc"``
selects ``fc.weight`` and ``fc.bias``, never ``fc1.weight``. A name that selects nothing
is a typo, so ``check_names`` raises before the caller changes anything, and the message
names the nearest real names.

Example:
    >>> check_names(["conv1", "cnv2"], ["conv1.weight", "conv2.weight"], what="freeze: names")
    Traceback (most recent call last):
    ...
    tlcourse.names.UnknownNameError: freeze: names: 'cnv2' names no module or tensor (did you mean conv2, conv1?). Nothing was changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["UnknownNameError"]  # the helpers serve transfer.py, freezing.py and every "unknown ..." error

Names = str | Iterable[str]  # one name, or several


class UnknownNameError(ValueError):
    """A module or tensor name matches nothing in the model (a typo); the message names the nearest."""


def unknown_choice(what: str, name: object, choices: Iterable[str]) -> str:
    """``unknown arm 'fintune' (did you mean 'finetune'?); choose from scratch, finetune``: one wording for every typo.

    Example:
        >>> unknown_choice("dataset", "mnsit", ["mnist", "cifar10"])
        "unknown dataset 'mnsit' (did you mean 'mnist'?); choose from mnist, cifar10"
    """
    choices = list(choices)
    near = difflib.get_close_matches(str(name), choices, n=1)
    return f"unknown {what} {name!r}{f' (did you mean {near[0]!r}?)' if near else ''}; choose from {', '.join(choices)}"


def as_names(names: Names | None) -> list[str]:
    """``names`` as a list: ``None`` is ``[]``, one string is ``[names]``."""
    if names is None:
        return []
    return [names] if isinstance(names, str) else list(names)


def matches(name: str, prefixes: Iterable[str]) -> bool:
    """True if ``name`` is one of ``prefixes`` or lies under one (``fc`` matches ``fc.weight``, not ``fc1``)."""
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _selectable(available: Iterable[str]) -> set[str]:
    """Every name that selects something: each available name and each of its dotted prefixes."""
    out: set[str] = set()
    for name in available:
        parts = name.split(".")
        out.update(".".join(parts[: i + 1]) for i in range(len(parts)))
    return out


def check_names(names: Names | None, available: Iterable[str], *, what: str) -> list[str]:
    """Return ``names`` as a list if every one selects something in ``available``; else raise.

    Args:
        names: the names given by the caller (one string, several, or ``None`` for none).
        available: the full names that can be selected (state-dict keys, parameter or
            module names).
        what: the function and argument, for the message, e.g. ``"freeze: names"``.

    Raises:
        UnknownNameError: a name is empty or selects nothing; the message names the nearest
            real names, or the top-level ones when none is close.
        TypeError: a name is not a string.

    Example:
        >>> check_names("fc2", ["fc2.weight", "fc2.bias"], what="skip")
        ['fc2']
    """
    given = as_names(names)
    wrong = [n for n in given if not isinstance(n, str)]
    if wrong:
        raise TypeError(f"{what}: names must be strings; got {wrong!r}. Nothing was changed.")
    selectable = _selectable(available)
    problems = []
    for name in given:
        if name == "":
            problems.append("'' (an empty name) would select everything; name the modules you mean")
        elif name not in selectable:
            close = difflib.get_close_matches(name, sorted(selectable), n=3, cutoff=0.6)
            tops = sorted({n.split(".")[0] for n in selectable})
            hint = f"did you mean {', '.join(close)}?" if close else f"the top-level names are {', '.join(tops)}"
            problems.append(f"{name!r} names no module or tensor ({hint})")
    if problems:
        raise UnknownNameError(f"{what}: {'; '.join(problems)}. Nothing was changed.")
    return given
