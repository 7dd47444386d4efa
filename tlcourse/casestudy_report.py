"""The case study's results, read: a table by budget and arm, the plot, and the paired comparisons.

``summarize_results`` and ``results_table`` give mean ± std over seeds; ``plot_results``
the accuracy against the number of labels; ``case_study_comparisons`` whether an arm beats
the baseline at each budget, by the course's one rule (``compare_arms``: a paired t
interval over seeds).

Example:
    >>> runs = [{"arm": a, "budget": 10, "labels": 100, "seed": s, "test_acc": v}
    ...         for a, s, v in [("scratch", 0, 0.30), ("scratch", 1, 0.32), ("finetune", 0, 0.31), ("finetune", 1, 0.30)]]
    >>> print(case_study_comparisons({"runs": runs})["10"])
    finetune - scratch: -0.5 points (95% CI -19.6 to +18.6; paired t over 2 seeds): the interval includes zero, so these seeds cannot tell the two apart.
"""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure

from .arms import ARMS
from .comparison import Comparison, compare_arms, summarise_runs

__all__ = ["summarize_results", "results_table", "plot_results", "case_study_comparisons"]


def summarize_results(results: dict[str, Any]) -> Any:
    """One row per arm and budget: mean, standard deviation (over seeds) and count of the test accuracy.

    Returns a pandas DataFrame with columns ``arm, budget, labels, mean, std, n``, in
    the order of budgets and arms of the run.

    Example:
        >>> runs = [{"arm": "scratch", "budget": 10, "labels": 100, "test_acc": a} for a in (0.25, 0.75)]
        >>> summarize_results({"runs": runs})[["arm", "mean", "n"]].values.tolist()
        [['scratch', 0.5, 2]]
    """
    import pandas as pd

    df = pd.DataFrame(results["runs"])
    df["budget"] = df["budget"].astype(str)
    out = summarise_runs(df, by=["budget", "arm"], value="test_acc").reset_index()
    out["labels"] = df.groupby(["budget", "arm"], sort=False)["labels"].first().to_numpy()
    out = out.rename(columns={"runs": "n"})[["budget", "arm", "labels", "mean", "std", "n"]]
    return out.fillna({"std": 0.0})


def results_table(results: dict[str, Any]) -> Any:
    """The results as a table to read: budgets down, arms across, "mean ± std" test accuracy in %."""
    s = summarize_results(results)
    s["cell"] = [f"{100 * m:.1f} ± {100 * d:.1f}" for m, d in zip(s["mean"], s["std"])]
    table = s.pivot(index="budget", columns="arm", values="cell")
    order = list(dict.fromkeys(s["budget"]))
    table = table.loc[order, [a for a in ARMS if a in set(s["arm"])]]
    table.index = [f"{b} per class" if b != "all" else "all labels" for b in order]
    n = int(s["n"].min())
    table.columns.name = f"test accuracy % (mean ± std over {n} seed{'s' if n > 1 else ''})"
    return table


def plot_results(results: dict[str, Any], *, title: str | None = None) -> Figure:
    """Test accuracy against the number of labelled images, one line per arm, ± std as a band."""
    import matplotlib.pyplot as plt

    s = summarize_results(results)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    meta = results["metadata"]
    network = (meta.get("imagenet_arm") or {}).get("network", "an ImageNet network")
    labels = {"scratch": "from scratch", "finetune": "MNIST source, all layers trained",
              "frozen": "MNIST source, conv layers frozen", "imagenet": f"{network}, new head"}
    for arm in [a for a in ARMS if a in set(s["arm"])]:
        d = s[s["arm"] == arm].sort_values("labels")
        ax.plot(d["labels"], 100 * d["mean"], "o-", label=f"{arm}: {labels[arm]}")
        ax.fill_between(d["labels"], 100 * (d["mean"] - d["std"]), 100 * (d["mean"] + d["std"]), alpha=0.2)
    ax.set_xscale("log")
    ticks = sorted(set(s["labels"]))
    ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("labelled CIFAR-10 training images (log scale)")
    ax.set_ylabel(f"test accuracy (%), mean ± std over {int(s['n'].min())} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    standins = meta.get("standins") or []  # the data the results were measured on, not today's
    tag = {name: " (stand-in)" if name in standins else "" for name in ("mnist", "cifar10")}
    sources = "MNIST" + tag["mnist"] + (" or ImageNet" if "imagenet" in set(s["arm"]) else "")
    ax.set_title(title or f"{sources} → CIFAR-10{tag['cifar10']}, profile {meta.get('profile')}", fontsize=10)
    fig.tight_layout()
    return fig


def case_study_comparisons(results: dict[str, Any], *, arm: str = "finetune",
                           baseline: str = "scratch") -> dict[str, Comparison]:
    """``arm`` against ``baseline`` at each budget, over paired seeds (``compare_arms``), keyed by budget.

    ``str()`` of each is the sentence to print; it says only what the interval shows.
    Budgets where either arm has no runs are left out.
    """
    import pandas as pd

    df = pd.DataFrame(results["runs"])
    df["budget"] = df["budget"].astype(str)
    out = {}
    for budget in dict.fromkeys(df["budget"]):
        rows = df[df["budget"] == budget]
        if {arm, baseline} <= set(rows["arm"]):
            out[budget] = compare_arms(rows, arm, baseline, by="arm", value="test_acc")
    return out
