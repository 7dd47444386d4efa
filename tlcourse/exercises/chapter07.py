"""Chapter 7's exercises: the L2-SP penalty by hand, a pull so strong it freezes, and a β of your own.

Each judge computes its reference from the chapter's objects (``ex_net``, ``ex_anchor``,
``runs``, ``tuning``, ``alpha_for`` and the helpers ``from_source`` and ``split_budget``).
The change-the-code exercise trains L2-SP with the learner's β on the chapter's
validation split and reports what it measured next to the chapter's β; the test set
plays no part in it.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("7.1", "7.2", "7.3")]
    ['compute', 'predict', 'change']
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


from ..adapt import fine_tune
from ..regularise import distance_from, l2sp_loss, parameter_snapshot
from ..train import evaluate
from .compare import Verdict, as_real, close
from .core import ChapterObjectMissing, exercise, need

__all__: list[str] = []  # judges are registered by exercise number

ALPHA, BETA = 0.1, 0.01  # exercise 7.1's strengths, as its prompt states them
STRONG = "L2-SP, α = 1000"  # exercise 7.2's run, as its cell names it in `runs`
BASELINES = ("feature extraction", "full fine-tuning")


@exercise("7.1", answer="penalty_by_hand", stars=2, kind="compute",
          mistake="penalty_by_hand = tl.l2sp_penalty(ex_net, ex_anchor, alpha=0.1, beta=0.0).item()")
def _penalty_by_hand(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    net, anchor = need(ns, "ex_net", "ex_anchor")
    params = {n: p.detach() for n, p in net.named_parameters() if p.requires_grad}
    # ‖w − w⁰‖² of the copied weights
    moved = sum(float((params[n] - w.to(params[n].device)).pow(2).sum()) for n, w in anchor.items())
    size = sum(float(params[n].pow(2).sum()) for n in anchor)  # ‖w‖² of the copied weights
    head = sum(float(p.pow(2).sum()) for n, p in params.items() if n not in anchor)  # ‖w‖² of the new head
    truth = ALPHA / 2 * moved + BETA / 2 * head
    if as_real(answer) is None:
        return Verdict(False, f"Give one number (a float), not {type(answer).__name__}.")
    right = close(answer, truth, hint="", rtol=1e-4)
    if right.passed:
        return Verdict(True, "Well done: a pull towards w⁰ on the copied layers, ordinary decay on the head.")
    wrong = [  # (what the answer would be, the idea that was missed)
        (ALPHA / 2 * moved, "That is the α part alone: the new head, which has no anchor, pays β/2 · ‖w‖²."),
        (BETA / 2 * head, "That is the β part alone: the copied layers pay α/2 · ‖w − w⁰‖² as well."),
        (2 * truth, "Each part has a factor ½ (α/2 and β/2)."),
        (ALPHA * moved + BETA / 2 * head, "The α part has a factor ½ too: α/2."),
        (ALPHA / 2 * size + BETA / 2 * head, "The copied layers pay for their distance from the anchor, w − w⁰, "
                                             "not for their size: that would be ordinary weight decay."),
        (ALPHA / 2 * math.sqrt(moved) + BETA / 2 * math.sqrt(head), "Both norms are squared: add up the squares, "
                                                                    "and take no square root."),
    ]
    for value, hint in wrong:
        if close(answer, value, hint="", rtol=1e-4).passed:
            return Verdict(False, hint)
    return Verdict(False, "Two sums over ex_net.named_parameters(): α/2 times the squared differences from "
                          "ex_anchor for the anchored ones, β/2 times the squares for the others (fc2).")


def _mean_accuracy(runs: Sequence[Mapping[str, Any]], method: str, *, where: str) -> float:
    """The mean test accuracy of ``method`` over its runs in the chapter's ``runs``."""
    values = [r["accuracy"] for r in runs if r["method"] == method]
    if not values:
        raise ChapterObjectMissing(f"runs holds no run of {method!r}: {where}")
    return sum(values) / len(values)


@exercise("7.2", answer="nearer_to", stars=2, kind="predict",
          mistake='_acc = pd.DataFrame(runs).groupby("method")["accuracy"].mean()\n'
                  'nearer_to = max(["feature extraction", "full fine-tuning"], '
                  'key=lambda m: abs(_acc[m] - _acc["L2-SP, α = 1000"]))')
def _nearer_to(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    runs = need(ns, "runs")
    strong = _mean_accuracy(runs, STRONG, where="run the cell below your prediction first.")
    gap = {m: abs(_mean_accuracy(runs, m, where="run the cells of section 2 first.") - strong) for m in BASELINES}
    truth = min(gap, key=gap.get)
    if answer not in BASELINES:
        return Verdict(False, f"Write {BASELINES[0]!r} or {BASELINES[1]!r}.")
    if answer == truth:
        return Verdict(True, "Your prediction matches the measurement. Compare the body moved column too: "
                             "how far a pull that strong let the copied layers go.")
    if truth == "feature extraction":
        return Verdict(False, "The table above measured otherwise. With α = 1000 the pull back to the source, "
                              "α (w − w⁰), is strong after the smallest move: look at how far the copied layers "
                              "moved, and at what is left to learn.")
    return Verdict(False, "The table above measured otherwise: compare the accuracy of the α = 1000 row with "
                          "each baseline's, and how far its copied layers moved.")


@exercise("7.3", answer="new_beta", stars=2, kind="change", mistake="new_beta = BETA")
def _new_beta(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    run, tuning, alpha_for, split_budget, from_source, source_body, epochs, lr, beta = need(
        ns, "run", "tuning", "alpha_for", "split_budget", "from_source", "source_body", "EPOCHS", "LR", "BETA")
    value = as_real(answer)
    if value is None or not math.isfinite(value):
        return Verdict(False, f"Give one number, such as 0.1, not {answer!r}.")
    if value < 0:
        return Verdict(False, "β is a strength: a negative one would reward large head weights instead of "
                              "penalising them.")
    if value == beta:
        return Verdict(False, f"That is the chapter's β, whose runs are in the tuning table already; choose "
                              f"another value, for example 0 (no decay of the head) or ten times {beta:g}.")
    mine, theirs = [], []
    for seed in run.profile.seeds:
        train_loader, val_loader = split_budget(seed)  # 40 images train, 10 validate; no test image
        net = from_source(seed)  # a new network, exactly as the chapter's l2sp() starts
        anchor = parameter_snapshot(net, exclude="fc2")
        loss = l2sp_loss(net, anchor, alpha=alpha_for[seed], beta=value)
        fine_tune(net, train_loader, epochs=epochs, lr=lr, device=run.device, loss_fn=loss)
        mine.append((evaluate(net, val_loader, run.device)["accuracy"], distance_from(net, source_body)))
        row = tuning[(tuning["seed"] == seed) & (tuning["α"] == alpha_for[seed])].iloc[0]
        theirs.append((row["val accuracy"], row["body moved"]))
    per_image = 100 / len(val_loader.y)  # points of validation accuracy per image

    def listed(pairs: list[tuple[float, float]]) -> str:
        return (", ".join(f"{100 * a:.0f}%" for a, _ in pairs) + " validation accuracy, body moved "
                + ", ".join(f"{m:.3f}" for _, m in pairs))

    return Verdict(True, f"Measured on the validation split, with each seed's chosen α (seeds "
                         f"{list(run.profile.seeds)}): β = {value:g} gives {listed(mine)}; the chapter's "
                         f"β = {beta:g} gave {listed(theirs)}. One validation image is worth {per_image:.0f} "
                         "points here, so a difference of an image or two says little, and a β chosen on these "
                         "images would still meet the test set once, as α did.")
