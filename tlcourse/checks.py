"""Checks a learner runs on an exercise answer: a friendly pass, or a hint, never the solution.

Each exercise cell starts with a placeholder (``answer = None``); the check cell after it
calls a ``check_*`` function. The result displays as a green or amber box.

* Unanswered (``None``): the check says so and what to do, without failing the cell,
  so a notebook with the solutions removed (a student copy) still runs top to bottom.
* In the course's own tests, ``TLCOURSE_CHECKS=strict`` turns every failed or
  unanswered check into an ``AssertionError``, so a wrong solution cannot pass CI.

Example:
    >>> r = check_equal("0.1", [1, 2], [1, 2], hint="count per class")
    >>> r.passed
    True
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CHECKS_ENV", "CheckResult", "check_result", "check_equal"]

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
    if passed is not True and os.environ.get(CHECKS_ENV, "").strip().lower() == "strict":
        raise AssertionError(repr(result))
    return result


_UNANSWERED = "Replace the None in the exercise cell with your answer, run it, then run this check again."


def check_equal(exercise: str, answer: Any, expected: Any, *, hint: str) -> CheckResult:
    """Compare an answer with the expected value (tensors exactly, other values with ``==``).

    Args:
        exercise: the exercise's number.
        answer: the learner's value; ``None`` means not answered yet.
        expected: the right value, computed by the notebook (never typed in).
        hint: what to look at again when the answer is wrong.

    Example:
        >>> check_equal("0.2", torch.zeros(2), torch.ones(2), hint="look again").passed
        False
    """
    if answer is None:
        return check_result(exercise, None, _UNANSWERED)
    if isinstance(expected, torch.Tensor):
        if not isinstance(answer, torch.Tensor):
            return check_result(exercise, False, f"Expected a tensor, got {type(answer).__name__}. {hint}")
        if answer.shape != expected.shape:
            return check_result(exercise, False, f"Shape {tuple(answer.shape)}, expected {tuple(expected.shape)}. {hint}")
        same = answer.dtype == expected.dtype and torch.equal(answer, expected)
    else:
        same = answer == expected
    return check_result(exercise, True, "Well done.") if same else check_result(exercise, False, hint)
