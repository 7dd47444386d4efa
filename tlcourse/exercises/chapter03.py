"""Chapter 3's exercises: the source network's shapes and parameters, its mistakes, its learning rate.

Each judge computes its reference from the chapter's objects (``source``, ``pred``,
``y_test``, ``run``) or from ``tl.LeNet`` itself; the hints point at the idea.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("3.1", "3.2", "3.3", "3.4")]
    ['predict', 'compute', 'compute', 'change']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from ..models import LeNet
from ..sources import SOURCE_RECIPE, SourceRecipe, train_source
from .compare import Verdict, as_whole, same
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number


@exercise("3.1", answer="fc1_inputs_36", stars=1, kind="predict", mistake="fc1_inputs_36 = 20 * 9 * 9")
def _fc1_inputs(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    truth = LeNet(in_channels=1, image_size=36).fc1.in_features
    if answer == truth:
        return Verdict(True, "Your prediction matches the network that was built.")
    return Verdict(False, "The network built above disagrees with your prediction. Follow the side length: "
                          "conv1 takes 4 pixels off, pooling halves, conv2 takes 4 off, pooling halves; "
                          "fc1 sees every channel of conv2 at that size.")


@exercise("3.2", answer="conv1_params", stars=1, kind="compute", mistake="conv1_params = 10 * 5 * 5")
def _conv1_params(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    source = need(ns, "source")
    return same(answer, sum(p.numel() for p in source.conv1.parameters()),
                hint="Count the weights of one filter (input channels × height × width), times the number of "
                     "filters; then the biases.")


@exercise("3.3", answer="sevens_wrong", stars=2, kind="compute", mistake="sevens_wrong = int((pred != 7).sum())")
def _sevens_wrong(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    pred, y_test = need(ns, "pred", "y_test")
    truth = int(((y_test == 7) & (pred != 7)).sum())
    if as_whole(answer) is None:
        return Verdict(False, f"Give one whole number, not {type(answer).__name__}.")
    if as_whole(answer) == truth:
        return Verdict(True, "Well done: combine two conditions, then count.")
    if int(answer) == int((pred == 7).sum() - ((y_test == 7) & (pred == 7)).sum()):
        return Verdict(False, "You counted images predicted as 7 that are something else; the question is about "
                              "images that *are* 7.")
    return Verdict(False, "Two conditions at once: the true class (y_test) is 7 and the prediction (pred) is not.")


@exercise("3.4", answer="slow_recipe", stars=2, kind="change",
          mistake="slow_recipe = tl.SourceRecipe(lr=tl.SOURCE_RECIPE.lr * 10)")
def _slow_recipe(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    run, trained = need(ns, "run", "trained")
    if not isinstance(answer, SourceRecipe):
        return Verdict(False, f"Give a tl.SourceRecipe (the recipe's class), not {type(answer).__name__}.")
    if abs(answer.lr * 10 - SOURCE_RECIPE.lr) > 1e-12 or answer.epochs not in (None, run.profile.source_epochs):
        return Verdict(False, "Change one thing only: the learning rate, ten times smaller than the course's "
                              "recipe's (tl.SOURCE_RECIPE), with the same epochs.")
    slow = train_source("mnist", profile=run.profile, device=run.device, in_channels=1, image_size=28,
                        seed=run.seed, recipe=answer)
    return Verdict(True, f"Measured: with learning rate {answer.lr:g} the source reaches "
                         f"{100 * slow.test_accuracy:.1f}% test accuracy in {slow.epochs} epoch(s), against "
                         f"{100 * trained.test_accuracy:.1f}% with the recipe's {SOURCE_RECIPE.lr:g}.")
