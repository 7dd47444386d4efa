"""The case study's results file: where it lives, how it is written and resumed, how it is read.

``python -m tlcourse casestudy`` writes ``results.json`` after every finished run
(atomically: an interruption leaves the previous version, never half a file), and a rerun
of the same command reuses the runs already in it (``reusable_runs``). The schema:

* ``schema``: ``"tlcourse-casestudy-results-v1"``.
* ``metadata``: ``profile`` (name), ``profile_fields`` (every field), ``standins`` (which of MNIST and CIFAR-10 were stand-ins, a sorted list),
  ``data``, ``data_fingerprint`` (a hash of the CIFAR-10 images and labels used),
  ``device``, ``device_name``, ``torch``, ``python``, ``created`` (UTC, ISO 8601),
  ``arms``, ``budgets`` (ints per class, ``"all"``), ``seeds``, ``settings``
  (``CaseStudySettings``), ``train_images``, ``test_images``, ``source`` (``input``,
  ``checkpoint``, ``epochs``, ``test_acc``, ``train_seconds``, ``history``; ``null``
  without the finetune and frozen arms), ``imagenet_arm`` (``network``, ``kind``,
  ``weights_file``, ``note``, ``recipe``, ``settings`` (``ImageNetArmSettings``),
  ``frozen_outputs_s``; ``null`` without the imagenet arm), ``timings`` (``source_s``, ``target_s``, ``total_s``, of the
  last invocation), ``complete`` (``false`` while runs are missing), ``resumed_runs``
  (runs taken over from an earlier, interrupted invocation).
* ``runs``: one object per run: ``arm``, ``budget`` (int or ``"all"``), ``labels``
  (labelled images used), ``seed``, ``test_acc`` and ``train_acc`` (0-1), ``epochs``
  (passes over the labelled images), ``steps`` (SGD steps), ``seconds``.

Example:
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "results.json")
    >>> reusable_runs(path, planned={})  # no file yet: nothing to reuse
    []
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .casestudy import ARMS, RESULTS_SCHEMA, run_case_study
from .config import Profile
from .files import atomic_write_text
from .source import _data_tag, _repo_dir, _standin_names

__all__ = [
    "RESULTS_ENV",
    "ResultsConflictError",
    "results_dir",
    "default_results_path",
    "write_results",
    "reusable_runs",
    "find_results",
    "case_study_results",
    "summarize_results",
    "results_table",
    "plot_results",
    "compare_arms",
]

RESULTS_ENV = "TLCOURSE_RESULTS"
# What a run's number depends on besides its arm, budget and seed: a run is reused only if all match.
RECIPE_KEYS = ("profile_fields", "standins", "data_fingerprint", "settings", "device")
# ... and, for the imagenet arm's runs, which network and recipe made them (metadata["imagenet_arm"])
IMAGENET_RECIPE_KEYS = ("network", "weights_file", "settings")
_RUN_KEYS = {"arm", "budget", "labels", "seed", "test_acc", "train_acc", "epochs", "steps", "seconds"}


class ResultsConflictError(ValueError):
    """An existing results file cannot be continued by this study; it is left as it is."""


def results_dir() -> Path:
    """Where the case study writes results: ``$TLCOURSE_RESULTS``, else ``results/`` next to ``data/``."""
    env = os.environ.get(RESULTS_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else _repo_dir("results")


def default_results_path(profile: Profile) -> Path:
    """Where the command writes results by default: ``results/casestudy-<profile>-<standin|real>/results.json``."""
    return results_dir() / f"casestudy-{profile.name}-{_data_tag()}" / "results.json"


def write_results(path: str | os.PathLike, results: Mapping[str, Any]) -> Path:
    """Write ``results`` as JSON to ``path`` atomically (the old file or the new one, never half of one).

    Example:
        >>> import tempfile, os
        >>> write_results(os.path.join(tempfile.mkdtemp(), "results.json"), {"runs": []}).name
        'results.json'
    """
    return atomic_write_text(path, json.dumps(results, indent=1))


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _key(row: Mapping[str, Any]) -> tuple[str, int | str, int]:
    return row["arm"], row["budget"], row["seed"]


def _differences(key: str, then: Any, now: Any) -> list[str]:
    """``key.field ('a' in the file, 'b' now)`` for each field that differs (or the whole value)."""
    if isinstance(then, dict) and isinstance(now, dict):
        return [f"{key}.{k} ({then.get(k)!r} in the file, {now.get(k)!r} now)"
                for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k)]
    return [] if then == now else [f"{key} ({'missing' if then is None else repr(then)} in the file, {now!r} now)"]


def reusable_runs(path: str | os.PathLike, *, planned: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The finished runs of an earlier results file that the study ``planned`` describes can reuse.

    A rerun of an interrupted command continues where it stopped. Runs are reused only
    when the file was made with the same recipe (``RECIPE_KEYS``: every profile field,
    stand-in or real data, the same CIFAR-10 data by fingerprint, the same
    ``CaseStudySettings`` and kind of device; for runs of the imagenet arm also the same
    network, weights file and ``ImageNetArmSettings``, ``IMAGENET_RECIPE_KEYS``). A file
    without imagenet runs (made before that arm, or without it) is continued by a study
    that adds the arm: its runs are reused, the imagenet runs computed. Otherwise, or when the file holds runs
    outside the planned arms x budgets x seeds (they would be dropped), or cannot be
    read, this **refuses** (raises) instead of keeping only the matching runs: the file is
    never overwritten with fewer runs than it holds, and nothing is computed.

    Args:
        path: the results file; a missing file means nothing to reuse.
        planned: the metadata the study will write (``run_case_study`` passes it to ``resume``).

    Returns:
        the runs to reuse (``[]`` if there is no file), each a row as ``run_arm`` returns it.

    Raises:
        ResultsConflictError: the file is unreadable, or was made for another study.
    """
    path = Path(path)
    if not path.exists():
        return []
    advice = "Pass another --out (or move that file away) and run again; nothing was computed."
    try:
        results = json.loads(path.read_text())
        meta, runs = results["metadata"], list(results["runs"])
        if results["schema"] != RESULTS_SCHEMA or not all(_RUN_KEYS <= set(r) for r in runs):
            raise ValueError("not a case-study results file of schema " + RESULTS_SCHEMA)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ResultsConflictError(f"{path} exists but cannot be continued ({type(e).__name__}: {e}). {advice}") \
            from None
    differ = []
    for key in RECIPE_KEYS:
        then, now = meta.get(key), _plain(planned.get(key))
        if key == "device":  # cuda:0 and cuda run the same way; cpu and cuda do not
            then, now = str(then).split(":")[0], str(now).split(":")[0]
        differ += _differences(key, then, now)
    if any(r["arm"] == "imagenet" for r in runs) and "imagenet" in planned["arms"]:
        then, now = meta.get("imagenet_arm") or {}, _plain(planned.get("imagenet_arm")) or {}
        for key in IMAGENET_RECIPE_KEYS:
            differ += _differences(f"imagenet_arm.{key}", then.get(key), now.get(key))
    if differ:
        raise ResultsConflictError(f"{path} holds {len(runs)} runs made with other settings: "
                                   f"{'; '.join(differ[:4])}. {advice}")
    grid = {(a, b, s) for a in planned["arms"] for b in planned["budgets"] for s in planned["seeds"]}
    outside = [k for k in dict.fromkeys(map(_key, runs)) if k not in grid]
    if outside:
        shown = ", ".join(f"{a} budget {b} seed {s}" for a, b, s in outside[:3])
        raise ResultsConflictError(f"{path} holds {len(outside)} finished runs outside the --arms / --budgets / "
                                   f"--seeds asked for now (e.g. {shown}); continuing would drop them. "
                                   f"Include them, or: {advice}")
    return list({_key(r): r for r in reversed(runs)}.values())[::-1]  # one per key, the first one kept


def find_results(profile: Profile, path: str | os.PathLike | None = None, *,
                 arms: Sequence[str] = tuple(ARMS)) -> dict[str, Any] | None:
    """The results the command wrote for this profile and data, or ``None`` if there are none that fit.

    Results count only if they were made with the same profile (all its fields), the
    same kind of data (stand-in or real) as now, include every arm in ``arms``, and are
    complete (an interrupted study's file has ``complete: false`` until it is resumed).

    Args:
        profile: the current run profile.
        path: the results file; default ``default_results_path(profile)``.
        arms: arms the results must contain.

    Example:
        >>> import tempfile, os, tlcourse as tl
        >>> find_results(tl.get_profile("quick"), os.path.join(tempfile.mkdtemp(), "none.json")) is None
        True
    """
    path = Path(path) if path is not None else default_results_path(profile)
    try:
        results = json.loads(path.read_text())
        meta = results["metadata"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    fits = (results.get("schema") == RESULTS_SCHEMA and meta.get("profile_fields") == _plain(dataclasses.asdict(profile))
            and meta.get("standins") == _standin_names() and set(arms) <= set(meta.get("arms", []))
            and meta.get("complete", True) and results.get("runs"))
    return results if fits else None


def case_study_results(profile: Profile, device: Any, *, path: str | os.PathLike | None = None,
                       log: Any = print, **study: Any) -> dict[str, Any]:
    """Every arm's results for ``profile``: the command's file if it has them all, else computed here.

    When the file lacks some runs (say, the imagenet arm, added after it was written), its
    finished runs are reused if they were made with the same recipe (``reusable_runs``) and
    only the missing ones are computed; a file made otherwise is not used, and ``log`` says
    why. Nothing is written: ``python -m tlcourse casestudy`` writes the file.

    Args:
        profile: the run profile.
        device: where to train the missing runs.
        path: the results file; default ``default_results_path(profile)``.
        log: called with one line saying what was loaded or computed; ``None`` is silent.
        **study: ``arms``, ``budgets``, ``seeds`` as in ``run_case_study`` (default: all arms, the profile's).

    Example:
        >>> results = case_study_results(tl.get_profile("quick"), "cpu")  # doctest: +SKIP
    """
    say = log or (lambda _: None)
    path = Path(path) if path is not None else default_results_path(profile)
    found = find_results(profile, path, arms=study.get("arms", tuple(ARMS)))
    if found is not None:
        meta = found["metadata"]
        say(f"Loaded {path}, written by `python -m tlcourse casestudy` on {meta['created']} (device {meta['device']}).")
        return found
    reused: list[int] = []

    def resume(planned: dict[str, Any]) -> list[dict[str, Any]]:
        try:
            runs = reusable_runs(path, planned=planned)
        except ResultsConflictError as err:
            say(f"Not using {path}: " + str(err).split(" Pass another --out")[0])
            runs = []
        reused.append(len(runs))
        return runs

    results = run_case_study(profile, device, log=None, resume=resume, **study)
    n = len(results["runs"])
    say(f"Reused {reused[0]} finished runs of {path}; computed the other {n - reused[0]} here." if reused[0]
        else f"No usable results file for this profile and data: computed all {n} runs here.")
    return results


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
    g = df.groupby(["budget", "arm"], sort=False)
    out = g.agg(labels=("labels", "first"), mean=("test_acc", "mean"), std=("test_acc", "std"),
                n=("test_acc", "size")).reset_index()
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


def compare_arms(results: dict[str, Any], *, arm: str = "finetune", baseline: str = "scratch") -> list[str]:
    """Sentences comparing ``arm`` with ``baseline`` at each budget, worded from the numbers.

    A difference counts as measured only when it is larger than the two spreads
    (standard deviations over seeds) added together; otherwise it is "within the spread".
    """
    s = summarize_results(results)
    lines = []
    for budget in dict.fromkeys(s["budget"]):
        rows = s[s["budget"] == budget].set_index("arm")
        if arm not in rows.index or baseline not in rows.index:
            continue
        a, b = rows.loc[arm], rows.loc[baseline]
        diff, noise = a["mean"] - b["mean"], a["std"] + b["std"]
        what = "all labels" if budget == "all" else f"{budget} labels per class"
        if abs(diff) <= noise:
            points = round(100 * diff, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
            verdict = f"a difference of {points:+.1f} points, within the spread across seeds"
        else:
            verdict = f"{arm} is {'better' if diff > 0 else 'worse'} by {100 * abs(diff):.1f} points"
        lines.append(f"{what}: {arm} {100 * a['mean']:.1f}% ± {100 * a['std']:.1f} vs {baseline} "
                     f"{100 * b['mean']:.1f}% ± {100 * b['std']:.1f} ({int(a['n'])} seeds): {verdict}.")
    return lines
