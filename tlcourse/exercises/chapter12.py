"""Chapter 12's exercises: how much smaller the student is, what heat does, whether the teacher helps, fewer images.

Each judge computes its reference from the chapter's objects (``material``, ``runs``,
``settings``, ``temperature``, ``run``); the hints point at the idea, never at the number.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("12.1", "12.2", "12.3", "12.4")]
    ['compute', 'predict', 'predict', 'change']
    >>> round(_mean_top_probability(torch.tensor([[0.0, 0.0], [2.0, 0.0]]), 1.0), 3)
    0.69
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from ..comparison import compare_arms
from ..compression import distill_experiment
from ..distillation import parameter_count
from ..models import LeNet
from .compare import LEVEL, Verdict, as_real, as_whole, by_gap, close, judge_prediction
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number

HOT, COLD = 4.0, 1.0  # the two temperatures of exercise 12.2
SAME_TOP = 0.01  # two mean top-class probabilities this close are "about the same" (exercise 12.2)
SAME_POINTS = 1.0  # percentage points: two mean accuracies this close are "about the same" (exercise 12.3)


@exercise("12.1", answer="ratio", stars=1, kind="compute",
          mistake="ratio = tl.parameter_count(tl.LeNet()) / tl.parameter_count(material.teacher.model)")
def _ratio(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    material = need(ns, "material")
    teacher, student = parameter_count(material.teacher.model), parameter_count(LeNet())
    value = as_real(answer)
    if value is None:
        return Verdict(False, f"Give one number (how many times), not {type(answer).__name__}.")
    if close(value, teacher / student, hint="", rtol=1e-3).passed:
        return Verdict(True, "Well done: that is the factor by which distillation shrinks the model. Whether the "
                             "time per image shrinks by as much is the question of the table further down.")
    if close(value, student / teacher, hint="", rtol=1e-3).passed:
        return Verdict(False, "That is the student's share of the teacher's size; the question asks how many times "
                              "more parameters the teacher has.")
    return Verdict(False, "Count the parameters of both networks (tl.parameter_count) and divide the teacher's "
                          "count by the student's.")


def _mean_top_probability(logits: torch.Tensor, temperature: float) -> float:
    """The mean over rows of the largest probability of ``softmax(logits / temperature)``."""
    return float(torch.softmax(logits / temperature, dim=1).max(dim=1).values.mean())


@exercise("12.2", answer="heat_guess", stars=2, kind="predict", mistake='heat_guess = "higher"')
def _heat_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    logits = need(ns, "material").targets[:, 1:]
    gap = _mean_top_probability(logits, HOT) - _mean_top_probability(logits, COLD)
    return judge_prediction(
        answer, LEVEL, by_gap(gap, within=SAME_TOP),
        ask='Write one of "higher", "about the same" or "lower" as your prediction.',
        right="Your prediction matches the table above. Dividing the logits by a larger T shrinks their "
              "differences, so the probability moves from the top class to the others.",
        wrong="The table above disagrees with your prediction: compare its rows. What happens to the differences "
              "between the logits when every one is divided by a larger number?")


@exercise("12.3", answer="teacher_guess", stars=2, kind="predict", mistake='teacher_guess = "lower"')
def _teacher_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    runs = need(ns, "runs")
    smallest = runs[runs["budget"] == runs["budget"].min()]
    mean = smallest.groupby("method")["accuracy"].mean()
    return judge_prediction(
        answer, LEVEL, by_gap(100 * (mean["distilled"] - mean["labels only"]), within=SAME_POINTS),
        ask='Write one of "higher", "about the same" or "lower" as your prediction.',
        right="Your prediction matches the runs above. With ten labels per class a student knows little; the "
              "teacher's outputs on thousands of unlabelled images tell it much more.",
        wrong="The runs above disagree with your prediction: compare the two means at the smallest budget. What "
              "does the distilled student learn from that the labels-only student never sees?")


@exercise("12.4", answer="few_unlabelled", stars=3, kind="change",
          mistake="few_unlabelled = len(material.transfer_y)")
def _few_unlabelled(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    material, runs, settings, temperature, run = need(ns, "material", "runs", "settings", "temperature", "run")
    n = len(material.transfer_y)
    count = as_whole(answer)
    if count is None:
        return Verdict(False, f"Give a whole number of images, not {type(answer).__name__}.")
    if not 1 <= count < n // 2:
        return Verdict(False, f"Choose at least 1 and fewer than half of the transfer set's {n:,} images: the "
                              "question is what happens with far fewer.")
    k = min(settings.budgets)
    few = distill_experiment(material, settings=settings, temperature=temperature, methods=("distilled",),
                             budgets=(k,), unlabelled=count, device=run.device, progress=False)
    name = f"distilled, {count:,} unlabelled"
    few["method"] = name
    at_k = runs[runs["budget"] == k]
    table = pd.concat([few, at_k])
    full = compare_arms(at_k, "distilled", "labels only")
    everything = int(at_k.loc[at_k["method"] == "distilled", "unlabelled"].iloc[0])
    return Verdict(True, f"Measured at k = {k} with seeds {list(settings.seeds)}: mean test accuracy "
                         f"{100 * few['accuracy'].mean():.1f}% with {count:,} unlabelled images, "
                         f"{100 * full.arm_mean:.1f}% with all {everything:,}, {100 * full.baseline_mean:.1f}% with "
                         f"labels only. {compare_arms(table, name, 'distilled').sentence()} "
                         f"{compare_arms(table, name, 'labels only').sentence()}")
