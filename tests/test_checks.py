"""The judges of chapters 1 and 2 and the comparisons: a right answer passes, each usual mistake gets its own hint."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import tlcourse as tl
from tlcourse.exercises.chapter01 import judge_freeze_head, judge_taxonomy, judge_transfer
from tlcourse.exercises.chapter02 import judge_binary_cross_entropy, judge_cross_entropy, judge_interpolation


# --- answers a learner might give ---

def ce_right(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    m = z.max(dim=1, keepdim=True).values  # (N, 1)
    log_p = z - m - (z - m).exp().sum(dim=1, keepdim=True).log()  # (N, C) log-softmax
    return -log_p.gather(1, y[:, None]).mean()


def ce_sum(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(z, y, reduction="sum")


def ce_raw_logits(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -z.gather(1, y[:, None]).mean()


def ce_softmax_no_log(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return -z.softmax(1).gather(1, y[:, None]).mean()


def ce_naive(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = z.exp() / z.exp().sum(1, keepdim=True)
    return -p.log().gather(1, y[:, None]).mean()


def bce_right(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return (z.clamp(min=0) - z * t + torch.log1p(torch.exp(-z.abs()))).mean()


def bce_naive(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(z)
    return -(t * p.log() + (1 - t) * (1 - p).log()).mean()


def lerp_right(a: dict, b: dict, lam: float) -> dict:
    return {k: lam * a[k] + (1 - lam) * b[k] for k in a}


def lerp_reversed(a: dict, b: dict, lam: float) -> dict:
    return {k: (1 - lam) * a[k] + lam * b[k] for k in a}


def _source() -> tl.LeNet:
    torch.manual_seed(0)
    return tl.LeNet()


# --- comparing values ---

def test_close_tolerates_rounding_only() -> None:
    x = torch.rand(5, 3)
    assert tl.close(x.softmax(1), x.exp() / x.exp().sum(1, keepdim=True), hint="h").passed
    assert tl.close(x.softmax(0), x.softmax(1), hint="over classes").message == "over classes"
    assert "Shape (5,)" in tl.close(x[:, 0], x, hint="h").message


def test_close_compares_complex_values_by_both_parts() -> None:
    z = torch.tensor([1 + 2j, 3 - 1j])
    assert tl.close(z.clone(), z, hint="h").passed
    assert tl.close(z.conj(), z, hint="look at the sign").message == "look at the sign"
    assert tl.close(z.real, z, hint="h").passed is False  # the imaginary part is not dropped
    assert tl.close(np.array([1 + 2j, 3 - 1j]), [1 + 2j, 3 - 1j + 1e-9], hint="h").passed
    assert tl.close(1 + 2j, 1.0, hint="h").passed is False
    assert tl.close(torch.tensor([1.0 + 0j]), [1.0], hint="h").passed


def test_same_compares_numpy_arrays_and_dicts_of_tensors() -> None:
    a = np.arange(6).reshape(2, 3)
    assert tl.same(a.copy(), a, hint="h").passed
    assert tl.same(a + 1, a, hint="count again").message == "count again"
    assert "Shape (3, 2)" in tl.same(a.T.copy(), a, hint="h").message
    assert "dtype float64" in tl.same(a.astype(float), a, hint="h").message
    assert "Expected a NumPy array, got list" in tl.same(a.tolist(), a, hint="h").message
    assert "Expected a list, got ndarray" in tl.same(np.array([1, 2]), [1, 2], hint="h").message
    assert "Expected a list, got Tensor" in tl.same(torch.tensor([1, 2]), [1, 2], hint="h").message
    sd = {"w": torch.ones(2, 2), "b": torch.zeros(2)}
    assert tl.same({k: v.clone() for k, v in sd.items()}, sd, hint="h").passed
    wrong = tl.same({"w": torch.ones(2, 2), "b": torch.ones(2)}, sd, hint="h")
    assert wrong.passed is False and wrong.message == "h"
    assert "Shape (3,) at ['b']" in tl.same({"w": sd["w"], "b": torch.zeros(3)}, sd, hint="h").message
    assert "missing: 'b'" in tl.same({"w": sd["w"]}, sd, hint="h").message
    assert tl.same([torch.ones(2), 3], [torch.ones(2), 3], hint="h").passed


# --- cross-entropy ---

def test_cross_entropy_right_answers_pass() -> None:
    assert judge_cross_entropy(ce_right).passed
    assert judge_cross_entropy(lambda z, y: F.nll_loss(F.log_softmax(z, 1), y)).passed


@pytest.mark.parametrize("fn, hint", [
    (ce_sum, "sum over the batch"),
    (lambda z, y: F.cross_entropy(z, y, reduction="none"), "one loss per example"),
    (ce_raw_logits, "raw logits"),
    (ce_softmax_no_log, "probabilities where their logarithm belongs"),
    (lambda z, y: -ce_right(z, y), "sign"),
    (lambda z, y: -(z.log_softmax(0).gather(1, y[:, None])).mean(), "wrong axis"),
    (lambda z, y: F.binary_cross_entropy_with_logits(z, F.one_hot(y, z.shape[1]).float()), "one-vs-rest"),
    (lambda z, y: -z.log_softmax(1).mean(), "only the true class"),
    (ce_naive, "overflows"),
    (lambda z, y: 1 / 0, "raised ZeroDivisionError"),
    (lambda z, y: z.sub_(1).sum(), "in place"),
    (lambda z, y: [1.0], "not list"),
    (42, "Expected a function"),
])
def test_cross_entropy_mistakes_get_specific_hints(fn, hint: str) -> None:
    result = judge_cross_entropy(fn)
    assert result.passed is False
    assert hint in result.message


def test_cross_entropy_hints_never_show_code() -> None:
    for fn in (ce_sum, ce_raw_logits, ce_softmax_no_log, ce_naive):
        message = judge_cross_entropy(fn).message
        assert "log_softmax(" not in message and "gather" not in message and "def " not in message


# --- binary cross-entropy ---

def test_binary_cross_entropy_right_answers_pass() -> None:
    assert judge_binary_cross_entropy(bce_right).passed
    assert judge_binary_cross_entropy(F.binary_cross_entropy_with_logits).passed


@pytest.mark.parametrize("fn, hint", [
    (bce_naive, "logits of ±100"),
    (lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="sum"), "That is the sum"),
    (lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="none"), "one loss per element"),
    (lambda z, t: -bce_right(z, t), "sign"),
    (lambda z, t: -(t * z.log() + (1 - t) * (1 - z).log()).mean(), "pass them through the sigmoid"),
    (lambda z, t: F.binary_cross_entropy_with_logits(z, t, reduction="sum") / z.shape[0], "examples only"),
    (lambda z, t: -(t * torch.sigmoid(z).log()).mean(), "Both terms count"),
])
def test_binary_cross_entropy_mistakes_get_specific_hints(fn, hint: str) -> None:
    result = judge_binary_cross_entropy(fn)
    assert result.passed is False
    assert hint in result.message


def test_softmax_in_a_multi_label_loss_is_named() -> None:
    def softmax_bce(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if z.ndim == 1:
            return bce_right(z, t)
        return -(t * z.log_softmax(1)).sum(1).mean()
    assert "use the sigmoid" in judge_binary_cross_entropy(softmax_bce).message


# --- interpolation ---

def test_interpolation_right_answers_pass() -> None:
    assert judge_interpolation(lerp_right).passed
    assert judge_interpolation(tl.interpolate_state_dicts).passed
    assert judge_interpolation(lambda a, b, lam: {k: torch.lerp(b[k], a[k], lam) for k in a}).passed


def _in_place(a: dict, b: dict, lam: float) -> dict:
    for k in a:
        a[k].mul_(lam).add_((1 - lam) * b[k])
    return a


def _partial(a: dict, b: dict, lam: float) -> dict:
    return {k: (lam * a[k] + (1 - lam) * b[k]) if k.endswith("weight") else b[k] for k in a}


def _no_return(a: dict, b: dict, lam: float) -> None:
    {k: lam * a[k] + (1 - lam) * b[k] for k in a}


@pytest.mark.parametrize("fn, hint", [
    (lerp_reversed, "λ is reversed"),
    (lambda a, b, lam: {k: (a[k] + b[k]) / 2 for k in a}, "ignores λ"),
    (_in_place, "in place"),
    (_no_return, "returned None"),
    (lambda a, b, lam: [lam * a[k] + (1 - lam) * b[k] for k in a], "not list"),
    (lambda a, b, lam: {k: lam * a[k] + (1 - lam) * b[k] for k in a if "bias" not in k}, "missing: conv.bias"),
    (_partial, "Some tensors are blended right"),
    (lambda a, b, lam: {k: lam * a[k] + lam * b[k] for k in a}, "is not λ·sd_a + (1 − λ)·sd_b"),
])
def test_interpolation_mistakes_get_specific_hints(fn, hint: str) -> None:
    result = judge_interpolation(fn)
    assert result.passed is False
    assert hint in result.message


# --- copying weights and freezing ---

def test_transfer_right_answers_pass() -> None:
    source = _source()
    target = tl.LeNet()
    tl.transfer_weights(source, target, skip="fc2")
    assert judge_transfer(target, source).passed
    by_hand = tl.LeNet()
    by_hand.load_state_dict({k: v for k, v in source.state_dict().items() if not k.startswith("fc2.")}, strict=False)
    assert judge_transfer(by_hand, source).passed


def test_transfer_mistakes_get_specific_hints() -> None:
    source = _source()
    assert "source network itself" in judge_transfer(source, source).message
    assert "head (fc2) was copied too" in judge_transfer(copy.deepcopy(source), source).message
    assert "nothing was copied" in judge_transfer(tl.LeNet(), source).message
    partial = tl.LeNet()
    tl.transfer_weights(source, partial, skip=["fc1", "fc2"])
    assert "fc1.weight" in judge_transfer(partial, source).message
    shared = tl.LeNet()
    shared.load_state_dict(source.state_dict(), assign=True)
    assert "share memory" in judge_transfer(shared, source).message
    assert "other tensors" in judge_transfer(tl.LeNet(in_channels=3, image_size=32), source).message
    assert "nn.Module" in judge_transfer("model", source).message


def test_freeze_head_right_answers_pass() -> None:
    model = tl.LeNet()
    tl.freeze_all_but(model, "fc2")
    assert judge_freeze_head(model).passed
    by_hand = tl.LeNet()
    for name, p in by_hand.named_parameters():
        p.requires_grad_(name.startswith("fc2."))
    result = judge_freeze_head(by_hand)
    assert result.passed and "510 of 21,840" in result.message


def test_freeze_head_mistakes_get_specific_hints() -> None:
    everything = tl.LeNet()
    tl.freeze(everything)
    assert "head too" in judge_freeze_head(everything).message
    head_only = tl.LeNet()
    tl.freeze(head_only, "fc2")
    assert "The head is frozen" in judge_freeze_head(head_only).message
    assert "Nothing is frozen" in judge_freeze_head(tl.LeNet()).message
    convs_only = tl.LeNet()
    tl.freeze(convs_only, ["conv1", "conv2"])
    message = judge_freeze_head(convs_only).message
    assert "Part of the body still trains" in message and "fc1.weight" in message
    assert "top-level modules are: conv1" in judge_freeze_head(tl.LeNet(), head="classifier").message


# --- taxonomy quiz ---

RIGHT = {"a": "inductive", "b": "transductive", "c": "unsupervised", "d": "inductive"}


def test_taxonomy_right_answer_passes_in_any_case() -> None:
    assert judge_taxonomy(RIGHT).passed
    assert judge_taxonomy({k: f" {v.upper()} " for k, v in RIGHT.items()}).passed


def test_taxonomy_mistakes_get_hints_without_the_answer() -> None:
    result = judge_taxonomy({**RIGHT, "b": "inductive"})
    assert result.passed is False and "3 of 4 right" in result.message and "(b)" in result.message
    assert "transductive" not in result.message.split("(b)")[1]
    assert "missing" in judge_taxonomy({"a": "inductive"}).message
    assert "is not one" in judge_taxonomy({**RIGHT, "c": "sideways"}).message
