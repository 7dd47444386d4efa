"""Chapter 5's exercises: reading the case study by paired intervals, and changing it.

The judges compute their references from the chapter's ``results`` (the runs of every
arm, budget and seed) with ``compare_arms``, the course's one rule; the two "change the
code" judges train small runs of the case study (``run_arm``) with the chapter's source
and data, and report what they measured. Everything is at the smallest label budget.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("5.1", "5.2", "5.3", "5.4")]
    ['predict', 'compute', 'change', 'change']
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from ..arms import CaseStudySettings, run_arm
from ..casestudy_report import case_study_comparisons
from ..comparison import Comparison, compare_arms, t_quantile
from .compare import Verdict, as_whole, close
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number

VERDICTS = ("higher", "lower", "cannot tell")  # Comparison.verdict's three answers
MAX_SEEDS = 10  # 5.4 trains two networks per extra seed: keep the check short


def _smallest(results: Mapping[str, Any]) -> str:
    """The smallest label budget of the results, as ``case_study_comparisons`` keys it: ``"10"``."""
    return str(results["metadata"]["budgets"][0])


def _accuracies(results: Mapping[str, Any], arm: str, budget: str) -> dict[Any, float]:
    """Seed -> test accuracy of ``arm`` at ``budget``, from the chapter's runs."""
    return {r["seed"]: r["test_acc"] for r in results["runs"] if r["arm"] == arm and str(r["budget"]) == budget}


def _on_standin(results: Mapping[str, Any]) -> str:
    standin = "cifar10" in (results["metadata"].get("standins") or [])
    return (" On the CIFAR-10 stand-in this says how the method behaves, not what happens on CIFAR-10."
            if standin else "")


@exercise("5.1", answer="frozen_verdict", stars=1, kind="predict",
          mistake='first = summary[summary["budget"] == summary["budget"].iloc[0]].set_index("arm")["mean"]\n'
                  'frozen_verdict = "higher" if first["frozen"] > first["finetune"] else "lower"')
def _frozen_verdict(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    results = need(ns, "results")
    budget = _smallest(results)
    truth = case_study_comparisons(results, arm="frozen", baseline="finetune")[budget]
    guess = answer.strip().lower() if isinstance(answer, str) else answer
    if guess not in VERDICTS:
        return Verdict(False, f"Predict one of {', '.join(map(repr, VERDICTS))} (a string), "
                              f"not {answer!r}.")
    n = len(truth.seeds)
    if guess == truth.verdict:
        return Verdict(True, f"Your prediction matches the interval computed from the {n} pairs of runs "
                             f"(t = {t_quantile(truth.confidence, n - 1):.1f} for {n} seeds).")
    if truth.verdict == "cannot tell":
        return Verdict(False, "The means differ, but a difference of means is not a verdict: the interval is the "
                              "mean of the per-seed differences ± t × their standard deviation / √n. Look at how "
                              "much the per-seed differences disagree, and how large t is for this few seeds.")
    if guess == "cannot tell":
        return Verdict(False, "Work out both ends of the interval from the per-seed differences frozen − finetune "
                              "(their mean ± t × standard deviation / √n) and see on which side of zero they lie.")
    return Verdict(False, "Mind the direction: the interval is of frozen − finetune, per seed. Which arm is ahead "
                          "in each pair of runs?")


def _paired_variants(diffs: list[float], a: list[float], b: list[float], confidence: float) -> dict[str, tuple]:
    """The interval as usual mistakes compute it, by name (``a`` and ``b`` per seed, ``diffs = a - b``)."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    sd0 = math.sqrt(sum((d - mean) ** 2 for d in diffs) / n)
    t = t_quantile(confidence, n - 1)
    var = [sum((x - sum(xs) / n) ** 2 for x in xs) / (n - 1) for xs in (a, b)]
    unpaired = math.sqrt(var[0] / n + var[1] / n)
    around = {"normal": 1.96 * sd / math.sqrt(n), "population": t * sd0 / math.sqrt(n), "over n": t * sd / n,
              "unpaired": t * unpaired, "unpaired 2n-2": t_quantile(confidence, 2 * n - 2) * unpaired}
    return {name: (mean - h, mean + h) for name, h in around.items()}


_INTERVAL_HINTS = {
    "normal": "1.96 is the normal distribution's 97.5% point, right for many seeds; with n seeds use Student's t "
              "with n − 1 degrees of freedom (scipy.stats.t.ppf(0.975, n - 1)), which is much larger for few seeds.",
    "population": "Use the sample standard deviation of the differences, which divides by n − 1 (pandas' .std() "
                  "does; NumPy's np.std needs ddof=1).",
    "over n": "The standard error of a mean is s_d / √n, not s_d / n.",
    "unpaired": "You used each arm's own spread over the seeds: that is the unpaired interval. The paired one uses "
                "the spread of the per-seed differences, which removes what a seed changes for both arms alike.",
}
_INTERVAL_HINTS["unpaired 2n-2"] = _INTERVAL_HINTS["unpaired"]


@exercise("5.2", answer="interval", stars=2, kind="compute",
          mistake='acc = runs[runs["budget"].astype(str) == str(meta["budgets"][0])].pivot(\n'
                  '    index="seed", columns="arm", values="test_acc")\n'
                  'd = acc["finetune"] - acc["scratch"]\n'
                  'interval = (d.mean() - 1.96 * d.std() / len(d) ** 0.5, d.mean() + 1.96 * d.std() / len(d) ** 0.5)')
def _interval(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    results = need(ns, "results")
    budget = _smallest(results)
    truth: Comparison = case_study_comparisons(results)[budget]
    if isinstance(answer, Comparison):
        return Verdict(False, "That is tl.compare_arms's answer: compute the two ends yourself, as numbers.")
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return Verdict(False, f"Give the two ends as a pair of numbers, interval = (low, high), "
                              f"not {type(answer).__name__}.")
    expected = (truth.low, truth.high)
    hint = "Per seed, finetune − scratch; then the mean ± t × the sample standard deviation / √n."
    if close(answer, expected, hint=hint).passed:
        return Verdict(True, f"Well done: your interval is the one tl.compare_arms reports, from {len(truth.seeds)} "
                             "pairs of runs.")
    if close(answer, expected, hint=hint, atol=6e-4, rtol=0.0).passed:  # the sentence rounds to 0.1 points
        return Verdict(False, "Close, but only to the digits printed: compute the ends from the runs rather than "
                              "copying the rounded sentence.")
    if close(answer, [100 * v for v in expected], hint=hint).passed:
        return Verdict(False, "Those are percentage points: give fractions, as test_acc is (0.05, not 5).")
    if close(answer, expected[::-1], hint=hint).passed:
        return Verdict(False, "The right numbers in the wrong order: low first, then high.")
    if close(answer, (-truth.high, -truth.low), hint=hint).passed:
        return Verdict(False, "That is scratch − finetune: the difference is the arm minus the baseline, "
                              "finetune − scratch.")
    a, b = _accuracies(results, "finetune", budget), _accuracies(results, "scratch", budget)
    seeds = list(truth.seeds)
    variants = _paired_variants(list(truth.differences), [a[s] for s in seeds], [b[s] for s in seeds],
                                truth.confidence)
    for name, ends in variants.items():
        if close(answer, ends, hint=hint).passed:
            return Verdict(False, _INTERVAL_HINTS[name])
    return Verdict(False, hint + " Use the runs of the smallest budget only, paired by seed.")


def _settings_of(results: Mapping[str, Any]) -> CaseStudySettings:
    """The recipe the chapter's runs were made with (as the results file records it)."""
    return CaseStudySettings(**results["metadata"]["settings"])


def _train(arm: str, ns: Mapping[str, Any], settings: CaseStudySettings, seeds: list[Any]) -> dict[Any, float]:
    """Seed -> test accuracy of ``arm`` trained at the smallest budget, with the chapter's source and data."""
    run, results, source, x_train, y_train, x_test, y_test = need(
        ns, "run", "results", "source", "x_train", "y_train", "x_test", "y_test")
    budget = _smallest(results)
    return {s: run_arm(arm, source, (x_train, y_train), (x_test, y_test),
                       budget=None if budget == "all" else int(budget), seed=s, profile=run.profile,
                       device=run.device, settings=settings)["test_acc"] for s in seeds}


def _pairs(name: str, mine: dict[Any, float], baseline: str, theirs: dict[Any, float]) -> Comparison:
    rows = [{"arm": name, "seed": s, "test_acc": v} for s, v in mine.items()]
    rows += [{"arm": baseline, "seed": s, "test_acc": v} for s, v in theirs.items()]
    return compare_arms(rows, name, baseline, by="arm", value="test_acc")


@exercise("5.3", answer="no_augment", stars=2, kind="change",
          mistake="no_augment = tl.CaseStudySettings(augment=False)")
def _no_augment(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    results = need(ns, "results")
    chapter = _settings_of(results)
    if not isinstance(answer, CaseStudySettings):
        return Verdict(False, f"Give settings, a tl.CaseStudySettings like the chapter's `settings`, "
                              f"not {type(answer).__name__}.")
    changed = [f.name for f in dataclasses.fields(chapter) if getattr(answer, f.name) != getattr(chapter, f.name)]
    others = [name for name in changed if name != "augment"]
    if not changed:
        return Verdict(False, "These are the chapter's settings, unchanged: turn the augmentation off in a copy.")
    if others:
        fresh = " A fresh tl.CaseStudySettings(...) has the defaults, not this profile's: start from `settings`." \
            if answer == dataclasses.replace(CaseStudySettings(), augment=answer.augment) else ""
        differ = "differs" if len(others) == 1 else "differ"
        return Verdict(False, f"Change the augmentation and nothing else: {', '.join(others)} {differ} from the "
                              f"chapter's settings too, so a difference could come from either.{fresh}")
    seeds = list(results["metadata"]["seeds"])
    mine, theirs = _train("finetune", ns, answer, seeds), _train("finetune", ns, chapter, seeds)
    comparison = _pairs("without augmentation", mine, "with augmentation", theirs)
    shown = ", ".join(f"seed {s}: {100 * mine[s]:.1f}% against {100 * theirs[s]:.1f}%" for s in seeds)
    return Verdict(True, f"Measured, finetune at {_smallest(results)} labels per class ({shown}). "
                         f"Paired by seed, {comparison}{_on_standin(results)}")


@exercise("5.4", answer="n_seeds", stars=3, kind="change", mistake='n_seeds = len(meta["seeds"])')
def _more_seeds(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    results = need(ns, "results")
    seeds = list(results["metadata"]["seeds"])
    if as_whole(answer) is None:
        return Verdict(False, f"Give a whole number of seeds, not {type(answer).__name__}.")
    answer = as_whole(answer)
    if answer < 2:
        return Verdict(False, "One seed gives one difference: no spread, so no interval at all.")
    if answer <= len(seeds):
        return Verdict(False, f"The chapter already ran {len(seeds)} seeds: choose more than that, so the check has "
                              "new pairs to add.")
    if answer > MAX_SEEDS:
        return Verdict(False, f"Keep it to at most {MAX_SEEDS} seeds here: each extra seed trains two networks.")
    budget = _smallest(results)
    before = case_study_comparisons(results)[budget]
    extra = list(range(max(seeds) + 1, max(seeds) + 1 + answer - len(seeds)))
    fine, scratch = _accuracies(results, "finetune", budget), _accuracies(results, "scratch", budget)
    fine.update(_train("finetune", ns, _settings_of(results), extra))
    scratch.update(_train("scratch", ns, _settings_of(results), extra))
    after = _pairs("finetune", fine, "scratch", scratch)
    return Verdict(True, f"Measured with {answer} seeds ({len(extra)} new): {after} The interval is "
                         f"{100 * (after.high - after.low):.1f} points wide, against "
                         f"{100 * (before.high - before.low):.1f} with the chapter's {len(seeds)} seeds; t went from "
                         f"{t_quantile(before.confidence, len(seeds) - 1):.1f} to {t_quantile(after.confidence, answer - 1):.1f}."
                         f"{_on_standin(results)}")
