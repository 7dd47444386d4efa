"""Chapter 0's exercises: counting classes, batches per epoch, a budget as a batch, a budget that grows.

Each judge computes its reference from the chapter's objects (``datasets``, ``run``,
``cifar_labels``, ``budget``) with the course's own functions; the hints point at the
idea (which split, per class or in all, rounding up, the seed), never at the number.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("0.1", "0.2", "0.3", "0.4")]
    ['compute', 'predict', 'compute', 'change']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ..data import dataset_tensors
from ..images import grey_to_rgb32
from ..loaders import DeviceLoader
from ..splits import per_class_subset
from .compare import Verdict, same
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number


def _class_counts(dataset: Any) -> list[int]:
    """Images per class of a torchvision dataset, in class order (from its targets, no image decoded)."""
    return torch.bincount(torch.as_tensor(dataset.targets), minlength=len(dataset.classes)).tolist()


@exercise("0.1", answer="test_counts", stars=1, kind="compute",
          mistake='test_counts = torch.bincount(torch.as_tensor(datasets["fashion_mnist"][0].targets)).tolist()')
def _test_counts(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    train, test = need(ns, "datasets")["fashion_mnist"]
    truth = _class_counts(test)
    if isinstance(answer, torch.Tensor):
        answer = answer.tolist()
    if not isinstance(answer, (list, tuple)) or not all(isinstance(n, int) for n in answer):
        return Verdict(False, f"Give a list of whole numbers, one per class, not {type(answer).__name__}.")
    answer = list(answer)
    if answer == truth:
        return Verdict(True, "Well done: one count per class, in class order.")
    if answer == _class_counts(train):
        return Verdict(False, "These are the counts of the training split; the question is about the test split, "
                              'the second dataset of datasets["fashion_mnist"].')
    if len(answer) != len(truth):
        return Verdict(False, f"{len(answer)} counts: give one per class, and Fashion-MNIST has "
                              f"{len(test.classes)} classes (torch.bincount's minlength keeps empty ones).")
    if sum(answer) == len(test):
        return Verdict(False, "They add up to the number of test images, but not class by class: count the "
                              "labels (the dataset's targets) of each class, in class order.")
    return Verdict(False, "Count the labels (the dataset's targets) of each class of the test split; together "
                          "the counts add up to the number of test images, len(test).")


@exercise("0.2", answer="batches_50", stars=1, kind="predict",
          mistake="batches_50 = 50 * 10 // run.profile.batch_size")
def _batches_50(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    run, cifar_labels = need(ns, "run", "cifar_labels")
    pick = per_class_subset(cifar_labels, 50, seed=run.seed)
    images = torch.zeros(len(pick), 3, 32, 32, dtype=torch.uint8)  # only the count matters
    truth = len(DeviceLoader(images, cifar_labels[pick], batch_size=run.profile.batch_size, device="cpu"))
    if not isinstance(answer, int):
        return Verdict(False, f"Give one whole number of batches, not {type(answer).__name__}.")
    if answer == truth:
        return Verdict(True, "Your prediction matches the loader built above: images in the budget divided by "
                             "the batch size, the last, smaller batch included.")
    if answer == len(pick):
        return Verdict(False, "That is the number of images in the budget; a batch holds up to "
                              "run.profile.batch_size of them.")
    if answer == 50:
        return Verdict(False, "50 is the budget per class: the budget holds 50 images of every class.")
    if answer == len(pick) // run.profile.batch_size:
        return Verdict(False, "Close: every image appears once per epoch, so the last batch, smaller than the "
                              "others, counts too.")
    return Verdict(False, "Count the images in the budget (per class times classes), then how many batches "
                          "of run.profile.batch_size they fill, the last one possibly smaller.")


def _budget_batch(mnist_train: Any, k: int, seed: int, mode: str) -> torch.Tensor:
    images, labels = dataset_tensors(mnist_train)
    return grey_to_rgb32(images[per_class_subset(labels, k, seed=seed)], mode=mode)


@exercise("0.3", answer="budget_rgb", stars=2, kind="compute",
          mistake="mnist_images, mnist_labels = tl.dataset_tensors(datasets['mnist'][0])\n"
                  "budget_rgb = tl.grey_to_rgb32(mnist_images[tl.per_class_subset(mnist_labels, 3, seed=7)])")
def _budget_rgb(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    mnist_train = need(ns, "datasets")["mnist"][0]
    truth = _budget_batch(mnist_train, 3, 7, "resize")
    if not isinstance(answer, torch.Tensor):
        return Verdict(False, f"Expected a uint8 tensor of images, got {type(answer).__name__}.")
    if tuple(answer.shape[1:]) == (1, 28, 28):
        return Verdict(False, "These are still grey 28×28 digits: turn them into 3×32×32 images with "
                              "tl.grey_to_rgb32.")
    if len(answer) != len(truth):
        return Verdict(False, f"{len(answer)} images: a budget of 3 per class takes 3 of every digit class.")
    if answer.dtype != torch.uint8:
        return Verdict(False, f"dtype {answer.dtype}: keep the uint8 images that tl.dataset_tensors gives "
                              "(no conversion to float).")
    if tuple(answer.shape) == tuple(truth.shape) and torch.equal(answer, _budget_batch(mnist_train, 3, 7, "pad")):
        return Verdict(False, "These are padded (the default); the exercise asks for mode='resize'.")
    if tuple(answer.shape) == tuple(truth.shape) and torch.equal(answer, _budget_batch(mnist_train, 3, 0, "resize")):
        return Verdict(False, "The right kind of batch, but other digits: the seed decides which images are drawn, "
                              "and the exercise names its seed.")
    verdict = same(answer, truth, hint="Draw the budget with tl.per_class_subset(labels, 3, seed=7) on the training "
                                       "digits, index the uint8 images with it, then tl.grey_to_rgb32(..., "
                                       "mode='resize').")
    return Verdict(True, "Well done: 3 digits of every class, resized to 3×32×32.") if verdict.passed else verdict


@exercise("0.4", answer="budget_20", stars=2, kind="change",
          mistake="budget_20 = tl.per_class_subset(cifar_labels, 20, seed=run.seed + 1)")
def _budget_20(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    run, cifar_labels, budget = need(ns, "run", "cifar_labels", "budget")
    if not isinstance(answer, torch.Tensor) or answer.dtype != torch.int64 or answer.ndim != 1:
        return Verdict(False, "Give the indices that tl.per_class_subset returns (an int64 tensor).")
    per_class = torch.bincount(cifar_labels[answer], minlength=int(cifar_labels.max()) + 1).tolist()
    if len(set(per_class)) != 1:
        return Verdict(False, "The classes do not all have the same number of images: draw the budget with "
                              "tl.per_class_subset, as the cell under Label budgets does.")
    if per_class[0] != 20:
        return Verdict(False, f"{per_class[0]} image(s) of each class: k is the number per class, "
                              "so the budget of 20 per class has 20 of each.")
    if not torch.equal(answer, per_class_subset(cifar_labels, 20, seed=run.seed)):
        return Verdict(False, "20 per class, but not drawn with the seed of the cell under Label budgets "
                              "(run.seed): change the size only, so the two budgets can be compared.")
    kept = int(torch.isin(budget, answer).sum())
    other = per_class_subset(cifar_labels, 20, seed=run.seed + 1)
    kept_other = int(torch.isin(budget, other).sum())
    return Verdict(True, f"Measured: {len(answer)} images, {per_class[0]} of each class; they contain {kept} of "
                         f"the {len(budget)} images of the 10-per-class budget. Drawn with seed {run.seed + 1} "
                         f"instead, the 20-per-class budget would contain {kept_other} of them.")
