"""Multi-task learning: one shared backbone, one linear head per task, one weighted sum of losses.

``MultiHead(backbone, feature_dim, classes_per_task)`` returns every task's logits side by
side, ``(B, C_1 + C_2 + …)``, so it trains with the course's one loop (``tl.fine_tune`` /
``tl.train_one_epoch``) like any classifier; only the loss knows there are several tasks.
``multitask_loss_fn`` gives that loss: the weighted sum of each task's cross-entropy,

    L = Σ_t w_t · CE(logits_t, y_t),

with labels ``y`` of shape ``(B, tasks)``. A label of ``-1`` means "this example has no label
for that task" (digits have no clothing class): it adds nothing to that task's loss, so one
batch can mix examples of different datasets. ``task_accuracies`` scores each task on the
examples that have its label. (``train_one_epoch`` reports NaN as the accuracy of such runs:
with several labels per example there is no one accuracy.)

The course's backbone is LeNet's feature extractor (``Backbone``: ``conv1``, ``conv2``, ``fc1`` to
``hidden`` features; ``lenet_heads`` puts heads on it); ``joint_hidden`` is the width at which
one backbone with every task's head has as many parameters as one network per task.

Example:
    >>> import torch, tlcourse as tl
    >>> net = tl.MultiHead(torch.nn.Flatten(), feature_dim=4, classes_per_task=(3, 2))
    >>> net(torch.zeros(5, 2, 2)).shape
    torch.Size([5, 5])
    >>> loss = tl.multitask_loss_fn((3, 2), weights=(1.0, 0.5))
    >>> round(float(loss(torch.zeros(2, 5), torch.tensor([[0, -1], [2, 1]]))), 4)  # ln 3 + 0.5 ln 2
    1.4452
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .distillation import NO_LABEL, parameter_count  # -1: no label of that task; the number of parameters

__all__ = ["MultiHead", "task_logits", "multitask_loss_fn", "task_accuracies", "Backbone", "lenet_heads",
           "joint_hidden"]


def _check_classes(classes_per_task: Sequence[int]) -> tuple[int, ...]:
    """``classes_per_task`` as a tuple, after checking each task has at least 2 classes."""
    sizes = tuple(int(c) for c in classes_per_task)
    if not sizes or any(c < 2 for c in sizes):
        raise ValueError(f"classes_per_task lists each task's number of classes, each at least 2, e.g. (10, 3); "
                         f"got {tuple(classes_per_task)}")
    return sizes


class MultiHead(nn.Module):
    """A shared ``backbone`` and one ``nn.Linear(feature_dim, C_t)`` head per task (``heads.0``, ``heads.1``, …).

    Args:
        backbone: maps a batch to features ``(B, feature_dim)``.
        feature_dim: the size of those features.
        classes_per_task: each task's number of classes, in order.

    Example:
        >>> net = MultiHead(nn.Linear(3, 8), feature_dim=8, classes_per_task=(10, 3))
        >>> [name for name, _ in net.named_children()], net(torch.zeros(2, 3)).shape
        (['backbone', 'heads'], torch.Size([2, 13]))
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, classes_per_task: Sequence[int]) -> None:
        super().__init__()
        self.classes_per_task = _check_classes(classes_per_task)
        self.backbone = backbone
        self.heads = nn.ModuleList(nn.Linear(feature_dim, c) for c in self.classes_per_task)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)  # (B, feature_dim)
        return torch.cat([head(features) for head in self.heads], dim=1)  # (B, C_1 + C_2 + …)


def task_logits(logits: torch.Tensor, classes_per_task: Sequence[int]) -> tuple[torch.Tensor, ...]:
    """Split ``(B, C_1 + C_2 + …)`` logits into each task's ``(B, C_t)``.

    Example:
        >>> [t.shape[1] for t in task_logits(torch.zeros(4, 13), (10, 3))]
        [10, 3]
    """
    sizes = _check_classes(classes_per_task)
    if logits.dim() != 2 or logits.shape[1] != sum(sizes):
        raise ValueError(f"logits of {len(sizes)} tasks with {sizes} classes are (B, {sum(sizes)}); "
                         f"got {tuple(logits.shape)}")
    return torch.split(logits, sizes, dim=1)


def multitask_loss_fn(classes_per_task: Sequence[int], weights: Sequence[float] | None = None
                      ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss_fn(logits, y)``: the weighted sum of the tasks' cross-entropies, for ``tl.fine_tune``.

    Each task's term is the mean cross-entropy over the batch's examples that carry its label
    (``y[:, t] != -1``); a task with no label in the batch adds 0.

    Args:
        classes_per_task: each task's number of classes, as the model's heads.
        weights: ``w_t`` per task (default 1 each); 0 switches a task off.

    Example:
        >>> y = torch.tensor([[1, -1], [-1, 0]])  # the first example has task 0's label only
        >>> logits = torch.randn(2, 5)
        >>> by_hand = F.cross_entropy(logits[:1, :3], y[:1, 0]) + 2 * F.cross_entropy(logits[1:, 3:], y[1:, 1])
        >>> torch.allclose(multitask_loss_fn((3, 2), weights=(1, 2))(logits, y), by_hand)
        True
    """
    sizes = _check_classes(classes_per_task)
    w = tuple(float(v) for v in (weights if weights is not None else [1.0] * len(sizes)))
    if len(w) != len(sizes) or any(v < 0 for v in w):
        raise ValueError(f"weights gives one non-negative weight per task ({len(sizes)} tasks); got {weights}")

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2 or y.shape[1] != len(sizes):
            raise ValueError(f"multi-task labels are (B, {len(sizes)}), one column per task (-1: no label); "
                             f"got {tuple(y.shape)}")
        total = logits.new_zeros((), dtype=torch.float32)
        for t, (scores, weight) in enumerate(zip(task_logits(logits, sizes), w)):
            labels = y[:, t]
            has = labels != NO_LABEL  # (B,)
            summed = F.cross_entropy(scores.float(), labels.clamp(min=0), reduction="none")[has].sum()
            total = total + weight * summed / has.sum().clamp(min=1)  # the mean over labelled examples
        return total

    return loss_fn


def task_accuracies(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                    classes_per_task: Sequence[int], *, device: torch.device | str) -> list[float]:
    """Each task's accuracy on the examples of ``batches`` that carry its label (NaN for a task none carry).

    Args:
        model: a ``MultiHead`` (or any network whose logits are the tasks' side by side).
        batches: ``(x, y)`` with ``y`` of shape ``(B, tasks)``, e.g. a ``tl.DeviceLoader`` with ``shuffle=False``.
        classes_per_task: as the model's heads.
        device: where the model lives.

    Example:
        >>> net = MultiHead(nn.Identity(), feature_dim=2, classes_per_task=(2, 2))
        >>> with torch.no_grad():
        ...     _ = [h.weight.copy_(torch.eye(2)) for h in net.heads]; _ = [h.bias.zero_() for h in net.heads]
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # the argmax of both heads: 0, then 1
        >>> task_accuracies(net, [(x, torch.tensor([[0, 1], [1, -1]]))], (2, 2), device="cpu")  # task 1: 1 label
        [1.0, 0.0]
    """
    sizes = _check_classes(classes_per_task)
    device = torch.device(device)
    right = torch.zeros(len(sizes), dtype=torch.long)
    seen = torch.zeros(len(sizes), dtype=torch.long)
    model.eval()
    with torch.inference_mode():
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            for t, scores in enumerate(task_logits(model(x), sizes)):
                has = y[:, t] != NO_LABEL
                right[t] += int((scores.argmax(dim=1)[has] == y[has, t]).sum())
                seen[t] += int(has.sum())
    return [int(r) / int(n) if n else float("nan") for r, n in zip(right, seen)]


class Backbone(nn.Module):
    """LeNet's feature extractor for 1x28x28 images: ``conv1``, ``conv2`` as ``tl.LeNet``'s, then ``fc1`` to ``hidden``.

    The layer names are LeNet's, so ``tl.transfer_weights`` moves weights between the two.

    Example:
        >>> Backbone(112)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 112])
    """

    def __init__(self, hidden: int = 50) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv1 = nn.Conv2d(1, 10, kernel_size=5)
        self.conv2 = nn.Conv2d(10, 20, kernel_size=5)
        self.fc1 = nn.Linear(320, hidden)  # 20 channels × 4 × 4 after two conv + pool blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 10, 12, 12)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 20, 4, 4)
        return F.relu(self.fc1(x.flatten(1)))  # (B, hidden)


def lenet_heads(hidden: int, classes_per_task: Sequence[int]) -> MultiHead:
    """``MultiHead(Backbone(hidden), hidden, classes_per_task)``; with one task, ``tl.LeNet`` with ``hidden`` features.

    Example:
        >>> parameter_count(lenet_heads(50, (10,))) == parameter_count(tl.LeNet())
        True
    """
    return MultiHead(Backbone(hidden), hidden, classes_per_task)


def joint_hidden(single_hidden: int, classes_per_task: Sequence[int]) -> int:
    """The widest backbone whose one network with every task's head has no more parameters than one network per task.

    Args:
        single_hidden: the features of each single-task network.
        classes_per_task: each task's number of classes.

    Example:
        >>> joint_hidden(50, (10, 3))
        113
    """
    budget = sum(parameter_count(lenet_heads(single_hidden, (c,))) for c in classes_per_task)
    base, per_feature = parameter_count(lenet_heads(1, classes_per_task)), 321 + sum(classes_per_task)
    return 1 + (budget - base) // per_feature  # parameters grow by fc1's 320 + 1 and a weight per head class
