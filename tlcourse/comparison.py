"""Comparing arms over seeds: the course's one rule for "helps", "hurts" and "cannot tell".

Every chapter that says one way of training beats another decides it here. Two arms run
with the same seeds (same label subset, same batch order, same head initialisation for
a given seed), so their results come in pairs; ``compare_arms`` takes the per-seed
differences ``arm - baseline`` and reports their mean with a **paired t confidence
interval** (95% by default): mean ± t(n-1) · sd / √n. The arm "helps" only when the whole
interval lies above zero, "hurts" only when it lies below; otherwise the seeds cannot
tell the two apart, whatever the means say. With few seeds the interval is wide (with
2 seeds, t = 12.7): that is the honest answer, and more seeds narrow it.

``summarise_runs`` is the table that goes with it: mean, spread (sample std over seeds),
min, max and the number of runs of each arm.

Example:
    >>> import tlcourse as tl
    >>> runs = [{"method": m, "seed": s, "accuracy": v} for m, s, v in
    ...         [("a", 0, 0.80), ("a", 1, 0.83), ("a", 2, 0.81), ("b", 0, 0.70), ("b", 1, 0.72), ("b", 2, 0.71)]]
    >>> print(tl.compare_arms(runs, "a", "b"))
    a - b: +10.3 points (95% CI +8.9 to +11.8; paired t over 3 seeds): a is higher.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

__all__ = ["Comparison", "compare_arms", "summarise_runs"]


@dataclass(frozen=True)
class Comparison:
    """Arm vs baseline over paired seeds: the differences, their mean and its confidence interval."""

    arm: str
    baseline: str
    seeds: tuple[Any, ...]  # the seeds both arms ran with, in order
    differences: tuple[float, ...]  # arm - baseline, per seed
    arm_mean: float
    baseline_mean: float
    low: float | None  # the interval's ends; None with one seed (no spread, no interval)
    high: float | None
    confidence: float = 0.95
    percent: bool = True  # values are fractions, shown as percentage points

    @property
    def mean_difference(self) -> float:
        return sum(self.differences) / len(self.differences)

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly above or wholly below zero."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    @property
    def verdict(self) -> str:
        """``"higher"``, ``"lower"``, or ``"cannot tell"`` (the interval holds zero, or there is one seed)."""
        if not self.excludes_zero:
            return "cannot tell"
        return "higher" if self.low > 0 else "lower"

    def _num(self, value: float) -> str:
        shown = f"{100 * value:+.1f}" if self.percent else f"{value:+.3g}"
        return "0.0" if float(shown) == 0 else shown  # "0.0", never "+0.0" or "-0.0"

    def sentence(self) -> str:
        """One sentence that says what the interval shows, and no more."""
        unit = " points" if self.percent else ""
        head = f"{self.arm} - {self.baseline}: {self._num(self.mean_difference)}{unit}"
        n = len(self.seeds)
        if self.low is None:
            return f"{head} (one seed: no interval, so no conclusion)."
        ci = (f"({100 * self.confidence:.0f}% CI {self._num(self.low)} to {self._num(self.high)}; "
              f"paired t over {n} seeds)")
        if self.excludes_zero:
            return f"{head} {ci}: {self.arm} is {self.verdict}."
        return f"{head} {ci}: the interval includes zero, so these seeds cannot tell the two apart."

    __str__ = sentence

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.sentence())}</p>"


def t_quantile(confidence: float, df: int) -> float:
    """Student's t point of a two-sided ``confidence`` interval with ``df`` degrees of freedom."""
    from scipy import stats
    return float(stats.t.ppf((1 + confidence) / 2, df))


def compare_arms(runs: pd.DataFrame | Sequence[Mapping[str, Any]], arm: str, baseline: str, *,
                 by: str = "method", value: str = "accuracy", seed: str = "seed",
                 confidence: float = 0.95, percent: bool = True) -> Comparison:
    """Compare ``arm`` with ``baseline`` over the seeds both ran: mean difference and paired t interval.

    Args:
        runs: one row per run, with the columns ``by`` (the arm's name), ``seed`` and ``value``.
        arm, baseline: the two names in the ``by`` column; the difference is ``arm - baseline``.
        by, value, seed: the column names.
        confidence: of the interval, in (0, 1).
        percent: ``value`` is a fraction, shown as percentage points.

    Raises:
        ValueError: a name that is not in ``runs``; seeds that do not pair up (each arm must
            have run every seed the other ran, once); a confidence outside (0, 1).

    Example:
        >>> runs = [{"method": "a", "seed": 0, "accuracy": 0.5}, {"method": "b", "seed": 1, "accuracy": 0.4}]
        >>> compare_arms(runs, "a", "b")
        Traceback (most recent call last):
        ...
        ValueError: a and b do not share their seeds: a ran [0], b ran [1]. Run both with the same seeds: the comparison pairs them.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence is a fraction in (0, 1), e.g. 0.95; got {confidence}")
    df = pd.DataFrame(list(runs) if not isinstance(runs, pd.DataFrame) else runs)
    missing = [c for c in (by, value, seed) if c not in df.columns]
    if missing:
        raise ValueError(f"runs have no column {missing[0]!r}; they have {', '.join(map(str, df.columns))}")
    names = list(dict.fromkeys(df[by]))
    for name in (arm, baseline):
        if name not in names:
            raise ValueError(f"no runs of {name!r}; the runs are of {', '.join(map(str, names))}")
    a, b = (df[df[by] == name].set_index(seed)[value] for name in (arm, baseline))
    for name, s in ((arm, a), (baseline, b)):
        if s.index.has_duplicates:
            raise ValueError(f"{name} ran seed {s.index[s.index.duplicated()].tolist()[0]!r} more than once: "
                             f"pass one run per seed")
    if set(a.index) != set(b.index):
        raise ValueError(f"{arm} and {baseline} do not share their seeds: {arm} ran {sorted(a.index.tolist())}, "
                         f"{baseline} ran {sorted(b.index.tolist())}. Run both with the same seeds: the comparison pairs them.")
    seeds = tuple(a.index.tolist())
    diffs = tuple(float(a[s] - b[s]) for s in seeds)
    n = len(diffs)
    low = high = None
    if n >= 2:
        mean = sum(diffs) / n
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        half = t_quantile(confidence, n - 1) * sd / math.sqrt(n)
        low, high = mean - half, mean + half
    return Comparison(arm, baseline, seeds, diffs, float(a.mean()), float(b.mean()), low, high, confidence, percent)


def summarise_runs(runs: pd.DataFrame | Sequence[Mapping[str, Any]], *, by: str | Sequence[str] = "method",
                   value: str = "accuracy", percent: bool = True, digits: int = 1) -> pd.DataFrame:
    """One row per method: mean, spread (sample std over seeds), min, max and the number of runs.

    Rows keep the order in which methods first appear. ``"mean ± std"`` is a display column,
    with ``digits`` decimals (of percent when ``percent``).
    Whether two methods differ is ``compare_arms``'s to say, not this table's.

    Example:
        >>> t = summarise_runs([{"method": "a", "seed": 0, "accuracy": 0.5},
        ...                     {"method": "a", "seed": 1, "accuracy": 0.7}])
        >>> t.loc["a", "mean ± std"]
        '60.0 ± 14.1'
    """
    df = pd.DataFrame(list(runs) if not isinstance(runs, pd.DataFrame) else runs)
    keys = [by] if isinstance(by, str) else list(by)
    g = df.groupby(keys, sort=False)[value]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "min": g.min(), "max": g.max(), "runs": g.count()})
    scale = 100 if percent else 1
    out["mean ± std"] = [f"{scale * m:.{digits}f}" + ("" if math.isnan(s) else f" ± {scale * s:.{digits}f}")
                         for m, s in zip(out["mean"], out["std"])]
    return out
