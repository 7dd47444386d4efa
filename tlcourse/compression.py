"""Compressing a transferred model: a wide teacher distilled into a LeNet, measured in accuracy, size and time.

The setting: a big network (``tl.WideCNN``, the *teacher*) was trained on plenty of labelled
Fashion-MNIST images. A model that small devices can run (``tl.LeNet``, the *student*, about a
fifteenth of its parameters) must be trained from a *transfer set* of images the teacher never
saw, of which only ``k`` per class carry a label. Three ways to train the student
(``DISTILL_METHODS``), each for the same number of steps:

* ``labels only``: the ``k`` labelled images per class alone (repeated to fill the steps);
* ``hard targets``: every transfer image, labelled by the teacher's top class (the true label
  where there is one);
* ``distilled``: every transfer image, taught by the teacher's logits softened at temperature
  ``T`` (``tl.distillation_loss``), plus the true labels where there are any.

``choose_temperature`` picks ``T`` on a validation split carved from a label budget
(``tl.carve_validation``); ``distill_experiment`` runs methods × budgets × seeds through
``tl.run_grid``; ``tlcourse.quantisation`` measures a student before and after int8 weights.
``COMPRESSION_SETTINGS`` holds
the sizes per run profile (``compression_settings()``).

Example:
    >>> import tlcourse as tl
    >>> tl.compression_settings(tl.get_profile("quick")).budgets
    (10, 30)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from .adapt import fine_tune
from .config import Profile, get_profile
from .distillation import distillation_loss_fn, soft_targets
from .models import LeNet
from .names import unknown_choice
from .results import results_dir
from .run_grid import run_grid
from .sources import SourceRecipe, TrainedSource, data_fingerprint, source_tensors, train_source
from .splits import carve_validation, per_class_subset
from .text_models import TensorBatches
from .train import accuracy_on

__all__ = ["CompressionSettings", "COMPRESSION_SETTINGS", "compression_settings", "DISTILL_METHODS",
           "DistillMaterial", "compression_material", "train_student", "choose_temperature", "distill_experiment"]

DATASET = "fashion_mnist"
DISTILL_METHODS = ("labels only", "hard targets", "distilled")


@dataclass(frozen=True)
class CompressionSettings:
    """How big the compression chapter's runs are; fixed in advance, except ``T`` (chosen on validation)."""

    teacher_images: int = 30_000  # labelled training images the teacher learns from
    teacher_epochs: int = 5  # its passes over them (Adam, the source recipe's learning rate)
    transfer_images: int = 10_000  # other training images: the student's transfer set (the teacher never saw them)
    budgets: tuple[int, ...] = (10, 50, 200)  # true labels per class the student gets (from the transfer set)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 5  # passes over as many examples as the transfer set holds: every arm makes the same steps
    lr: float = 2e-3  # Adam, as the source recipe (not tuned)
    batch_size: int = 128
    alpha: float = 0.9  # the teacher term's weight (Hinton et al. weigh the labels far less); not tuned
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # tried; the best on validation is used
    validation_per_class: int = 50  # carved from the largest budget to choose T
    sweep_seeds: tuple[int, ...] = (0, 1)  # seeds of the temperature sweep (their mean is compared)
    timing_batch: int = 256  # the batch of the throughput timing (the latency timing uses one image)
    timing_repeats: int = 100  # timed passes; the median is kept
    timing_warmup: int = 10  # untimed passes before them

    def timing(self) -> dict[str, int]:
        """The keyword arguments of ``tl.model_table``: its batch, repeats and warm-up."""
        return {"batch": self.timing_batch, "repeats": self.timing_repeats, "warmup": self.timing_warmup}


COMPRESSION_SETTINGS = {
    # CI: every step runs on real images, too briefly for the numbers to mean much.
    "quick": CompressionSettings(teacher_images=4_000, teacher_epochs=5, transfer_images=3_000, budgets=(10, 30),
                                 seeds=(0, 1), epochs=3, temperatures=(1.0, 4.0), validation_per_class=10,
                                 sweep_seeds=(0,), timing_repeats=5, timing_warmup=2),
    # A laptop's CPU, a few minutes: the chapter's results.
    "cpu": CompressionSettings(),
    # A GPU: a teacher on most of the training split, more budgets and seeds, longer training.
    "full": CompressionSettings(teacher_images=50_000, teacher_epochs=10, budgets=(10, 50, 200, 1_000),
                                seeds=(0, 1, 2, 3, 4), epochs=10, sweep_seeds=(0, 1, 2)),
}


def compression_settings(profile: Profile | None = None) -> CompressionSettings:
    """The compression chapter's settings for ``profile`` (default ``get_profile()``)."""
    return COMPRESSION_SETTINGS[(profile or get_profile()).name]


@dataclass
class DistillMaterial:
    """The teacher, the transfer set with the teacher's outputs for it, and the test set."""

    teacher: TrainedSource  # the wide CNN, from tl.train_source
    transfer_x: torch.Tensor  # float (N, 1, 28, 28) in [0, 1]: training images the teacher never saw
    transfer_y: torch.Tensor  # int64 (N,): their true labels (a student is given only a budget of them)
    targets: torch.Tensor  # float (N, 1 + C): NO_LABEL, then the teacher's logits (tl.soft_targets)
    test_x: torch.Tensor  # float (M, 1, 28, 28): the profile's test images, touched once per run
    test_y: torch.Tensor  # int64 (M,)
    fingerprint: str  # of all of the above and the teacher's weights: names the results files


def compression_material(settings: CompressionSettings, *, profile: Profile | None = None,
                         device: torch.device | str = "cpu") -> DistillMaterial:
    """The teacher, trained (or loaded) on ``teacher_images`` Fashion-MNIST images, and a transfer set of others.

    The teacher comes from ``tl.train_source(..., architecture="wide_cnn")``, whose images are a
    seeded random subset of the training split; the transfer set is drawn from the rest of the
    same permutation, so no transfer image is one the teacher learned from (checked).
    """
    p = profile or get_profile()
    teacher_profile = replace(p, train_size=settings.teacher_images)
    teacher = train_source(DATASET, profile=teacher_profile, architecture="wide_cnn", device=device,
                           recipe=SourceRecipe(epochs=settings.teacher_epochs))
    x, y = source_tensors(DATASET, replace(p, train_size=None), train=True)  # the whole training split, uint8
    if settings.teacher_images + settings.transfer_images > len(y):
        raise ValueError(f"the teacher's {settings.teacher_images:,} and the transfer set's "
                         f"{settings.transfer_images:,} images do not fit in the {len(y):,} training images: "
                         "lower one of them")
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))  # as source_tensors draws (seed 0)
    seen = order[:settings.teacher_images]
    if not torch.equal(x[seen], source_tensors(DATASET, teacher_profile, train=True)[0]):
        raise RuntimeError("the teacher's training images are not the ones expected: the transfer set could overlap "
                           "them. tl.source_tensors draws its subset differently from compression_material.")
    transfer = order[settings.teacher_images:settings.teacher_images + settings.transfer_images]
    transfer_x, transfer_y = x[transfer].float() / 255, y[transfer]  # inputs in [0, 1], as the teacher's were
    test_x, test_y = source_tensors(DATASET, p, train=False)
    test_x = test_x.float() / 255
    targets = soft_targets(teacher.model, transfer_x, device=device)
    weights = [t.detach().cpu() for t in teacher.model.state_dict().values()]
    key = data_fingerprint(transfer_x, transfer_y, targets, test_x, test_y, teacher.fingerprint, *weights)
    return DistillMaterial(teacher, transfer_x, transfer_y, targets, test_x, test_y, key)


def _fill(rows: torch.Tensor, n: int) -> torch.Tensor:
    """``rows`` repeated (and cut) to ``n`` of them: a small set makes as many steps as a big one."""
    return rows.repeat(math.ceil(n / len(rows)))[:n] if len(rows) < n else rows


def train_student(method: str, material: DistillMaterial, *, labelled: torch.Tensor, settings: CompressionSettings,
                  temperature: float, seed: int, pool: torch.Tensor | None = None,
                  device: torch.device | str = "cpu") -> LeNet:
    """A LeNet trained by ``method`` (one of ``DISTILL_METHODS``) on the transfer set.

    Every method makes ``settings.epochs`` passes of as many examples as the transfer set
    holds, in batches of ``settings.batch_size``: the same number of steps.

    Args:
        method: ``"labels only"``, ``"hard targets"`` or ``"distilled"``.
        material: from ``compression_material``.
        labelled: indices into the transfer set whose true label the student is given.
        settings: epochs, learning rate, batch size, alpha.
        temperature: ``T`` of the distilled method (the others ignore it).
        seed: the student's initialisation and batch order.
        pool: indices of the transfer images the student may use (default all); must hold ``labelled``.
        device: where it trains.
    """
    if method not in DISTILL_METHODS:
        raise ValueError(unknown_choice("distillation method", method, DISTILL_METHODS))
    n = len(material.transfer_y)
    pool = torch.arange(n) if pool is None else pool
    if not torch.isin(labelled, pool).all():
        raise ValueError("every labelled image must be in the pool the student may use")
    loss_fn = F.cross_entropy
    if method == "labels only":
        rows = _fill(labelled, n)
        y = material.transfer_y[rows]
    elif method == "hard targets":
        rows = _fill(pool, n)
        hard = material.targets[:, 1:].argmax(dim=1)  # (N,) the teacher's top class
        hard[labelled] = material.transfer_y[labelled]
        y = hard[rows]
    else:
        rows = _fill(pool, n)
        targets = material.targets.clone()  # (N, 1 + C)
        targets[labelled, 0] = material.transfer_y[labelled].float()
        y = targets[rows]
        loss_fn = distillation_loss_fn(temperature=temperature, alpha=settings.alpha)
    torch.manual_seed(seed)
    student = LeNet(num_classes=material.targets.shape[1] - 1).to(device)
    if torch.device(device).type in ("cpu", "cuda"):
        student = student.to(memory_format=torch.channels_last)  # as tl.train_source: faster convolutions there
    batches = TensorBatches(material.transfer_x[rows], y, batch_size=settings.batch_size, seed=seed, device=device)
    fine_tune(student, batches, epochs=settings.epochs, lr=settings.lr, device=torch.device(device), loss_fn=loss_fn)
    return student.eval()


def choose_temperature(material: DistillMaterial, *, settings: CompressionSettings, device: torch.device | str = "cpu",
                       path: str | Path | None = None, progress: bool = True) -> tuple[float, pd.DataFrame]:
    """The ``T`` of ``settings.temperatures`` whose distilled students score best on validation images.

    For each sweep seed, the largest budget's labelled images are split (``tl.carve_validation``,
    ``validation_per_class`` per class): the rest are the student's labels, and the validation
    images are taken out of the transfer set, so the student never sees them. The test set is
    not read. Runs are saved and resumed (``tl.run_grid``).

    Returns:
        the chosen ``T`` (the smallest of a tie) and a table: validation accuracy per ``T``, per seed and their mean.
    """
    k = max(settings.budgets)
    key = data_fingerprint(material.fingerprint, repr(settings), "temperature sweep")
    path = Path(path) if path is not None else results_dir() / f"distill-temperature-{key}.json"

    def run(temperature: float, seed: int) -> dict[str, Any]:
        labelled = per_class_subset(material.transfer_y, k, seed=seed)
        fit, val = carve_validation(material.transfer_y[labelled], per_class=settings.validation_per_class, seed=seed)
        keep = torch.ones(len(material.transfer_y), dtype=torch.bool)
        keep[labelled[val]] = False
        student = train_student("distilled", material, labelled=labelled[fit], pool=torch.nonzero(keep).flatten(),
                                settings=settings, temperature=temperature, seed=seed, device=device)
        acc = accuracy_on(student, material.transfer_x[labelled[val]], material.transfer_y[labelled[val]], device)
        return {"temperature": temperature, "seed": seed, "validation accuracy": acc}

    plan = [(t, s) for t in settings.temperatures for s in settings.sweep_seeds]
    rows = run_grid(plan, run, key=lambda r: (r["temperature"], r["seed"]), fingerprint=key, path=path,
                    progress=progress)
    table = pd.DataFrame(rows).pivot(index="temperature", columns="seed", values="validation accuracy")
    table.columns = [f"seed {s}" for s in table.columns]
    table["mean"] = table.mean(axis=1)
    return float(table["mean"].idxmax()), table


def distill_experiment(material: DistillMaterial, *, settings: CompressionSettings, temperature: float,
                       methods: tuple[str, ...] = DISTILL_METHODS, budgets: tuple[int, ...] | None = None,
                       seeds: tuple[int, ...] | None = None, unlabelled: int | None = None,
                       device: torch.device | str = "cpu", path: str | Path | None = None,
                       progress: bool = True) -> pd.DataFrame:
    """Test accuracy of every method × budget × seed (default ``settings.budgets`` and ``.seeds``); saved, resumed.

    A seed draws the student's labelled images (``tl.per_class_subset`` of the transfer set),
    its initialisation and its batch order: the methods of a seed pair up (``tl.compare_arms``).

    Args:
        unlabelled: give the students only this many of the transfer images without a label
            (drawn per seed); default all of them. Steps stay the same (``train_student``).

    Returns:
        one row per run: ``method``, ``budget``, ``seed``, ``temperature``, ``unlabelled`` (images
        without a label the student used), ``accuracy``, ``seconds``.
    """
    for method in methods:
        if method not in DISTILL_METHODS:
            raise ValueError(unknown_choice("distillation method", method, DISTILL_METHODS))
    budgets, seeds = budgets or settings.budgets, seeds or settings.seeds
    n = len(material.transfer_y)
    if unlabelled is not None and not 0 <= unlabelled <= n:
        raise ValueError(f"unlabelled must be between 0 and the transfer set's {n:,} images; got {unlabelled}")
    key = data_fingerprint(material.fingerprint, repr(settings), float(temperature), unlabelled)
    path = Path(path) if path is not None else results_dir() / f"distill-{key}.json"

    def run(method: str, budget: int, seed: int) -> dict[str, Any]:
        started = time.perf_counter()
        labelled = per_class_subset(material.transfer_y, budget, seed=seed)
        rest = torch.nonzero(~torch.isin(torch.arange(n), labelled)).flatten()  # the images without a label
        if unlabelled is not None:
            rest = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed))[:unlabelled]]
        pool = torch.cat([labelled, rest]).sort().values
        student = train_student(method, material, labelled=labelled, pool=pool, settings=settings,
                                temperature=temperature, seed=seed, device=device)
        return {"method": method, "budget": budget, "seed": seed, "temperature": float(temperature),
                "unlabelled": 0 if method == "labels only" else len(rest),
                "accuracy": accuracy_on(student, material.test_x, material.test_y, device),
                "seconds": round(time.perf_counter() - started, 2)}

    plan = [(m, b, s) for b in budgets for s in seeds for m in methods]
    return pd.DataFrame(run_grid(plan, run, key=lambda r: (r["method"], r["budget"], r["seed"]), fingerprint=key,
                                 path=path, progress=progress))
