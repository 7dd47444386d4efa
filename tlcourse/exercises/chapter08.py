"""Chapter 8's exercises: a blend by hand, a permuted twin, a λ of your own, a soup with a stranger.

Each judge computes its reference from the chapter's objects (``ends``, ``permuted_curve``,
``ingredients``, ``scratch`` and the chapter's ``validation``, ``accuracy`` and
``both_tasks``); the two "change the code" judges evaluate the learner's blend or soup on
the validation split and report the test accuracies once.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("8.1", "8.2", "8.3", "8.4")]
    ['compute', 'predict', 'change', 'change']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..interpolation import interpolate_state_dicts
from ..models import LeNet
from ..soups import greedy_soup, uniform_soup
from .compare import Verdict, as_real, close
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number

StateDict = Mapping[str, torch.Tensor]


def _loaded(state_dict: StateDict, device: Any) -> LeNet:
    """A new LeNet holding ``state_dict`` (the chapter's networks are never touched)."""
    net = LeNet().to(device)
    net.load_state_dict(state_dict)
    return net


def _same_weights(a: StateDict, b: StateDict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


@exercise("8.1", answer="conv1_blend", stars=1, kind="compute",
          mistake='conv1_blend = 0.75 * ends[run.seed][0]["conv1.weight"] + 0.25 * ends[run.seed][1]["conv1.weight"]')
def _conv1_blend(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    ends, run = need(ns, "ends", "run")
    theta_s, theta_t = ends[run.seed]
    if not isinstance(answer, torch.Tensor):
        return Verdict(False, f"Give a tensor (the blended conv1.weight), not {type(answer).__name__}.")
    expected = interpolate_state_dicts(theta_s, theta_t, 0.25)["conv1.weight"]
    verdict = close(answer, expected, hint="θ_T = λ·θ_S + (1 − λ)·θ_T', tensor by tensor, with λ = 0.25; "
                                           "take θ_S and θ_T' from ends[run.seed], and their 'conv1.weight'.")
    if verdict.passed:
        return Verdict(True, "Well done: that is the conv1.weight of tl.interpolate_state_dicts(θ_S, θ_T', 0.25).")
    if close(answer, interpolate_state_dicts(theta_s, theta_t, 0.75)["conv1.weight"], hint="").passed:
        return Verdict(False, "You weighted the two ends the other way round: λ multiplies θ_S, the first of "
                              "the pair, and 1 − λ multiplies θ_T'.")
    return verdict


@exercise("8.2", answer="midpoint_guess", stars=2, kind="predict", mistake='midpoint_guess = "as good"')
def _midpoint_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    curve = need(ns, "permuted_curve")
    choices = ("as good", "worse")
    guess = answer.strip().lower() if isinstance(answer, str) else answer
    if guess not in choices:
        return Verdict(False, 'Write one of "as good" or "worse" as your prediction.')
    acc = curve.set_index("lam")["accuracy"]
    drop = (acc[0.0] + acc[1.0]) / 2 - acc[0.5]  # below the ends' mean, halfway
    truth = "worse" if drop > 0.02 else "as good"
    if guess == truth:
        return Verdict(True, f"Your prediction matches the curve: both ends compute the same function, and halfway "
                             f"between them the accuracy is {100 * drop:.1f} points below the ends. Unit i of one "
                             "end is a different unit of the other, so the blend averages unrelated features.")
    return Verdict(False, "The curve printed above disagrees with your prediction: compare the accuracy at λ = 0.5 "
                          "with the ends. The two ends compute the same function, but with their hidden units in "
                          "another order; ask what the average of two different hidden units computes.")


@exercise("8.3", answer="my_lam", stars=2, kind="change", mistake="my_lam = 0.9")
def _my_lam(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    ends, run, validation, accuracy, both_tasks, n_val = need(
        ns, "ends", "run", "validation", "accuracy", "both_tasks", "n_val")
    lam = as_real(answer)
    if lam is None:
        return Verdict(False, f"Give λ as a number, not {type(answer).__name__}.")
    if not 0.0 < lam < 1.0:
        return Verdict(False, "Pick a λ strictly between 0 and 1: λ = 0 is θ_T' itself and λ = 1 is θ_S; the task "
                              "is a blend of the two.")
    theta_s, theta_t = ends[run.seed]
    blend = _loaded(interpolate_state_dicts(theta_s, theta_t, lam), run.device)
    fine_tuned = _loaded(theta_t, run.device)
    val, val_0 = accuracy(blend, validation(run.seed)), accuracy(fine_tuned, validation(run.seed))
    right, right_0 = round(val * n_val), round(val_0 * n_val)
    if right < right_0 - 1:
        side = (" λ weights θ_S: at your λ the blend is mostly the source." if lam > 0.5 else "")
        return Verdict(False, f"Measured: at λ = {lam:g} the blend gets {right} of the {n_val} validation images "
                              f"right, θ_T' gets {right_0}: more than one image lost.{side} Read the validation "
                              "accuracy of this seed's curve (curves[0]) along λ before you choose.")
    test, test_0 = both_tasks(blend), both_tasks(fine_tuned)
    return Verdict(True, f"Measured at λ = {lam:g}: {right} of {n_val} validation images right (θ_T': {right_0}). "
                         f"On the test sets, once: target {100 * test['target']:.1f}% (θ_T': "
                         f"{100 * test_0['target']:.1f}%), source digits {100 * test['source']:.1f}% (θ_T': "
                         f"{100 * test_0['source']:.1f}%), so the blend changed the digit task by "
                         f"{100 * (test['source'] - test_0['source']):+.1f} points.")


@exercise("8.4", answer="my_ingredients", stars=2, kind="change", mistake="my_ingredients = list(ingredients)")
def _my_ingredients(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    ingredients, scratch, run, validation, accuracy, target_test = need(
        ns, "ingredients", "scratch", "run", "validation", "accuracy", "target_test")
    stranger = scratch.state_dict()
    if any(_same_weights(sd, stranger) for sd in ingredients):
        return Verdict(False, "The list `ingredients` itself now holds the stranger (an append changed it): run "
                              "section 4's soup cell again, then build a new list from it.")
    if not isinstance(answer, (list, tuple)):
        return Verdict(False, f"Give a list of state dicts, not {type(answer).__name__}.")
    if any(isinstance(sd, nn.Module) for sd in answer):
        return Verdict(False, "A soup averages weights: give state dicts (network.state_dict()), not networks.")
    if not all(isinstance(sd, Mapping) for sd in answer):
        return Verdict(False, "Every item of the list must be a state dict.")
    found = [next((i for i, sd in enumerate(ingredients) if _same_weights(item, sd)), None) for item in answer]
    strangers = sum(_same_weights(item, stranger) for item in answer)
    if strangers == 0:
        return Verdict(False, "Your list has no stranger: add the weights of `scratch`, the LeNet trained from "
                              "another random start in section 1.")
    if strangers > 1 or sorted(i for i in found if i is not None) != list(range(len(ingredients))) \
            or len(answer) != len(ingredients) + 1:
        return Verdict(False, "Keep each of the soup's ingredients exactly once and add the stranger once, "
                              "nothing else.")
    seed = run.profile.seeds[-1]  # the seed of the soup's ingredients and of `scratch`

    def val_score(sd: StateDict) -> float:
        return accuracy(_loaded(sd, run.device), validation(seed))

    def test_score(sd: StateDict) -> float:
        return accuracy(_loaded(sd, run.device), target_test)

    plain, mixed = uniform_soup(ingredients), uniform_soup(list(answer))
    greedy, kept = greedy_soup(list(answer), val_score)
    at = next(i for i, item in enumerate(answer) if _same_weights(item, stranger))
    fate = "kept" if at in kept else "left out"
    return Verdict(True, f"Measured on seed {seed}'s validation split (test accuracy once): the uniform soup of the "
                         f"{len(ingredients)} ingredients {100 * val_score(plain):.0f}% (test "
                         f"{100 * test_score(plain):.1f}%); with the stranger {100 * val_score(mixed):.0f}% (test "
                         f"{100 * test_score(mixed):.1f}%). The greedy soup of your list kept items {kept} and "
                         f"{fate} the stranger (item {at}): {100 * val_score(greedy):.0f}% (test "
                         f"{100 * test_score(greedy):.1f}%).")
