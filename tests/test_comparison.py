"""compare_arms: the course's one comparison (paired seeds, a t interval); summarise_runs: its table."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

import tlcourse as tl


def _runs(values: dict[str, list[float]]) -> list[dict]:
    return [{"method": m, "seed": s, "accuracy": v} for m, vs in values.items() for s, v in enumerate(vs)]


def test_the_interval_is_the_paired_t_interval() -> None:
    a, b = [0.61, 0.70, 0.66, 0.72], [0.55, 0.69, 0.60, 0.70]
    c = tl.compare_arms(_runs({"a": a, "b": b}), "a", "b")
    d = [x - y for x, y in zip(a, b)]
    reference = stats.ttest_rel(a, b).confidence_interval(0.95)  # scipy's paired t-test, the same interval
    assert c.mean_difference == pytest.approx(sum(d) / 4)
    assert (c.low, c.high) == pytest.approx((reference.low, reference.high))
    assert c.seeds == (0, 1, 2, 3) and c.differences == pytest.approx(tuple(d))
    assert c.arm_mean == pytest.approx(sum(a) / 4) and c.baseline_mean == pytest.approx(sum(b) / 4)
    wider = tl.compare_arms(_runs({"a": a, "b": b}), "a", "b", confidence=0.99)
    assert wider.low < c.low and wider.high > c.high


def test_pairs_are_matched_by_seed_not_by_order() -> None:
    runs = [{"method": "a", "seed": 1, "accuracy": 0.9}, {"method": "b", "seed": 0, "accuracy": 0.5},
            {"method": "a", "seed": 0, "accuracy": 0.6}, {"method": "b", "seed": 1, "accuracy": 0.8}]
    assert tl.compare_arms(runs, "a", "b").differences == pytest.approx((0.1, 0.1))


@pytest.mark.parametrize(("a", "b", "verdict", "words"), [
    ([0.80, 0.83, 0.81], [0.70, 0.72, 0.71], "higher", "a is higher."),
    ([0.70, 0.72, 0.71], [0.80, 0.83, 0.81], "lower", "a is lower."),
    ([0.80, 0.70, 0.75], [0.75, 0.76, 0.74], "cannot tell", "the interval includes zero, so these seeds cannot tell"),
    ([0.80], [0.70], "cannot tell", "one seed: no interval, so no conclusion"),
])
def test_the_sentence_says_only_what_the_interval_shows(a, b, verdict, words) -> None:
    c = tl.compare_arms(_runs({"a": a, "b": b}), "a", "b")
    assert c.verdict == verdict and words in str(c)
    assert c.excludes_zero == (verdict != "cannot tell")


def test_a_large_mean_difference_over_disagreeing_seeds_is_not_a_finding() -> None:
    """The means differ by 8 points, but one seed says the opposite: no conclusion."""
    c = tl.compare_arms(_runs({"a": [0.90, 0.90, 0.60], "b": [0.70, 0.70, 0.75]}), "a", "b")
    assert c.mean_difference == pytest.approx(0.25 / 3) and c.verdict == "cannot tell"


def test_zero_is_never_shown_with_a_sign() -> None:
    c = tl.compare_arms(_runs({"a": [0.5, 0.6], "b": [0.5, 0.6]}), "a", "b")
    assert str(c).startswith("a - b: 0.0 points (95% CI 0.0 to 0.0")


@pytest.mark.parametrize(("runs", "problem"), [
    (_runs({"a": [0.5, 0.6], "b": [0.5]}), r"a and b do not share their seeds: a ran \[0, 1\], b ran \[0\]"),
    (_runs({"a": [0.5], "b": [0.5]}) + [{"method": "a", "seed": 0, "accuracy": 0.7}], "a ran seed 0 more than once"),
    (_runs({"a": [0.5], "bb": [0.5]}), "no runs of 'b'; the runs are of a, bb"),
    ([{"method": "a", "accuracy": 0.5}], "runs have no column 'seed'"),
])
def test_runs_that_do_not_pair_up_are_refused(runs, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        tl.compare_arms(runs, "a", "b")


def test_other_columns_and_values_not_in_percent() -> None:
    runs = [{"arm": arm, "seed": s, "loss": v} for arm, vs in {"x": [1.0, 1.2], "y": [2.0, 2.1]}.items()
            for s, v in enumerate(vs)]
    c = tl.compare_arms(runs, "x", "y", by="arm", value="loss", percent=False)
    assert c.mean_difference == pytest.approx(-0.95) and str(c).startswith("x - y: -0.95 (95% CI ")
    assert not math.isnan(c.high)


def test_summarise_runs_keeps_the_order_and_counts() -> None:
    runs = [{"method": m, "seed": s, "accuracy": v} for m, s, v in
            [("b", 0, 0.60), ("a", 0, 0.80), ("a", 1, 0.82), ("b", 1, 0.70), ("c", 0, 0.5)]]
    t = tl.summarise_runs(runs)
    assert list(t.index) == ["b", "a", "c"]  # order of first appearance
    assert t.loc["a", "mean"] == pytest.approx(0.81) and t.loc["a", "runs"] == 2
    assert t.loc["a", "std"] == pytest.approx(torch.tensor([0.80, 0.82]).std().item(), rel=1e-5)
    assert t.loc["c", "mean ± std"] == "50.0"  # one run: no spread to show
