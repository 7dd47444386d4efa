"""Knowledge distillation: a small student learns from a big teacher's temperature-softened outputs.

Hinton et al.'s loss mixes two terms. The first makes the student's softened distribution
``softmax(z_s / T)`` match the teacher's ``softmax(z_t / T)``: a high temperature ``T`` lifts
the small probabilities the teacher gives to the wrong classes ("a shirt looks a little like
a pullover"), which a one-hot label does not hold. The second is the ordinary cross-entropy
with the true labels, where there are any::

    loss = alpha * T² * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(z_s, y)

The ``T²`` keeps the first term's gradients the same size whatever ``T`` is (they shrink as
``1 / T²``). A label ``NO_LABEL`` (-1) marks an example without one: the cross-entropy averages
over the labelled examples only, and is 0 for a batch with none.

``soft_targets`` runs the teacher once and packs ``label, logits`` into one ``(N, 1 + C)``
tensor, the ``y`` of a ``tl.TensorBatches``; ``distillation_loss_fn`` unpacks it for
``tl.fine_tune`` / ``tl.train_one_epoch``.

Example:
    >>> import torch, tlcourse as tl
    >>> z = torch.tensor([[2.0, 0.0, -1.0]])
    >>> float(tl.distillation_loss(z, z, torch.tensor([tl.NO_LABEL]), temperature=2.0, alpha=0.5))  # same outputs
    0.0
    >>> tl.parameter_count(tl.LeNet())
    21840
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NO_LABEL", "distillation_loss", "distillation_loss_fn", "soft_targets", "parameter_count"]

NO_LABEL = -1  # the label of an example that has none: only the teacher's outputs teach it


def _check_mix(temperature: float, alpha: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be positive (1 = the teacher's own probabilities); got {temperature}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha is the teacher term's weight, between 0 and 1; got {alpha}")


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al.'s loss: ``alpha · T² · KL(teacher_T || student_T) + (1 - alpha) · CE(student, labels)``.

    The KL divergence is averaged over all ``N`` examples (``batchmean``); the cross-entropy
    over those whose label is not ``NO_LABEL`` (0 when none is labelled).

    Args:
        student_logits: ``(N, C)``, with gradients.
        teacher_logits: ``(N, C)``, the teacher's outputs (no gradient flows into them).
        labels: int ``(N,)``, a class or ``NO_LABEL``.
        temperature: ``T > 0``; both sets of logits are divided by it.
        alpha: the teacher term's weight in ``[0, 1]``; ``1 - alpha`` weighs the labels.

    Raises:
        ValueError: shapes that do not match, a temperature that is not positive, an alpha outside [0, 1].

    Example:
        >>> s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, -1.0]])
        >>> round(float(distillation_loss(s, t, torch.tensor([0]), temperature=1.0, alpha=0.0)), 4)  # CE only: ln 2
        0.6931
    """
    _check_mix(temperature, alpha)
    if student_logits.dim() != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits must both be (N, C); got {tuple(student_logits.shape)} and "
                         f"{tuple(teacher_logits.shape)}")
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(f"labels must be (N,) = ({len(student_logits)},), one per example (NO_LABEL = {NO_LABEL} "
                         f"for none); got {tuple(labels.shape)}")
    s, t = student_logits.float(), teacher_logits.detach().float()  # autocast's bfloat16 is too coarse for a KL
    soft = F.kl_div(F.log_softmax(s / temperature, dim=1), F.log_softmax(t / temperature, dim=1),
                    reduction="batchmean", log_target=True) * temperature**2
    labels = labels.long()
    # summed over the labelled rows, divided by their number: no host sync, and 0 when none is labelled
    hard = F.cross_entropy(s, labels, ignore_index=NO_LABEL, reduction="sum") / (labels != NO_LABEL).sum().clamp(min=1)
    return alpha * soft + (1 - alpha) * hard


def distillation_loss_fn(*, temperature: float, alpha: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A ``loss_fn(logits, y)`` for ``tl.fine_tune``; ``y`` is ``(B, 1 + C)``: the label, then the teacher's logits.

    Example:
        >>> loss = distillation_loss_fn(temperature=4.0, alpha=0.9)
        >>> y = torch.tensor([[NO_LABEL, 1.0, 0.0]])  # unlabelled; the teacher's logits (1, 0)
        >>> float(loss(torch.tensor([[1.0, 0.0]]), y))
        0.0
    """
    _check_mix(temperature, alpha)

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.dim() != 2 or y.shape[1] != logits.shape[1] + 1:
            raise ValueError(f"y must be (B, 1 + C) = (B, {logits.shape[1] + 1}): each row a label (or NO_LABEL), "
                             f"then the teacher's {logits.shape[1]} logits, as tl.soft_targets makes it; got "
                             f"{tuple(y.shape)}")
        return distillation_loss(logits, y[:, 1:], y[:, 0].long(), temperature=temperature, alpha=alpha)

    return loss_fn


def soft_targets(teacher: nn.Module, x: torch.Tensor, *, labels: torch.Tensor | None = None,
                 device: torch.device | str = "cpu", batch_size: int = 512) -> torch.Tensor:
    """The teacher's logits for ``x``, after a label column: float32 ``(N, 1 + C)`` on the CPU.

    The teacher runs once, in eval mode and without gradients; its outputs are kept, so the
    students that learn from them never run it again.

    Args:
        teacher: the trained network, on ``device``.
        x: ``(N, ...)`` inputs as the teacher takes them.
        labels: int ``(N,)`` true labels for column 0; default ``NO_LABEL`` for every row.
        device: where the teacher runs.
        batch_size: inputs per forward pass.

    Example:
        >>> soft_targets(nn.Linear(4, 3), torch.zeros(5, 4)).shape
        torch.Size([5, 4])
    """
    if len(x) == 0:
        raise ValueError("x holds no examples")
    if labels is not None and labels.shape != (len(x),):
        raise ValueError(f"labels must be ({len(x)},), one per input; got {tuple(labels.shape)}")
    was_training = teacher.training
    teacher.eval()
    with torch.inference_mode():
        logits = torch.cat([teacher(x[i:i + batch_size].to(device)).float().cpu()
                            for i in range(0, len(x), batch_size)])  # (N, C)
    teacher.train(was_training)
    column = torch.full((len(x), 1), float(NO_LABEL)) if labels is None else labels.float().view(-1, 1).cpu()
    return torch.cat([column, logits], dim=1)  # (N, 1 + C)


def parameter_count(model: nn.Module) -> int:
    """How many numbers the model's parameters hold (trainable or not; buffers such as BatchNorm's statistics not).

    Example:
        >>> parameter_count(nn.Linear(3, 2))  # 3 × 2 weights + 2 biases
        8
    """
    return sum(p.numel() for p in model.parameters())
