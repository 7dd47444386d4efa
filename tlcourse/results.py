"""The case study's results file: where it lives, how it is written and resumed, how it is read.

``python -m tlcourse casestudy`` writes ``results.json`` after every finished run
(atomically: an interruption leaves the previous version, never half a file), and a rerun
of the same command reuses the runs already in it (``reusable_runs``). The schema:

* ``schema``: ``"tlcourse-casestudy-results-v2"`` (v2: ``standins`` a list, the source's data
  fingerprint and recipe; a v1 file is not read).
* ``metadata``: ``profile`` (name), ``profile_fields`` (every field), ``standins`` (which of MNIST and CIFAR-10 were stand-ins, a sorted list),
  ``data``, ``data_fingerprint`` (a hash of the CIFAR-10 images and labels used),
  ``source_data_fingerprint`` (of the source's MNIST digits), ``source_recipe`` (``SOURCE_RECIPE``),
  ``device``, ``device_name``, ``torch``, ``python``, ``created`` (UTC, ISO 8601),
  ``arms``, ``budgets`` (ints per class, ``"all"``), ``seeds``, ``settings``
  (``CaseStudySettings``), ``train_images``, ``test_images``, ``source`` (``input``,
  ``checkpoint``, ``fingerprint``, ``epochs``, ``test_acc``, ``train_seconds``, ``history``; ``null``
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

from .arms import ARMS, CaseStudySettings
from .casestudy import RESULTS_SCHEMA, run_case_study, study_fingerprints
from .config import Profile
from .files import atomic_write_text, repo_dir
from .provenance import data_tag, standin_names

__all__ = [
    "RESULTS_ENV",
    "ResultsConflictError",
    "results_dir",
    "default_results_path",
    "write_results",
    "reusable_runs",
    "find_results",
    "case_study_results",
]

RESULTS_ENV = "TLCOURSE_RESULTS"
# What a run's number depends on besides its arm, budget and seed: a run is reused only if all match.
RECIPE_KEYS = ("profile_fields", "standins", "data_fingerprint", "source_data_fingerprint", "source_recipe",
               "settings", "device")
# ... and, for the imagenet arm's runs, which network and recipe made them (metadata["imagenet_arm"])
IMAGENET_RECIPE_KEYS = ("network", "weights_file", "settings")
_RUN_KEYS = {"arm", "budget", "labels", "seed", "test_acc", "train_acc", "epochs", "steps", "seconds"}


class ResultsConflictError(ValueError):
    """An existing results file cannot be continued by this study; it is left as it is."""


def results_dir() -> Path:
    """Where the case study writes results: ``$TLCOURSE_RESULTS``, else ``results/`` next to ``data/``."""
    env = os.environ.get(RESULTS_ENV, "").strip()
    return Path(env).expanduser().resolve() if env else repo_dir("results")


def default_results_path(profile: Profile) -> Path:
    """Where the command writes results by default: ``results/casestudy-<profile>-<standin|real>/results.json``."""
    return results_dir() / f"casestudy-{profile.name}-{data_tag(('mnist', 'cifar10'))}" / "results.json"


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

    Results count only if they were made with the same profile (all its fields), on the
    same data as now (the fingerprints of the CIFAR-10 images and of the source's digits,
    ``study_fingerprints``: another sample or a stand-in does not fit), include every arm
    in ``arms``, and are complete (an interrupted study's file has ``complete: false``
    until it is resumed).

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
            and meta.get("standins") == standin_names(("mnist", "cifar10")) and set(arms) <= set(meta.get("arms", []))
            and meta.get("complete", True) and results.get("runs"))
    if not fits:
        return None
    settings = CaseStudySettings(**meta["settings"]) if isinstance(meta.get("settings"), dict) else None
    now = study_fingerprints(profile, settings)  # the data themselves: another sample or stand-in is other data
    return results if all(meta.get(k) == v for k, v in now.items()) else None


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
