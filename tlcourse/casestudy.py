"""The case study MNIST -> CIFAR-10, whole: every arm x label budget x seed, as one results dict.

The document's recipe, done so that it runs and measures something:

1. ``train_source`` (``tlcourse.sources``) trains ``LeNet`` on MNIST digits padded to
   3x32x32, or loads it: the same function and recipe as every other chapter's source.
2. ``run_arm`` (``tlcourse.arms``) trains one CIFAR-10 model, from scratch or from the
   source's weights, on ``k`` labelled images per class, and evaluates it on the test set.
3. ``run_case_study`` runs every arm x budget x seed and returns a results dict, the
   same one ``python -m tlcourse casestudy`` (``tlcourse.casestudy_cli``) writes as
   ``results.json`` after every run (its schema, resuming, reading: ``tlcourse.results``).

``study_fingerprints`` says which data a study would use now; a results file is reused
only when its fingerprints match (``tlcourse.results``).
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import torch

from .arms import ARMS, LENET_ARMS, CaseStudySettings, cifar_tensors, run_arm
from .config import Profile
from .imagenet_arm import ImageNetArm, ImageNetArmSettings
from .names import unknown_choice
from .pretrained import ImageNetUnavailableError, PretrainedSource, imagenet_source
from .provenance import standin_names
from .session import dataset_title
from .sources import SOURCE_RECIPE, data_fingerprint, source_tensors, train_source

__all__ = ["RESULTS_SCHEMA", "run_case_study", "study_fingerprints"]

RESULTS_SCHEMA = "tlcourse-casestudy-results-v2"  # what run_case_study returns; tlcourse.results reads it


def _budget_list(profile: Profile, budgets: Sequence[int | str | None] | None) -> list[int | None]:
    """Budgets as ints, ``None`` meaning all labels; default: the profile's, plus all."""
    if budgets is None:
        return [*profile.label_budgets, None]
    return [None if b in (None, "all") else int(b) for b in budgets]


def _arm_problem(arms: Sequence[str]) -> str | None:
    """``unknown arm 'fintune' (did you mean 'finetune'?); choose from ...`` for the first unknown arm, else ``None``."""
    unknown = [arm for arm in arms if arm not in ARMS]
    return unknown_choice("arm", unknown[0], ARMS) if unknown else None


def _check_grid(arms: Sequence[str], budgets: Sequence[int | None], seeds: Sequence[int]) -> None:
    """Raise ``ValueError`` for an empty list, an unknown arm (naming the nearest) or a budget below 1."""
    for what, values in (("arms", arms), ("budgets", budgets), ("seeds", seeds)):
        if not values:
            raise ValueError(f"No {what} given: the study needs at least one")
    problem = _arm_problem(arms)
    if problem:
        raise ValueError(problem[0].upper() + problem[1:])
    bad = [b for b in budgets if b is not None and b < 1]
    if bad:
        raise ValueError(f"Label budgets are images per class and must be at least 1; got {bad}")


def study_fingerprints(profile: Profile, settings: CaseStudySettings | None = None,
                       cifar: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
                       ) -> dict[str, str]:
    """Fingerprints of the data a study would use now: the CIFAR-10 images and labels, and the source's digits.

    ``data_fingerprint`` hashes the CIFAR-10 train and test tensors; ``source_data_fingerprint``
    the MNIST training and test digits the source is trained on, at its input shape. Other
    data (real or stand-in, another sample) give other fingerprints.
    """
    settings = settings or CaseStudySettings.for_profile(profile)
    train, test = cifar or (cifar_tensors(profile, train=True), cifar_tensors(profile, train=False))
    digits = [source_tensors("mnist", profile, train=t, in_channels=settings.source_channels,
                             image_size=settings.source_size) for t in (True, False)]
    return {"data_fingerprint": data_fingerprint(*train, *test),
            "source_data_fingerprint": data_fingerprint(*digits[0], *digits[1])}


def run_case_study(profile: Profile, device: torch.device | str, *, budgets: Sequence[int | str | None] | None = None,
                   seeds: Sequence[int] | None = None, arms: Sequence[str] = tuple(ARMS),
                   settings: CaseStudySettings | None = None, retrain_source: bool = False,
                   log: Callable[[str], None] | None = print,
                   data: tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
                   resume: Callable[[dict[str, Any]], Sequence[Mapping[str, Any]]] | None = None,
                   on_progress: Callable[[dict[str, Any]], None] | None = None,
                   imagenet: PretrainedSource | None = None,
                   imagenet_settings: ImageNetArmSettings | None = None) -> dict[str, Any]:
    """Run every arm x budget x seed; return the results dict (the schema of ``results.json``).

    Arguments are checked before anything is trained. With ``resume``, runs finished
    earlier are taken over instead of computed again; with ``on_progress``, the results
    so far can be saved after every run (``python -m tlcourse casestudy`` does both).

    Args:
        profile: sizes, epochs, default budgets and seeds.
        device: where to train.
        budgets: labels per class; ``"all"`` or ``None`` for the whole training set.
            Default: ``profile.label_budgets`` plus all.
        seeds: default ``profile.seeds``.
        arms: a subset of ``ARMS``.
        settings: the recipe; default ``CaseStudySettings.for_profile(profile)``.
        retrain_source: train the source even if its checkpoint exists.
        log: called with one line per run; ``None`` is silent.
        data: CIFAR-10 ``(train, test)`` as ``cifar_tensors`` returns them; default: loaded here.
        resume: called once, before any training, with the metadata the study will write;
            returns the finished runs to reuse (``tlcourse.results.reusable_runs``), or raises to refuse.
        on_progress: called with the results so far (``metadata.complete`` false) after each new run.
        imagenet: the ``imagenet`` arm's network; default ``imagenet_source()`` (only if that arm runs).
        imagenet_settings: its recipe; default ``ImageNetArmSettings.for_profile(profile)``.

    Returns:
        ``{"schema", "metadata": {...}, "runs": [row, ...]}``, rows as ``run_arm`` returns, in
        the order budgets x seeds x arms.

    Raises:
        ValueError: an unknown arm, an empty list, a budget below 1.
        ImageNetUnavailableError: the ``imagenet`` arm is asked for, but no real ImageNet network is here.
        SourceInterrupted: Ctrl-C while the source model trains.

    Example:
        >>> run_case_study(tl.get_profile("quick"), "cpu", arms=["scratch", "fintune"])
        Traceback (most recent call last):
        ...
        ValueError: Unknown arm 'fintune' (did you mean 'finetune'?); choose from scratch, finetune, frozen, imagenet
    """
    t_start = time.perf_counter()
    device = torch.device(device)
    settings = settings or CaseStudySettings.for_profile(profile)
    budget_list = _budget_list(profile, budgets)
    seeds, arms = list(profile.seeds if seeds is None else seeds), list(dict.fromkeys(arms))
    _check_grid(arms, budget_list, seeds)
    say = log or (lambda _: None)
    if "imagenet" in arms:  # before any data are loaded or anything is trained
        imagenet = imagenet if imagenet is not None else imagenet_source()
        if not imagenet.real:
            raise ImageNetUnavailableError(f"The imagenet arm needs a real ImageNet-pretrained network: "
                                           f"{imagenet.message} Or leave the arm out: arms={list(LENET_ARMS)}.")
    train, test = data if data is not None else (cifar_tensors(profile, train=True),
                                                 cifar_tensors(profile, train=False))
    inet = ImageNetArm(imagenet, train, test, profile=profile, device=device, settings=imagenet_settings) \
        if "imagenet" in arms else None
    grid = [(arm, "all" if b is None else b, seed) for b in budget_list for seed in seeds for arm in arms]
    meta: dict[str, Any] = {
        "profile": profile.name,
        "profile_fields": dataclasses.asdict(profile),
        "standins": standin_names(("mnist", "cifar10")),  # of the two, those that are generated stand-ins
        "data": dataset_title("mnist") + " -> " + dataset_title("cifar10"),
        **study_fingerprints(profile, settings, (train, test)),
        "source_recipe": dataclasses.asdict(SOURCE_RECIPE),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "arms": arms,
        "budgets": ["all" if b is None else b for b in budget_list],
        "seeds": seeds,
        "settings": dataclasses.asdict(settings),
        "train_images": len(train[1]),
        "test_images": len(test[1]),
        "source": None,
        "imagenet_arm": inet.describe() if inet is not None else None,
        "timings": {"source_s": 0.0, "target_s": 0.0, "total_s": 0.0},
        "complete": False,
        "resumed_runs": 0,
    }
    finished: dict[tuple, Mapping[str, Any]] = {}
    for row in resume(json.loads(json.dumps(meta))) if resume is not None else ():
        finished.setdefault((row["arm"], row["budget"], row["seed"]), row)
    finished = {k: finished[k] for k in grid if k in finished}
    meta["resumed_runs"] = len(finished)
    if finished:
        rest = len(grid) - len(finished)
        say(f"{len(finished)} of {len(grid)} runs already done: " + (f"computing the other {rest}" if rest else
                                                                    "nothing left to compute"))
    t0 = time.perf_counter()
    source = None
    if any(a in ("finetune", "frozen") for a in arms):
        src = train_source("mnist", profile=profile, device=device, in_channels=settings.source_channels,
                           image_size=settings.source_size, retrain=retrain_source, verbose=log is not None)
        source = src.model
        meta["source"] = {
            "input": "x".join(map(str, src.input_shape)), "checkpoint": str(src.path), "fingerprint": src.fingerprint,
            "epochs": src.epochs, "test_acc": src.test_accuracy,
            "train_seconds": round(sum(src.history.seconds), 2), "history": src.history.to_dict()}
    source_s, t1 = time.perf_counter() - t0, time.perf_counter()

    def results(complete: bool) -> dict[str, Any]:
        meta["timings"] = {"source_s": round(source_s, 2), "target_s": round(time.perf_counter() - t1, 2),
                           "total_s": round(time.perf_counter() - t_start, 2)}
        meta["complete"] = complete
        if inet is not None:
            meta["imagenet_arm"]["frozen_outputs_s"] = round(inet.frozen_seconds, 2)
        return {"schema": RESULTS_SCHEMA, "metadata": dict(meta), "runs": [dict(finished[k]) for k in grid
                                                                          if k in finished]}

    for arm, budget, seed in grid:
        if (arm, budget, seed) in finished:
            continue
        b = None if budget == "all" else budget
        row = inet.run(budget=b, seed=seed) if arm == "imagenet" else \
            run_arm(arm, source, train, test, budget=b, seed=seed, profile=profile, device=device,
                    settings=settings)
        finished[(arm, budget, seed)] = row
        say(f"[{len(finished):3d}/{len(grid)}] {arm:8s} budget {str(row['budget']):>5s} seed {seed}: "
            f"test accuracy {row['test_acc']:.1%} ({row['steps']} steps, {row['seconds']:.1f} s)")
        if on_progress is not None:
            on_progress(results(complete=False))
    return results(complete=True)
