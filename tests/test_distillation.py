"""The distillation loss against hand-computed values and F.kl_div, its targets, parameter counts, inference timing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tlcourse as tl
import tlcourse.inference_time as inference_time

LN3 = math.log(3)


def test_a_two_example_toy_by_hand() -> None:
    # example 0: student (0, 0) -> (1/2, 1/2); teacher (ln 3, 0) -> (3/4, 1/4); no label
    # example 1: student = teacher = (ln 3, 0) -> (3/4, 1/4): KL 0; label 0: CE = -ln(3/4)
    student = torch.tensor([[0.0, 0.0], [LN3, 0.0]])
    teacher = torch.tensor([[LN3, 0.0], [LN3, 0.0]])
    labels = torch.tensor([tl.NO_LABEL, 0])
    kl_0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    expected = 0.5 * kl_0 / 2 + 0.5 * -math.log(0.75)  # batchmean over 2 rows; CE over the 1 labelled row
    got = tl.distillation_loss(student, teacher, labels, temperature=1.0, alpha=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_the_teacher_term_is_t_squared_times_torchs_kl_div_of_the_softened_outputs() -> None:
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    none = torch.full((5,), tl.NO_LABEL)
    for temperature in (1.0, 2.0, 4.0):
        reference = F.kl_div(F.log_softmax(s / temperature, 1), F.softmax(t / temperature, 1), reduction="batchmean")
        got = tl.distillation_loss(s, t, none, temperature=temperature, alpha=1.0)
        torch.testing.assert_close(got, reference * temperature**2)


def test_t_squared_by_hand_at_temperature_two() -> None:
    s, t = torch.tensor([[0.0, 0.0]]), torch.tensor([[2 * LN3, 0.0]])  # t / 2 = (ln 3, 0) -> (3/4, 1/4)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = tl.distillation_loss(s, t, torch.tensor([tl.NO_LABEL]), temperature=2.0, alpha=1.0)
    assert got.item() == pytest.approx(4 * kl, rel=1e-6)


def test_alpha_zero_is_the_cross_entropy_of_the_labelled_rows_only() -> None:
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)
    labels = torch.tensor([2, tl.NO_LABEL, 0, tl.NO_LABEL, 1, 1])
    got = tl.distillation_loss(s, t, labels, temperature=3.0, alpha=0.0)
    keep = labels != tl.NO_LABEL
    torch.testing.assert_close(got, F.cross_entropy(s[keep], labels[keep]))
    s2 = s.clone()
    s2[1] += 5.0  # an unlabelled row's logits do not enter the label term
    torch.testing.assert_close(tl.distillation_loss(s2, t, labels, temperature=3.0, alpha=0.0), got)


def test_with_no_label_in_the_batch_the_label_term_is_zero() -> None:
    s = torch.randn(3, 4, requires_grad=True)
    none = torch.full((3,), tl.NO_LABEL)
    loss = tl.distillation_loss(s, s.detach(), none, temperature=2.0, alpha=0.3)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()  # no NaN from an average over zero rows
    assert torch.isfinite(s.grad).all()


def test_identical_outputs_and_all_alpha_on_the_teacher_give_zero() -> None:
    z = torch.randn(4, 10)
    assert tl.distillation_loss(z, z, torch.arange(4), temperature=5.0, alpha=1.0).item() == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("kwargs, words", [
    ({"temperature": 0.0, "alpha": 0.5}, "temperature must be positive"),
    ({"temperature": 2.0, "alpha": 1.5}, "alpha is the teacher term's weight"),
])
def test_a_bad_temperature_or_alpha_says_what_is_allowed(kwargs: dict, words: str) -> None:
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=words):
        tl.distillation_loss(z, z, torch.zeros(2, dtype=torch.long), **kwargs)
    with pytest.raises(ValueError, match=words):
        tl.distillation_loss_fn(**kwargs)


def test_shapes_that_do_not_match_are_refused() -> None:
    with pytest.raises(ValueError, match=r"both be \(N, C\)"):
        tl.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, dtype=torch.long),
                             temperature=1.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        tl.distillation_loss(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, dtype=torch.long),
                             temperature=1.0, alpha=0.5)
    with pytest.raises(ValueError, match=r"y must be \(B, 1 \+ C\) = \(B, 4\)"):
        tl.distillation_loss_fn(temperature=1.0, alpha=0.5)(torch.zeros(2, 3), torch.zeros(2))


def test_the_loss_fn_splits_label_and_teacher_logits() -> None:
    g = torch.Generator().manual_seed(2)
    s, t = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    labels = torch.tensor([0, tl.NO_LABEL, 2, 1])
    y = torch.cat([labels.float().view(-1, 1), t], dim=1)  # (4, 1 + 3)
    loss_fn = tl.distillation_loss_fn(temperature=2.0, alpha=0.7)
    torch.testing.assert_close(loss_fn(s, y), tl.distillation_loss(s, t, labels, temperature=2.0, alpha=0.7))


def test_soft_targets_are_the_teachers_logits_after_a_label_column() -> None:
    torch.manual_seed(0)
    teacher = nn.Linear(4, 3).train()
    x = torch.randn(5, 4)
    out = tl.soft_targets(teacher, x, batch_size=2)  # three passes: 2 + 2 + 1
    assert out.shape == (5, 4) and out.dtype == torch.float32
    assert (out[:, 0] == tl.NO_LABEL).all()
    torch.testing.assert_close(out[:, 1:], teacher(x).detach())
    assert teacher.training  # its mode is put back
    labelled = tl.soft_targets(teacher, x, labels=torch.tensor([0, 1, 2, 0, 1]))
    assert labelled[:, 0].tolist() == [0, 1, 2, 0, 1]
    with pytest.raises(ValueError, match=r"labels must be \(5,\)"):
        tl.soft_targets(teacher, x, labels=torch.zeros(4, dtype=torch.long))


def test_train_one_epoch_takes_distillation_targets_and_reports_no_accuracy() -> None:
    torch.manual_seed(0)
    model = tl.LeNet(num_classes=3)
    x = torch.rand(6, 1, 28, 28)
    y = tl.soft_targets(tl.LeNet(num_classes=3), x, labels=torch.tensor([0, 1, 2, -1, -1, -1]))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    out = tl.train_one_epoch(model, [(x, y)], opt, torch.device("cpu"),
                             loss_fn=tl.distillation_loss_fn(temperature=2.0, alpha=0.5), progress=False)
    assert math.isfinite(out["loss"]) and math.isnan(out["accuracy"])


def test_parameter_counts_by_hand() -> None:
    # conv1 1·10·25 + 10, conv2 10·20·25 + 20, fc1 320·50 + 50, fc2 50·10 + 10
    assert tl.parameter_count(tl.LeNet()) == 260 + 5020 + 16050 + 510
    # conv1 1·32·25 + 32, conv2 32·64·25 + 64, fc1 1024·256 + 256, fc2 256·10 + 10
    assert tl.parameter_count(tl.WideCNN()) == 832 + 51264 + 262400 + 2570
    bn = tl.LeNetBN()
    assert tl.parameter_count(bn) == tl.parameter_count(tl.LeNet()) + 2 * (10 + 20)  # γ and β, not the statistics


class Counter(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls, self.modes = 0, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.modes.append((self.training, torch.is_inference_mode_enabled()))
        return x


def test_inference_ms_is_the_median_pass_per_image_and_warmup_is_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = iter([0.0, 1.0, 10.0, 13.0, 20.0, 22.0])  # passes of 1 s, 3 s and 2 s
    read = []
    monkeypatch.setattr(inference_time, "_clock", lambda: read.append(1) or next(ticks))
    model = Counter().train()
    ms = tl.inference_ms(model, torch.zeros(4, 2), device="cpu", repeats=3, warmup=2)
    assert ms == 1000 * 2.0 / 4  # the median, 2 s, over 4 images, in ms
    assert model.calls == 5 and len(read) == 6  # 2 untimed passes, then 3 timed ones (two clock reads each)
    assert model.modes == [(False, True)] * 5  # eval mode, under inference_mode
    assert model.training  # put back


def test_inference_ms_refuses_what_it_cannot_measure() -> None:
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        tl.inference_ms(Counter(), torch.zeros(1, 2), device="cpu", repeats=0)
    with pytest.raises(ValueError, match="warmup must be 0 or more"):
        tl.inference_ms(Counter(), torch.zeros(1, 2), device="cpu", warmup=-1)
    with pytest.raises(ValueError, match="no images"):
        tl.inference_ms(Counter(), torch.zeros(0, 2), device="cpu")
