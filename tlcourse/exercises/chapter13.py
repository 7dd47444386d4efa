"""Chapter 13's exercises: the joint network's parameters, which layer to tune for two shifts, the loss weights.

Each judge computes its reference from the chapter's objects (``settings``, ``surgical``,
``relabelled``, ``tasks``, ``pairs``, ``run``); the hints point at the idea, never at the number.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("13.1", "13.2", "13.3", "13.4")]
    ['compute', 'predict', 'predict', 'change']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from ..comparison import compare_arms
from ..distillation import parameter_count
from ..multitask import joint_hidden, lenet_heads
from ..multitask_runs import run_pair
from ..surgical import SURGICAL_ARMS
from .compare import Verdict, as_real, as_whole, judge_prediction
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number

ARMS = {arm: arm for arm in SURGICAL_ARMS} | {"first": "first layer", "last": "last layer", "all": "all layers",
                                              "conv1": "first layer", "fc2": "last layer", "head": "last layer"}
ASK = 'Write one of "first layer", "last layer" or "all layers" as your prediction.'
PAIR = "digits + clothing"  # the pair exercise 13.4 reweights


@exercise("13.1", answer="joint_parameters", stars=1, kind="compute",
          mistake="joint_parameters = tl.parameter_count(tl.lenet_heads(settings.single_hidden, (10, 3)))")
def _joint_parameters(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    settings = need(ns, "settings")
    classes = (10, 3)
    truth = parameter_count(lenet_heads(joint_hidden(settings.single_hidden, classes), classes))
    separate = sum(parameter_count(lenet_heads(settings.single_hidden, (c,))) for c in classes)
    value = as_whole(answer)
    if value is None:
        return Verdict(False, f"Give a whole number of parameters, not {type(answer).__name__}.")
    if value == truth:
        return Verdict(True, f"Well done: within the {separate:,} parameters of the two separate networks, the shared "
                             f"backbone can afford more features than each of them has.")
    if value == separate:
        return Verdict(False, "That is the two separate networks together: the budget the joint network must fit in. "
                              "Build the joint network at its own width and count its parameters.")
    if value == parameter_count(lenet_heads(settings.single_hidden, classes)):
        return Verdict(False, "That backbone has the width of one separate network. The joint network is wider: "
                              "tl.joint_hidden says by how much.")
    return Verdict(False, "Build the network with both heads at the width tl.joint_hidden gives for these two tasks, "
                          "and count its parameters with tl.parameter_count.")


def _best_arm(runs: pd.DataFrame) -> str:
    return str(runs.groupby("method")["accuracy"].mean().idxmax())


@exercise("13.2", answer="inverted_guess", stars=2, kind="predict", mistake='inverted_guess = "last layer"')
def _inverted_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    runs = need(ns, "surgical")
    return judge_prediction(
        answer, ARMS, _best_arm(runs[runs["shift"] == "inverted"]), ask=ASK,
        right="Your prediction matches the table above. Inverting an image changes what the first filters see; "
              "the digits' shapes, and what they mean, are the same.",
        wrong="The table above disagrees with your prediction: compare the inverted row's three means. Where in the "
              "network does an inverted image first differ from a normal one?")


@exercise("13.3", answer="relabelled_guess", stars=2, kind="predict", mistake='relabelled_guess = "first layer"')
def _relabelled_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    return judge_prediction(
        answer, ARMS, _best_arm(need(ns, "relabelled")), ask=ASK,
        right="Your prediction matches the table above. The images are the ones the source learned; only the names "
              "of the classes changed, and the names live in the last layer.",
        wrong="The table above disagrees with your prediction. Which layer of the source maps its features to the "
              "ten class names, and which changed: the images or the names?")


def _weights(answer: Any) -> tuple[float, float] | None:
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return None
    values = tuple(as_real(v) for v in answer)
    if any(v is None or v < 0 for v in values) or not any(values):
        return None
    return values  # type: ignore[return-value]


@exercise("13.4", answer="weights", stars=3, kind="change", mistake="weights = (1.0, 1.0)")
def _weights_change(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    tasks, pairs, settings, run = need(ns, "tasks", "pairs", "settings", "run")
    weights = _weights(answer)
    if weights is None:
        return Verdict(False, "Give two non-negative numbers, (digits weight, clothing weight), not both zero.")
    if weights[0] == weights[1]:
        return Verdict(False, "Equal weights are the pair as it ran above (only their ratio matters to Adam): "
                              "change how much one task counts against the other.")
    names, budgets = zip(*pairs[PAIR])
    rows = []
    for seed in settings.seeds:
        rows += run_pair([tasks[n] for n in names], budgets=budgets, seed=seed, settings=settings,
                         device=run.device, weights=weights)
    runs = pd.DataFrame(rows)
    lines = [f"{task}: {compare_arms(runs[runs['task'] == task], 'joint', 'separate').sentence()}" for task in names]
    return Verdict(True, f"Measured with weights {weights} over seeds {list(settings.seeds)}. " + " ".join(lines))
