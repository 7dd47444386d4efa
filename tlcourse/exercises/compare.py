"""How an answer is compared: ``same`` (exactly) and ``close`` (up to rounding), and the result shown.

A judge (``tlcourse.exercises.core``) returns a ``Verdict``: passed or not, and a message
that praises or hints, never the answer. ``check`` turns it into a ``CheckResult``, which
shows as a green, amber or grey box: correct, not yet, no answer yet.

Example:
    >>> same([1, 2], [1, 2], hint="count per class").passed
    True
    >>> close(0.1 + 0.2, 0.3, hint="add").passed
    True
"""

from __future__ import annotations

import html
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["CheckResult", "Verdict", "same", "close", "as_real", "as_whole"]


class Verdict(NamedTuple):
    """What a judge decides about an answer: ``passed`` and the praise or hint to show."""

    passed: bool
    message: str


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``passed`` (or ``None`` when unanswered) and a message."""

    exercise: str  # the exercise's number, e.g. "1.2"
    passed: bool | None  # True, False, or None when there is no answer yet
    message: str  # praise, a hint, or what to do
    proved: bool = False  # the tests' strict mode proved the exercise three ways in this run

    def __bool__(self) -> bool:
        return bool(self.passed)

    @property
    def status(self) -> str:
        """``"correct"``, ``"not yet"`` or ``"no answer yet"``."""
        return {True: "correct", False: "not yet", None: "no answer yet"}[self.passed]

    def __repr__(self) -> str:
        return f"Exercise {self.exercise}: {self.status.capitalize()}. {self.message}"

    def _repr_html_(self) -> str:
        colour = {True: ("#166534", "#f0fdf4"), False: ("#9a3412", "#fff7ed"), None: ("#475569", "#f8fafc")}[self.passed]
        return (f'<div style="border-left:4px solid {colour[0]};background:{colour[1]};color:{colour[0]};'
                f'padding:0.4em 0.8em;margin:0.3em 0"><strong>Exercise {html.escape(self.exercise)}: '
                f"{self.status.capitalize()}.</strong> {html.escape(self.message)}</div>")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        """Text and HTML, and in the output's metadata what an instructor's or the tests' tools read."""
        data = {"text/plain": repr(self), "text/html": self._repr_html_()}
        return data, {"tlcourse": {"exercise": self.exercise, "status": self.status, "proved": self.proved}}


# The words a "higher / about the same / lower" prediction may use, each to the choice it names (see as_choice).
LEVEL = {"higher": "higher", "about the same": "about the same", "the same": "about the same",
         "same": "about the same", "lower": "lower"}

UNANSWERED = "Replace the None in the exercise cell with your answer, run it, then run this check again."


def few(names: list[str], n: int = 4) -> str:
    """The first ``n`` names, then how many more."""
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _difference(answer: Any, expected: Any, where: str = "") -> str | None:
    """``None`` if ``answer`` equals ``expected`` exactly; else what differs ("" when only the values do).

    Tensors and NumPy arrays compare by type, shape, dtype and every element; dicts by
    their keys and then value by value; lists and tuples element by element; anything
    else with ``==``.
    """
    at = f" at {where}" if where else ""
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        kind = torch.Tensor if isinstance(expected, torch.Tensor) else np.ndarray
        if not isinstance(answer, kind):
            return f"Expected {'a tensor' if kind is torch.Tensor else 'a NumPy array'}{at}, got {type(answer).__name__}."
        if tuple(answer.shape) != tuple(expected.shape):
            return f"Shape {tuple(answer.shape)}{at}, expected {tuple(expected.shape)}."
        if answer.dtype != expected.dtype:
            return f"dtype {answer.dtype}{at}, expected {expected.dtype}."
        same = (torch.equal(answer.detach().cpu(), expected.detach().cpu()) if kind is torch.Tensor
                else np.array_equal(answer, expected))
        return None if same else ""
    if isinstance(expected, Mapping):
        if not isinstance(answer, Mapping):
            return f"Expected a dict{at}, got {type(answer).__name__}."
        missing, extra = [k for k in expected if k not in answer], [k for k in answer if k not in expected]
        if missing or extra:
            return (f"The keys{at} differ" + (f"; missing: {few([repr(k) for k in missing])}" if missing else "")
                    + (f"; unexpected: {few([repr(k) for k in extra])}" if extra else "") + ".")
        return next((d for k in expected if (d := _difference(answer[k], expected[k], f"{where}[{k!r}]")) is not None),
                    None)
    if isinstance(expected, (list, tuple)):
        if not isinstance(answer, (list, tuple)) or isinstance(answer, tuple) != isinstance(expected, tuple):
            return f"Expected a {type(expected).__name__}{at}, got {type(answer).__name__}."
        if len(answer) != len(expected):
            return f"{len(answer)} items{at}, expected {len(expected)}."
        return next((d for i, (a, e) in enumerate(zip(answer, expected))
                     if (d := _difference(a, e, f"{where}[{i}]")) is not None), None)
    try:
        return None if bool(answer == expected) else ""
    except (TypeError, ValueError, RuntimeError):  # == gave many truth values (an array, a tensor)
        return f"Expected a {type(expected).__name__}{at}, got {type(answer).__name__}."


def same(answer: Any, expected: Any, *, hint: str) -> Verdict:
    """Compare an answer with the expected value exactly.

    Tensors and NumPy arrays must match in type, shape, dtype and every element; dicts
    and lists are compared item by item (so a dict of tensors works); other values
    with ``==``.

    Args:
        answer: the learner's value.
        expected: the right value, computed by the judge (never shown).
        hint: what to look at again when the answer is wrong.

    Example:
        >>> same(torch.zeros(2), torch.ones(2), hint="look again").passed
        False
        >>> same({"w": torch.ones(2)}, {"w": torch.ones(2)}, hint="look again").passed
        True
    """
    difference = _difference(answer, expected)
    if difference is None:
        return Verdict(True, "Well done.")
    return Verdict(False, f"{difference} {hint}" if difference else hint)


def _as_number_tensor(value: Any) -> torch.Tensor:
    """``value`` as a float64 tensor, or complex128 when it holds complex numbers (never dropping a part)."""
    t = value.detach() if isinstance(value, torch.Tensor) else value
    probe = t if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
    return torch.as_tensor(t, dtype=torch.complex128 if probe.is_complex() else torch.float64).cpu()


def close(answer: Any, expected: Any, *, hint: str, rtol: float = 1e-4, atol: float = 1e-6) -> Verdict:
    """Compare a number, list of numbers or tensor with the expected one up to floating-point rounding.

    Use it where the learner's computation may differ from the reference in the last
    digits (a softmax written by hand, a sum in another order). Complex values are
    compared as complex numbers, both parts: a real answer to a complex value is wrong
    unless the imaginary part is (close to) zero.

    Args:
        answer: the learner's float, list or tensor.
        expected: the right value, computed by the judge (never shown).
        hint: what to look at again when the answer is wrong.
        rtol, atol: tolerances, as in ``torch.allclose``.

    Example:
        >>> close(torch.tensor([0.1 + 0.2]), torch.tensor([0.3]), hint="add").passed
        True
        >>> close(torch.tensor([1 + 2j]), torch.tensor([1 - 2j]), hint="conjugate?").passed
        False
    """
    try:
        a = _as_number_tensor(answer)
    except (TypeError, ValueError, RuntimeError):
        return Verdict(False, f"Expected a number or a tensor, got {type(answer).__name__}. {hint}")
    e = _as_number_tensor(expected)
    if a.shape != e.shape:
        return Verdict(False, f"Shape {tuple(a.shape)}, expected {tuple(e.shape)}. {hint}")
    if a.is_complex() or e.is_complex():
        a, e = a.to(torch.complex128), e.to(torch.complex128)
    ok = torch.allclose(a, e, rtol=rtol, atol=atol)
    return Verdict(True, "Well done.") if ok else Verdict(False, hint)


def as_real(answer: Any) -> float | None:
    """``answer`` as a float if it is one real number (a Python or NumPy number, a one-element tensor), else ``None``.

    Example:
        >>> as_real(torch.tensor([2.5])), as_real(True), as_real("2")
        (2.5, None, None)
    """
    if isinstance(answer, torch.Tensor) and answer.numel() == 1 and not answer.is_complex():
        return float(answer)
    if isinstance(answer, numbers.Real) and not isinstance(answer, bool):
        return float(answer)
    return None


def as_whole(answer: Any) -> int | None:
    """``answer`` as an int if it is one whole number (an int, a NumPy int, a one-element integer tensor), else ``None``.

    Example:
        >>> as_whole(torch.tensor(3)), as_whole(3.0), as_whole(False)
        (3, None, None)
    """
    if isinstance(answer, torch.Tensor) and answer.numel() == 1 and not answer.is_floating_point() \
            and not answer.is_complex() and answer.dtype != torch.bool:
        return int(answer)
    if isinstance(answer, numbers.Integral) and not isinstance(answer, bool):
        return int(answer)
    return None


def as_choice(answer: Any, choices: Mapping[str, str]) -> str | None:
    """The choice ``answer`` names (``choices`` maps each accepted wording to its choice), else ``None``.

    Case and surrounding spaces do not matter; anything that is not a string is ``None``.

    Example:
        >>> as_choice(" Lower", {"lower": "lower", "same": "about the same"}), as_choice(3, {"3": "three"})
        ('lower', None)
    """
    return choices.get(answer.strip().lower()) if isinstance(answer, str) else None


def by_gap(gap: float, *, within: float, words: tuple[str, str, str] = ("lower", "about the same", "higher")) -> str:
    """What a measured ``gap`` says in a prediction's words: below ``-within``, within, or above ``within``.

    Example:
        >>> by_gap(-3.5, within=3), by_gap(0.004, within=0.005, words=("better", "about the same", "worse"))
        ('lower', 'about the same')
    """
    return words[1] if abs(gap) <= within else words[2] if gap > 0 else words[0]


def judge_prediction(answer: Any, choices: Mapping[str, str], truth: str, *, ask: str, right: str,
                     wrong: str) -> Verdict:
    """A predict exercise's verdict: ``ask`` if ``answer`` names none of ``choices``, else ``right`` or ``wrong``.

    ``truth`` is the choice the measurement supports (e.g. from ``by_gap``).

    Example:
        >>> judge_prediction("Lower", {"lower": "lower", "higher": "higher"}, "lower", ask="?", right="yes", wrong="no")
        Verdict(passed=True, message='yes')
    """
    guess = as_choice(answer, choices)
    if guess is None:
        return Verdict(False, ask)
    return Verdict(True, right) if guess == truth else Verdict(False, wrong)
