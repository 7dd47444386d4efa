"""Exercises by number: who judges an answer, and ``check``, the one call a check cell makes.

Every exercise of the course is registered here with ``@exercise``: its number, the
name of the learner's variable, its difficulty (1 to 3 stars), what kind of task it is,
and a deliberately wrong answer. The judge (the decorated function) receives the
learner's answer and the notebook's namespace, so the reference it compares with is
computed from the chapter's own objects (or stored in the judge where it does not depend
on the run) and never appears in the notebook. A check cell is one line::

    tl.check("3.1", conv1_params)

``None`` (the placeholder every exercise cell starts with) is "no answer yet", so Run All
on an untouched notebook never says "correct": the solutions are markdown (hidden until
opened) and never run.

Under ``TLCOURSE_CHECKS=strict`` (``make test``) each check also proves its exercise three
ways, in the one run of the notebook: the placeholder reports no answer yet, the
notebook's own solution (read from its solution cell, run on a copy of the namespace)
passes, and the wrong answer does not. Random-number states are restored after each, so
the notebook's later cells compute what they compute for a learner.

Example:
    >>> sorted(KINDS)
    ['change', 'compute', 'predict', 'write']
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import random
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..envvars import env_choice
from ..names import UnknownNameError, unknown_choice
from .compare import UNANSWERED, CheckResult, Verdict

__all__ = ["CHECKS_ENV", "KINDS", "Exercise", "EXERCISES", "exercise", "exercise_label", "check", "judge_answer",
           "ChapterObjectMissing", "need"]

CHECKS_ENV = "TLCOURSE_CHECKS"
# The kinds of task; the prompt names it after the stars.
KINDS = {
    "predict": "Predict, then run",  # a guess committed before a cell shows the truth
    "change": "Change the code",  # edit a setting, run it, the check measures the result
    "compute": "Compute",  # derive a number or an object from the chapter's objects
    "write": "Write a function",  # the check runs the learner's function on test cases
}
Judge = Callable[[Any, Mapping[str, Any]], Verdict]


def exercise_label(number: str) -> str:
    """The label of exercise ``number``'s prompt and solution on the website: ``ex-3-1``.

    Example:
        >>> exercise_label("3.1")
        'ex-3-1'
    """
    return "ex-" + number.replace(".", "-")


@dataclass(frozen=True)
class Exercise:
    """One exercise: its number, the learner's variable, difficulty, kind, judge and a wrong answer."""

    id: str  # "3.1": chapter 3, first exercise
    answer: str  # the variable the learner assigns (it starts as None)
    stars: int  # 1 (a few minutes) to 3 (a small experiment)
    kind: str  # a key of KINDS
    judge: Judge  # judge(answer, namespace) -> Verdict, for an answer that is not None
    mistake: str  # code assigning a typical wrong answer to `answer` (the tests run it)

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def label(self) -> str:
        """The label of its prompt and solution on the website: ``ex-3-1``."""
        return exercise_label(self.id)


EXERCISES: dict[str, Exercise] = {}


def exercise(id: str, *, answer: str, stars: int, kind: str, mistake: str) -> Callable[[Judge], Judge]:
    """Register the decorated judge as exercise ``id``'s.

    Example:
        >>> @exercise("99.1", answer="x", stars=1, kind="compute", mistake="x = 2")
        ... def _(x, ns):
        ...     return Verdict(x == 1, "Well done." if x == 1 else "Count again.")
        >>> EXERCISES.pop("99.1").answer
        'x'
    """
    if kind not in KINDS:
        raise UnknownNameError(unknown_choice("kind of exercise", kind, KINDS))
    if stars not in (1, 2, 3):
        raise ValueError(f"exercise {id}: stars must be 1, 2 or 3, not {stars!r}")
    if id in EXERCISES:
        raise ValueError(f"exercise {id} is registered twice")

    def register(judge: Judge) -> Judge:
        EXERCISES[id] = Exercise(id, answer, stars, kind, judge, mistake)
        return judge

    return register


class ChapterObjectMissing(LookupError):
    """A judge needs an object the chapter defines, and the learner has not run that cell yet."""


def need(ns: Mapping[str, Any], *names: str) -> Any:
    """The chapter objects ``names`` from the notebook's namespace (one value, or a tuple).

    Example:
        >>> need({"a": 1, "b": 2}, "a", "b")
        (1, 2)
    """
    missing = [n for n in names if n not in ns]
    if missing:
        raise ChapterObjectMissing(f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not defined: "
                                   "run the cells above this exercise first (Run > Run All Above Selected Cell).")
    values = tuple(ns[n] for n in names)
    return values[0] if len(values) == 1 else values


def find_exercise(exercise_id: str) -> Exercise:
    if exercise_id not in EXERCISES:
        raise UnknownNameError(unknown_choice("exercise", exercise_id, EXERCISES))
    return EXERCISES[exercise_id]


def judge_answer(ex: Exercise, answer: Any, ns: Mapping[str, Any]) -> CheckResult:
    """The result shown for ``answer``: no answer yet (``None``), correct, or not yet with a hint."""
    if answer is None:
        return CheckResult(ex.id, None, UNANSWERED)
    try:
        with same_random_state():  # a judge that trains leaves the notebook's later cells as they were
            passed, message = ex.judge(answer, ns)
    except ChapterObjectMissing as e:
        return CheckResult(ex.id, False, str(e))
    return CheckResult(ex.id, bool(passed), message)


def check(exercise_id: str, answer: Any, /) -> CheckResult:
    """Judge the learner's ``answer`` to exercise ``exercise_id``; the check cell's one call.

    The reference is computed by the exercise's judge from the calling notebook's own
    objects; the result shows the praise or a hint, never the answer.

    Example:
        >>> check("3.1", None).passed is None  # the placeholder: no answer yet
        True
    """
    ex = find_exercise(exercise_id)
    ns = sys._getframe(1).f_globals  # the notebook's namespace: the cell's globals
    result = judge_answer(ex, answer, ns)
    if env_choice(CHECKS_ENV, choices=("strict", "lenient")) == "strict":
        from .notebooks import solution_code

        prove(ex, result, ns, solution_code(ex.id))
        result = dataclasses.replace(result, proved=True)
    return result


@contextlib.contextmanager
def same_random_state() -> Iterator[None]:
    """Run a block and put every random-number generator back as it was."""
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def run_answer(code: str, ns: Mapping[str, Any], answer: str, *, what: str) -> Any:
    """Run ``code`` on a copy of the namespace (nothing of the notebook's is rebound) and return ``answer``."""
    scope = dict(ns)
    with same_random_state(), contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"<{what}>", "exec"), scope)  # noqa: S102 - the course's own solution code
    if answer not in scope:
        raise AssertionError(f"{what} does not assign {answer}")
    return scope[answer]


def prove(ex: Exercise, shown: CheckResult, ns: Mapping[str, Any], solution: str) -> None:
    """Raise unless the placeholder reads as unanswered, ``solution`` passes and the wrong answer fails."""
    if shown.passed is not None:
        raise AssertionError(f"Exercise {ex.id}: an untouched notebook must show 'No answer yet', not {shown!r}")
    right = judge_answer(ex, run_answer(solution, ns, ex.answer, what=f"solution {ex.id}"), ns)
    if right.passed is not True:
        raise AssertionError(f"Exercise {ex.id}: the notebook's solution fails its check: {right!r}")
    wrong = judge_answer(ex, run_answer(ex.mistake, ns, ex.answer, what=f"wrong answer {ex.id}"), ns)
    if wrong.passed is not False:
        raise AssertionError(f"Exercise {ex.id}: the wrong answer ({ex.mistake!r}) is not caught: {wrong!r}")
