"""The course's exercises: ``tl.check(number, answer)`` and the judges behind it, one module per chapter.

``core`` registers the exercises and checks answers; ``compare`` compares values and
shows results; ``notebooks`` finds an exercise's cells in its chapter's notebook; each
``chapterNN`` module holds that chapter's judges, the references they compute and the
hints they give.
"""

# each chapter module registers its exercises
from . import chapter00, chapter01, chapter02, chapter03, chapter04  # noqa: F401
from . import chapter05, chapter06, chapter07, chapter08, chapter09, chapter10, chapter11, chapter12, chapter13  # noqa: F401
from .compare import CheckResult, Verdict, close, same
from .core import CHECKS_ENV, EXERCISES, KINDS, Exercise, check, exercise, need

__all__ = ["CHECKS_ENV", "EXERCISES", "KINDS", "CheckResult", "Exercise", "Verdict", "check", "close", "exercise",
           "need", "same"]
