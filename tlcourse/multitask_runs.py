"""Chapter 13's multi-task experiments: one backbone for two tasks against one network per task.

The tasks are real images with few labels (``image_tasks``): ``digits`` (MNIST), ``clothing``
(Fashion-MNIST's 10 classes) and ``group`` (the coarse group of the same Fashion images:
tops, shoes, other; ``GROUPS``), a second label derived from the first. A network is LeNet's
feature extractor (``tl.Backbone``) with a linear head per task (``tl.lenet_heads``).
``run_pair`` trains the two arms of a pair of tasks on the same labelled examples, seeded:

* ``separate``: one network per task, each ``Backbone(single_hidden)`` with its head;
* ``joint``: one ``Backbone(joint_hidden(...))`` with both heads, trained on the weighted sum
  of the two losses (``tl.multitask_loss_fn``), its width chosen so that it has no more
  parameters than the two separate networks together (equal total parameters).

Both arms see every labelled example the same number of times (``MultiTaskSettings.epochs``,
and at least ``min_steps`` Adam steps per network). ``multitask_experiment`` runs pairs ×
seeds through ``tl.run_grid``. ``backbone_transfer`` then uses trained backbones as the
starting point of a *new* task with few labels: a multi-task backbone against single-task
ones of the same width, and a network trained from scratch.

Example:
    >>> import tlcourse as tl
    >>> tl.joint_hidden(50, (10, 10))  # two LeNets with 50 features = one backbone with 112 and two heads
    112
    >>> tl.parameter_count(tl.MultiHead(tl.Backbone(112), 112, (10, 10))) <= 2 * tl.parameter_count(
    ...     tl.MultiHead(tl.Backbone(50), 50, (10,)))
    True
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .adapt import fine_tune_budget
from .config import Profile, get_profile
from .data import dataset_tensors, load_dataset
from .distillation import NO_LABEL, parameter_count
from .loaders import DeviceLoader
from .multitask import MultiHead, joint_hidden, lenet_heads, multitask_loss_fn, task_accuracies
from .names import unknown_choice
from .results import results_dir
from .run_grid import run_grid
from .sources import data_fingerprint
from .splits import per_class_subset
from .transfer import transfer_weights

__all__ = ["GROUPS", "MultiTaskSettings", "MULTITASK_SETTINGS", "multitask_settings", "TaskData", "image_tasks",
           "run_pair", "multitask_experiment", "transfer_starts", "backbone_transfer"]

# Fashion-MNIST's classes (0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
# 7 Sneaker, 8 Bag, 9 Ankle boot) in three coarse groups: the `group` task's label.
GROUPS: dict[str, tuple[int, ...]] = {"tops": (0, 2, 4, 6), "shoes": (5, 7, 9), "other": (1, 3, 8)}


@dataclass(frozen=True)
class MultiTaskSettings:
    """How big the multi-task chapter's runs are; fixed in advance (nothing here is tuned on a test set)."""

    single_hidden: int = 50  # features of each single-task network (tl.LeNet's fc1)
    few: int = 5  # labelled examples per class of a task with few labels
    some: int = 10  # ... with some labels
    many: int = 200  # ... with many labels
    plenty: int = 1_000  # ... of a coarse task whose labels are cheap (the group of a garment)
    epochs: int = 30  # passes over each task's labelled examples, in both arms
    min_steps: int = 200  # Adam steps each network takes at least (a small budget is one batch per epoch)
    lr: float = 2e-3  # Adam, every network (SOURCE_RECIPE's)
    batch_size: int = 64
    test_per_class: int = 200  # test images per class of each task (drawn once, seed 0)
    new_per_class: int = 10  # labelled examples per class of the new task (backbone_transfer)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # the cpu profile runs 6, the full one 10


MULTITASK_SETTINGS = {
    # CI: every arm runs, on the real images, too briefly for the numbers to mean much.
    "quick": MultiTaskSettings(epochs=3, min_steps=10, many=20, plenty=20, test_per_class=30, seeds=(0, 1)),
    # A laptop's CPU: the chapter's results.
    "cpu": MultiTaskSettings(seeds=tuple(range(6))),
    # A GPU: more seeds, a narrower interval.
    "full": MultiTaskSettings(seeds=tuple(range(10))),
}


def multitask_settings(profile: Profile | None = None) -> MultiTaskSettings:
    """The multi-task chapter's settings for ``profile`` (default ``get_profile()``)."""
    return MULTITASK_SETTINGS[(profile or get_profile()).name]


@dataclass(frozen=True)
class TaskData:
    """One classification task on real images: uint8 ``(N, 1, 28, 28)`` and int64 ``(N,)``, training and test."""

    name: str
    images: str  # the dataset its images come from: tasks with the same images share them
    classes: int
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def _test_subset(x: torch.Tensor, y: torch.Tensor, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    keep = per_class_subset(y, min(per_class, int(torch.bincount(y).min())), seed=0)
    return x[keep], y[keep]


def image_tasks(settings: MultiTaskSettings, *, profile: Profile | None = None) -> dict[str, TaskData]:
    """The chapter's tasks: ``digits`` (real MNIST), ``clothing`` and ``group`` (real Fashion-MNIST, ``GROUPS``)."""
    tensors = {name: [dataset_tensors(load_dataset(name, train=t, profile=profile)) for t in (True, False)]
               for name in ("mnist", "fashion_mnist")}
    group_of = torch.zeros(10, dtype=torch.long)
    for g, members in enumerate(GROUPS.values()):
        group_of[list(members)] = g
    (mx, my), (mxt, myt) = tensors["mnist"]
    (fx, fy), (fxt, fyt) = tensors["fashion_mnist"]
    fxt, fyt = _test_subset(fxt, fyt, settings.test_per_class)
    return {"digits": TaskData("digits", "mnist", 10, (mx, my), _test_subset(mxt, myt, settings.test_per_class)),
            "clothing": TaskData("clothing", "fashion_mnist", 10, (fx, fy), (fxt, fyt)),
            "group": TaskData("group", "fashion_mnist", len(GROUPS), (fx, group_of[fy]), (fxt, group_of[fyt]))}


def _labelled(tasks: Sequence[TaskData], budgets: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and ``(N, tasks)`` labels: ``budgets[t]`` per class of task ``t`` (-1 where a row has no label of it).

    A task's examples are drawn with ``per_class_subset`` (seed ``seed + t``); two tasks on the
    same images share a row when both drew it.
    """
    xs, ys = [], []
    for images in dict.fromkeys(t.images for t in tasks):
        chosen = {t: per_class_subset(task.train[1], k, seed=seed + t)
                  for t, (task, k) in enumerate(zip(tasks, budgets)) if task.images == images}
        rows = torch.unique(torch.cat(list(chosen.values())))
        labels = torch.full((len(rows), len(tasks)), NO_LABEL, dtype=torch.long)
        for t, idx in chosen.items():
            here = torch.isin(rows, idx)
            labels[here, t] = tasks[t].train[1][rows[here]]
        xs.append(tasks[next(iter(chosen))].train[0][rows])
        ys.append(labels)
    return torch.cat(xs), torch.cat(ys)


def _test_batches(tasks: Sequence[TaskData], device: torch.device) -> list[DeviceLoader]:
    """Each task's test images with ``(N, tasks)`` labels (only that task's column set)."""
    out = []
    for t, task in enumerate(tasks):
        labels = torch.full((len(task.test[1]), len(tasks)), NO_LABEL, dtype=torch.long)
        labels[:, t] = task.test[1]
        out.append(DeviceLoader(task.test[0], labels, batch_size=1000, device=device, shuffle=False))
    return out


def _train(model: MultiHead, x: torch.Tensor, y: torch.Tensor, *, settings: MultiTaskSettings, seed: int,
           device: torch.device, weights: Sequence[float] | None = None) -> MultiHead:
    """``settings.epochs`` passes over ``(x, y)`` (at least ``min_steps`` steps) with Adam, via ``tl.fine_tune_budget``."""
    fine_tune_budget(model, x, y, epochs=settings.epochs, min_steps=settings.min_steps,
                     batch_size=settings.batch_size, lr=settings.lr, seed=seed, device=device,
                     loss_fn=multitask_loss_fn(model.classes_per_task, weights))
    return model


def run_pair(tasks: Sequence[TaskData], *, budgets: Sequence[int], seed: int, settings: MultiTaskSettings,
             device: torch.device | str = "cpu", weights: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Train ``joint`` and ``separate`` on the same labelled examples; each task's test accuracy in each arm.

    Args:
        tasks: the tasks (two, usually), e.g. ``[tasks["digits"], tasks["clothing"]]``.
        budgets: labelled examples per class of each task.
        seed: the labelled examples drawn, the initialisation and the batch order.
        settings: the recipe and widths.
        device: where to train.
        weights: the joint loss's weight of each task (default 1 each); the separate networks have one task each.

    Returns:
        one row per arm and task: ``method``, ``task``, ``seed``, ``accuracy``, ``labels``, ``parameters``.
    """
    device = torch.device(device)
    classes = [t.classes for t in tasks]
    x, y = _labelled(tasks, budgets, seed)
    tests = _test_batches(tasks, device)
    torch.manual_seed(seed)
    joint = _train(lenet_heads(joint_hidden(settings.single_hidden, classes), classes).to(device), x, y,
                   settings=settings, seed=seed, device=device, weights=weights)
    rows = [{"method": "joint", "task": task.name, "seed": seed,
             "accuracy": task_accuracies(joint, tests[t], classes, device=device)[t],
             "labels": int((y[:, t] != NO_LABEL).sum()), "parameters": parameter_count(joint)}
            for t, task in enumerate(tasks)]
    for t, task in enumerate(tasks):
        mine = y[:, t] != NO_LABEL
        torch.manual_seed(seed)
        single = _train(lenet_heads(settings.single_hidden, (task.classes,)).to(device), x[mine], y[mine][:, [t]],
                        settings=settings, seed=seed, device=device)
        rows.append({"method": "separate", "task": task.name, "seed": seed,
                     "accuracy": task_accuracies(single, _test_batches([task], device)[0], (task.classes,),
                                                 device=device)[0],
                     "labels": int(mine.sum()), "parameters": parameter_count(single)})
    return rows


def multitask_experiment(tasks: Mapping[str, TaskData], pairs: Mapping[str, tuple[tuple[str, int], ...]], *,
                         settings: MultiTaskSettings, device: torch.device | str = "cpu",
                         path: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """``run_pair`` for every pair × seed of ``settings.seeds``; saved after each run and resumed (``tl.run_grid``).

    Args:
        tasks: from ``image_tasks``.
        pairs: a name for each pair → its ``(task, labels per class)``, e.g.
            ``{"digits + clothing": (("digits", 10), ("clothing", 10))}``.
        settings, device: as in ``run_pair``.
        path: the results file; default ``results/multitask-<fingerprint>.json``.
        progress: show a progress bar.

    Returns:
        one row per pair, seed, arm and task (``pair`` added to ``run_pair``'s columns).
    """
    for pair in pairs.values():
        for name, _ in pair:
            if name not in tasks:
                raise ValueError(unknown_choice("task", name, tasks))
    key = data_fingerprint(*[t for task in tasks.values() for t in (*task.train, *task.test)], repr(settings),
                           repr(sorted(pairs.items())))
    path = Path(path) if path is not None else results_dir() / f"multitask-{key}.json"

    def run(pair: str, seed: int) -> dict[str, Any]:
        started = time.perf_counter()
        names, budgets = zip(*pairs[pair])
        rows = run_pair([tasks[n] for n in names], budgets=budgets, seed=seed, settings=settings, device=device)
        return {"pair": pair, "seed": seed, "rows": rows, "seconds": round(time.perf_counter() - started, 2)}

    done = run_grid([(p, s) for p in pairs for s in settings.seeds], run, key=lambda r: (r["pair"], r["seed"]),
                    fingerprint=key, path=path, progress=progress)
    return pd.DataFrame([{"pair": r["pair"], **row} for r in done for row in r["rows"]])


def transfer_starts(source_tasks: Sequence[str]) -> tuple[str, ...]:
    """The starts ``backbone_transfer`` compares: ``scratch``, each source task alone, and all of them jointly.

    Example:
        >>> transfer_starts(["clothing", "group"])
        ('scratch', 'clothing only', 'group only', 'multi-task')
    """
    return ("scratch", *(f"{name} only" for name in source_tasks), "multi-task")


def backbone_transfer(tasks: Mapping[str, TaskData], *, source_tasks: tuple[tuple[str, int], ...], new_task: str,
                      settings: MultiTaskSettings, device: torch.device | str = "cpu",
                      path: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Fine-tune on ``new_task`` (``settings.new_per_class`` labels per class) from each of ``transfer_starts``.

    Every backbone has the same width (``joint_hidden`` of the source tasks), so the starts differ
    only in what trained them, on the same labelled examples of a seed: ``<task> only`` on one
    source task alone, ``multi-task`` on all of them jointly (``run_pair``'s recipe), ``scratch``
    not at all. Each start gets a fresh head for the new task (the same one for every start of
    a seed) and every layer is fine-tuned with the same recipe, on the new task's labelled
    examples of that seed.

    Args:
        tasks: from ``image_tasks``.
        source_tasks: ``(task, labels per class)`` of the source tasks, e.g. ``(("clothing", 5), ("group", 1000))``.
        new_task: the task to transfer to (a name in ``tasks``, on other images than the sources').
        settings, device: as in ``run_pair``.
        path: the results file; default ``results/backbone-transfer-<fingerprint>.json``.
        progress: show a progress bar.

    Returns:
        one row per start and seed: ``method``, ``seed``, ``accuracy`` (on the new task's test images), ``seconds``.
    """
    names, budgets = zip(*source_tasks)
    for name in (*names, new_task):
        if name not in tasks:
            raise ValueError(unknown_choice("task", name, tasks))
    sources, target = [tasks[n] for n in names], tasks[new_task]
    device = torch.device(device)
    hidden = joint_hidden(settings.single_hidden, [t.classes for t in sources])
    starts = transfer_starts(names)
    key = data_fingerprint(*[t for task in (*sources, target) for t in (*task.train, *task.test)], repr(settings),
                           repr(source_tasks), new_task)
    path = Path(path) if path is not None else results_dir() / f"backbone-transfer-{key}.json"

    def run(start: str, seed: int) -> dict[str, Any]:
        started = time.perf_counter()
        x, y = _labelled(sources, budgets, seed)
        torch.manual_seed(seed)
        trained = None
        if start == "multi-task":
            trained = _train(lenet_heads(hidden, [t.classes for t in sources]).to(device), x, y, settings=settings,
                             seed=seed, device=device)
        elif start != "scratch":
            t = starts.index(start) - 1
            mine = y[:, t] != NO_LABEL
            trained = _train(lenet_heads(hidden, (sources[t].classes,)).to(device), x[mine], y[mine][:, [t]],
                             settings=settings, seed=seed, device=device)
        torch.manual_seed(seed + 1000)  # the new network's start: the same for every start of a seed
        model = lenet_heads(hidden, (target.classes,)).to(device)
        if trained is not None:
            transfer_weights(trained.backbone, model.backbone)
        nx, ny = _labelled([target], [settings.new_per_class], seed)
        _train(model, nx, ny, settings=settings, seed=seed, device=device)
        return {"method": start, "seed": seed,
                "accuracy": task_accuracies(model, _test_batches([target], device)[0], (target.classes,),
                                            device=device)[0],
                "seconds": round(time.perf_counter() - started, 2)}

    plan = [(start, s) for s in settings.seeds for start in starts]
    return pd.DataFrame(run_grid(plan, run, key=lambda r: (r["method"], r["seed"]), fingerprint=key, path=path,
                                 progress=progress))
