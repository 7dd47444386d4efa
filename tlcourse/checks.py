"""Checks a learner runs on an exercise answer: a friendly pass, or a hint, never the solution.

Each exercise cell starts with a placeholder (``answer = None``); the check cell after it
calls a ``check_*`` function. The result displays as a green or amber box.

* Unanswered (``None``): the check says so and what to do, without failing the cell,
  so a notebook with the solutions removed (a student copy) still runs top to bottom.
* In the course's own tests, ``TLCOURSE_CHECKS=strict`` turns every failed or
  unanswered check into an ``AssertionError``, so a wrong solution cannot pass CI.

Generic checks (``check_equal``, ``check_close``) compare a value with one the notebook
computes. The chapter checks build on ``check_result``: ``tlcourse.answer_checks``
inspects the learner's answers and networks (chapter 1), ``tlcourse.function_checks``
runs the learner's functions (chapter 2); both recognise the usual mistakes so the hint
names the mistake rather than the answer.

Example:
    >>> r = check_equal("0.1", [1, 2], [1, 2], hint="count per class")
    >>> r.passed
    True
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .envvars import env_choice

__all__ = [
    "CHECKS_ENV",
    "CheckResult",
    "check_result",
    "check_equal",
    "check_close",
]

CHECKS_ENV = "TLCOURSE_CHECKS"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``passed`` (or ``None`` when unanswered) and a message."""

    exercise: str  # the exercise's number, e.g. "1.2"
    passed: bool | None  # True, False, or None when there is no answer yet
    message: str  # praise, a hint, or what to do

    def __bool__(self) -> bool:
        return bool(self.passed)

    def _status(self) -> str:
        return {True: "Correct", False: "Not yet", None: "No answer yet"}[self.passed]

    def __repr__(self) -> str:
        return f"Exercise {self.exercise}: {self._status()}. {self.message}"

    def _repr_html_(self) -> str:
        colour = {True: ("#166534", "#f0fdf4"), False: ("#9a3412", "#fff7ed"), None: ("#475569", "#f8fafc")}[self.passed]
        return (f'<div style="border-left:4px solid {colour[0]};background:{colour[1]};color:{colour[0]};'
                f'padding:0.4em 0.8em;margin:0.3em 0"><strong>Exercise {html.escape(self.exercise)}: '
                f"{self._status()}.</strong> {html.escape(self.message)}</div>")


def check_result(exercise: str, passed: bool | None, message: str) -> CheckResult:
    """Build a result; under ``TLCOURSE_CHECKS=strict`` anything but a pass raises.

    Every ``check_*`` function ends with this, so strictness lives in one place.

    Example:
        >>> check_result("9.9", True, "Well done.").passed
        True
    """
    result = CheckResult(exercise, passed, message)
    if passed is not True and env_choice(CHECKS_ENV, choices=("strict", "lenient")) == "strict":
        raise AssertionError(repr(result))
    return result


_UNANSWERED = "Replace the None in the exercise cell with your answer, run it, then run this check again."


def _few(names: list[str], n: int = 4) -> str:
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
            return (f"The keys{at} differ" + (f"; missing: {_few([repr(k) for k in missing])}" if missing else "")
                    + (f"; unexpected: {_few([repr(k) for k in extra])}" if extra else "") + ".")
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


def check_equal(exercise: str, answer: Any, expected: Any, *, hint: str) -> CheckResult:
    """Compare an answer with the expected value exactly.

    Tensors and NumPy arrays must match in type, shape, dtype and every element; dicts
    and lists are compared item by item (so a dict of tensors works); other values
    with ``==``.

    Args:
        exercise: the exercise's number.
        answer: the learner's value; ``None`` means not answered yet.
        expected: the right value, computed by the notebook (never typed in).
        hint: what to look at again when the answer is wrong.

    Example:
        >>> check_equal("0.2", torch.zeros(2), torch.ones(2), hint="look again").passed
        False
        >>> check_equal("0.2", {"w": torch.ones(2)}, {"w": torch.ones(2)}, hint="look again").passed
        True
    """
    if answer is None:
        return check_result(exercise, None, _UNANSWERED)
    difference = _difference(answer, expected)
    if difference is None:
        return check_result(exercise, True, "Well done.")
    return check_result(exercise, False, f"{difference} {hint}" if difference else hint)


def _as_number_tensor(value: Any) -> torch.Tensor:
    """``value`` as a float64 tensor, or complex128 when it holds complex numbers (never dropping a part)."""
    t = value.detach() if isinstance(value, torch.Tensor) else value
    probe = t if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
    return torch.as_tensor(t, dtype=torch.complex128 if probe.is_complex() else torch.float64).cpu()


def check_close(exercise: str, answer: Any, expected: Any, *, hint: str,
                rtol: float = 1e-4, atol: float = 1e-6) -> CheckResult:
    """Compare a number, list of numbers or tensor with the expected one up to floating-point rounding.

    Use it where the learner's computation may differ from the reference in the last
    digits (a softmax written by hand, a sum in another order). Complex values are
    compared as complex numbers, both parts: a real answer to a complex value is wrong
    unless the imaginary part is (close to) zero.

    Args:
        exercise: the exercise's number.
        answer: the learner's float, list or tensor; ``None`` means not answered yet.
        expected: the right value, computed by the notebook.
        hint: what to look at again when the answer is wrong.
        rtol, atol: tolerances, as in ``torch.allclose``.

    Example:
        >>> check_close("0.3", torch.tensor([0.1 + 0.2]), torch.tensor([0.3]), hint="add").passed
        True
        >>> check_close("6.9", 0.1 + 0.2, 0.3, hint="add").passed
        True
        >>> check_close("6.9", torch.tensor([1 + 2j]), torch.tensor([1 - 2j]), hint="conjugate?").passed
        False
    """
    if answer is None:
        return check_result(exercise, None, _UNANSWERED)
    try:
        a = _as_number_tensor(answer)
    except (TypeError, ValueError, RuntimeError):
        return check_result(exercise, False, f"Expected a number or a tensor, got {type(answer).__name__}. {hint}")
    e = _as_number_tensor(expected)
    if a.shape != e.shape:
        return check_result(exercise, False, f"Shape {tuple(a.shape)}, expected {tuple(e.shape)}. {hint}")
    if a.is_complex() or e.is_complex():
        a, e = a.to(torch.complex128), e.to(torch.complex128)
    ok = torch.allclose(a, e, rtol=rtol, atol=atol)
    return check_result(exercise, True, "Well done.") if ok else check_result(exercise, False, hint)
