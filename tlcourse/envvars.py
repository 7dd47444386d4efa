"""Environment variables, read strictly: a value that is not an accepted one raises, naming them.

``env_flag`` (on / off), ``env_choice`` (one of a few names) and ``env_selection`` (all, none,
or a comma-separated list) serve every ``TLCOURSE_*`` variable, so each says the same thing
about a typo: what was given, the nearest accepted value, and what is accepted.

Example:
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"TLCOURSE_EXAMPLE": "off"}):
    ...     env_flag("TLCOURSE_EXAMPLE", default=True)
    False
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable

__all__ = ["env_flag", "env_choice", "env_selection"]

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def env_flag(name: str, *, default: bool = False) -> bool:
    """Read an on/off environment variable strictly; unset or empty means ``default``.

    Args:
        name: the variable, e.g. ``"TLCOURSE_DOWNLOAD"``. Accepted (any case, spaces ignored):
            1, true, yes, on / 0, false, no, off.
        default: the answer when it is unset or empty.

    Raises:
        ValueError: any other value (``2``, ``maybe``), naming the accepted ones.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"TLCOURSE_EXAMPLE": " Yes "}):
        ...     env_flag("TLCOURSE_EXAMPLE")
        True
        >>> env_flag("TLCOURSE_EXAMPLE"), env_flag("TLCOURSE_EXAMPLE", default=True)  # unset
        (False, True)
    """
    raw = os.environ.get(name, "")
    key = raw.strip().lower()
    if key in _TRUE:
        return True
    if key in _FALSE:
        return False
    if not key:
        return default
    unset = " (or leave it empty or unset)"
    raise ValueError(f"{name}={raw!r} is not an on/off value. Use 1, true, yes or on{unset * default} for on; "
                     f"0, false, no or off{unset * (not default)} for off.")


def env_selection(name: str, *, choices: Iterable[str]) -> frozenset[str]:
    """Read a variable that is on (every choice), off (none) or a comma-separated list of choices.

    Args:
        name: the variable, e.g. ``"TLCOURSE_STANDIN"``.
        choices: the names a list may hold, lower case; entries are compared stripped and lower-cased.
            On: 1, true, yes, on. Off: 0, false, no, off, empty or unset.

    Raises:
        ValueError: an entry that is no choice, naming the nearest one and the accepted values;
            an empty entry (``"mnist,,cifar10"``).

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"TLCOURSE_EXAMPLE": "Cifar10, mnist"}):
        ...     sorted(env_selection("TLCOURSE_EXAMPLE", choices=["mnist", "cifar10", "svhn"]))
        ['cifar10', 'mnist']
        >>> with mock.patch.dict(os.environ, {"TLCOURSE_EXAMPLE": "cifar"}):
        ...     env_selection("TLCOURSE_EXAMPLE", choices=["mnist", "cifar10"])
        Traceback (most recent call last):
        ...
        ValueError: TLCOURSE_EXAMPLE='cifar' names 'cifar', which is not one of them. Did you mean 'cifar10'? Use 1, true, yes or on for all of them; 0, false, no or off (or leave it empty or unset) for none; or a comma-separated list of: cifar10, mnist.
    """
    raw = os.environ.get(name, "")
    key = raw.strip().lower()
    valid = sorted(choices)
    if key in _TRUE:
        return frozenset(valid)
    if key in _FALSE or not key:
        return frozenset()
    entries = [entry.strip() for entry in key.split(",")]
    for entry in entries:
        if entry not in valid:
            near = difflib.get_close_matches(entry, valid, n=1)
            what = f"names {entry!r}, which is not one of them" if entry else "has an empty entry"
            hint = f" Did you mean {near[0]!r}?" if near else ""
            raise ValueError(f"{name}={raw!r} {what}.{hint} Use 1, true, yes or on for all of them; 0, false, no "
                             f"or off (or leave it empty or unset) for none; or a comma-separated list of: "
                             f"{', '.join(valid)}.")
    return frozenset(entries)


def env_choice(name: str, *, choices: Iterable[str]) -> str | None:
    """Read an environment variable that must be one of ``choices``; ``None`` when unset or empty.

    Args:
        name: the variable, e.g. ``"TLCOURSE_CHECKS"``.
        choices: the accepted values, lower case; the value is compared stripped and lower-cased.

    Raises:
        ValueError: any other value, naming the accepted ones (and the nearest, for a typo).

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"TLCOURSE_EXAMPLE": "Strict"}):
        ...     env_choice("TLCOURSE_EXAMPLE", choices=["strict"])
        'strict'
    """
    raw = os.environ.get(name, "")
    key = raw.strip().lower()
    if not key:
        return None
    valid = sorted(choices)
    if key not in valid:
        near = difflib.get_close_matches(key, valid, n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"{name}={raw!r} is not an accepted value.{hint} Accepted: {', '.join(valid)}; "
                         f"or unset it for the default.")
    return key
