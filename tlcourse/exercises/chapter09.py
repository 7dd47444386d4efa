"""Chapter 9's exercises: LEEP by hand, a relabelled source, Kendall's τ by hand, a smaller budget.

Each judge computes its reference from the chapter's objects (``ex_theta``, ``ex_y``,
``leep_before``, ``leep_after``, ``toy_scores``, ``toy_accuracies``, and for the budget the
``candidates``, ``data``, ``loader`` and ``means`` of the chapter); the hints point at the idea.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("9.1", "9.2", "9.3", "9.4")]
    ['compute', 'predict', 'compute', 'change']
    >>> _leep_variants(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 0]))["right"]
    0.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from ..pretrained import extract_features
from ..selection import leep, logme, probe_on_features, rank_correlation
from ..splits import per_class_subset
from .compare import Verdict, as_whole, close, judge_prediction
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number


def _leep_variants(theta: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """LEEP, and what the usual slips give instead: the joint for the conditional, P(z | y), no log."""
    theta, y = theta.double(), y.long()
    joint = torch.zeros(int(y.max()) + 1, theta.shape[1], dtype=torch.float64).index_add_(0, y, theta) / len(y)
    rows = torch.arange(len(y))

    def mean_log(table: torch.Tensor) -> float:
        return float((theta @ table.T)[rows, y].log().mean())

    return {"right": leep(theta, y), "joint": mean_log(joint), "rows": mean_log(joint / joint.sum(1, keepdim=True)),
            "no log": float((theta @ (joint / joint.sum(0, keepdim=True)).T)[rows, y].mean())}


@exercise("9.1", answer="leep_by_hand", stars=2, kind="compute", mistake="""\
joint_ex = torch.zeros(2, 3, dtype=torch.float64).index_add_(0, ex_y, ex_theta) / len(ex_y)
leep_by_hand = float((ex_theta @ joint_ex.T)[torch.arange(len(ex_y)), ex_y].log().mean())""")
def _leep_by_hand(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    ex_theta, ex_y = need(ns, "ex_theta", "ex_y")
    variants = _leep_variants(ex_theta, ex_y)
    verdict = close(answer, variants["right"], hint="Three steps: the joint P(y, z) (mean over examples of θ(x)_z "
                                                    "in the row of the example's class y); divide each column by its "
                                                    "sum to get P(y | z); then average log Σ_z P(y_i | z) θ(x_i)_z.")
    if verdict.passed:
        return Verdict(True, "Well done: that is tl.leep's score for these four examples.")
    slips = {"joint": "You used the joint P(y, z) where LEEP needs the conditional P(y | z): divide each column "
                      "(one source class z) by its sum first.",
             "rows": "You divided each row by its sum, which gives P(z | y); LEEP needs P(y | z), each column "
                     "(one source class z) divided by its sum.",
             "no log": "You averaged the probabilities themselves; LEEP is the mean of their logarithms."}
    for name, hint in slips.items():
        if close(answer, variants[name], hint="").passed:
            return Verdict(False, hint)
    if close(answer, -variants["right"], hint="").passed:
        return Verdict(False, "Check the sign: LEEP is a mean log-likelihood, so it is at most 0.")
    return verdict


@exercise("9.2", answer="leep_guess", stars=1, kind="predict", mistake='leep_guess = "lower"')
def _leep_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    before, after = need(ns, "leep_before", "leep_after")
    choices = {"higher": "higher", "lower": "lower", "the same": "the same", "same": "the same"}
    truth = ("the same" if abs(after - before) <= 1e-6 * max(1.0, abs(before))
             else "higher" if after > before else "lower")
    return judge_prediction(
        answer, choices, truth, ask='Write one of "higher", "lower" or "the same" as your prediction.',
        right="Your prediction matches the cell above. LEEP learns P(target class | source output) from the target "
              "data itself, so it does not care what a source output is called: relabelling the outputs wrecks the "
              "network on its own task and leaves its LEEP where it was.",
        wrong="The cell above disagrees with your prediction: compare its two LEEP values. LEEP never reads the "
              "names of the source's classes; it estimates P(target class | source output) from the target data. "
              "What happens to that table when the outputs swap names?")


@exercise("9.3", answer="tau_by_hand", stars=2, kind="compute", mistake="""\
tau_by_hand = sum(
    (toy_scores[i] - toy_scores[j]) * (toy_accuracies[i] - toy_accuracies[j]) > 0
    for i in range(5) for j in range(i + 1, 5)
) / 10""")
def _tau_by_hand(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    s, a = need(ns, "toy_scores", "toy_accuracies")
    n = len(s)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    agree = [(s[i] - s[j]) * (a[i] - a[j]) for i, j in pairs]
    c, d = sum(x > 0 for x in agree), sum(x < 0 for x in agree)
    verdict = close(answer, rank_correlation(s, a)["kendall"],
                    hint="List every pair of candidates once; count those that the scores and the accuracies order "
                         "the same way (C) and the opposite way (D); τ = (C − D) / number of pairs.")
    if verdict.passed:
        return Verdict(True, "Well done: that is Kendall's τ, as tl.rank_correlation computes it.")
    if close(answer, c / len(pairs), hint="").passed:
        return Verdict(False, "You counted only the concordant pairs: τ subtracts the discordant ones, (C − D) / "
                              "number of pairs.")
    if close(answer, (c - d) / (n * (n - 1)), hint="").passed:
        return Verdict(False, "You counted each pair twice, (i, j) and (j, i): the number of pairs is n(n − 1)/2.")
    return verdict


def _ranking(ns: Mapping[str, Any], per_class: int) -> pd.DataFrame:
    """Mean LEEP, LogME and linear-probe accuracy of every candidate on Fashion-MNIST budgets of ``per_class``."""
    candidates, data, loader, run = need(ns, "candidates", "data", "loader", "run")
    x_pool, y_pool, x_test, y_test = data["fashion_mnist"]
    tests = {name: extract_features(c.model, loader(c, x_test, y_test), run.device, head=c.head)
             for name, c in candidates.items()}
    rows = []
    for seed in run.profile.seeds:
        idx = per_class_subset(y_pool, per_class, seed=seed)
        for name, c in candidates.items():
            feats, logits, labels = extract_features(c.model, loader(c, x_pool[idx], y_pool[idx]), run.device,
                                                     head=c.head)
            test_f, _, test_y = tests[name]
            rows.append({"candidate": name, "LEEP": leep(F.softmax(logits.double(), dim=1), labels),
                         "LogME": logme(feats, labels),
                         "linear probe": probe_on_features(feats, labels, test_f, test_y)})
    return pd.DataFrame(rows).groupby("candidate", sort=False).mean()


def _agreement(table: pd.DataFrame) -> dict[str, tuple[float, str]]:
    """Kendall's τ of each score with probe accuracy, and the candidate the score ranks first."""
    return {score: (rank_correlation(table[score], table["linear probe"])["kendall"], table[score].idxmax())
            for score in ("LogME", "LEEP")}


@exercise("9.4", answer="few_labels", stars=2, kind="change", mistake="few_labels = 10")
def _few_labels(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    budget, means = need(ns, "LABELS_PER_CLASS", "means")
    if as_whole(answer) is None:
        return Verdict(False, f"Give a whole number of labelled images per class, not {type(answer).__name__}.")
    answer = as_whole(answer)
    if answer < 1:
        return Verdict(False, "Every class needs at least one labelled image.")
    if answer >= budget:
        return Verdict(False, "few_labels counts labelled images per class, and the task is a smaller budget than "
                              "the chapter's LABELS_PER_CLASS.")
    small, chapter = _ranking(ns, answer), means.loc["fashion_mnist"]
    now, before = _agreement(small), _agreement(chapter)
    best = small["linear probe"].idxmax()
    said = "; ".join(f"{score} ranks {top} first, τ = {tau:+.2f} ({before[score][0]:+.2f} with {budget} per class)"
                     for score, (tau, top) in now.items())
    images = "image" if answer == 1 else "images"
    return Verdict(True, f"Measured on Fashion-MNIST with {answer} labelled {images} per class, mean over seeds "
                         f"{list(need(ns, 'run').profile.seeds)}: the best linear probe is {best}'s "
                         f"({100 * small.loc[best, 'linear probe']:.1f}%). {said}.")
