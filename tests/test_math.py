"""Chapter 2's mathematics against PyTorch: cross-entropy by hand, its binary form, weight interpolation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tlcourse as tl


def cross_entropy_by_hand(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−(1/N) Σ_i log softmax(z_i)[y_i], with the log-sum-exp written out."""
    m = logits.max(dim=1, keepdim=True).values  # (N, 1) largest logit per row
    log_probs = logits - m - (logits - m).exp().sum(dim=1, keepdim=True).log()  # (N, C)
    return -log_probs[torch.arange(len(targets)), targets].mean()


def cross_entropy_one_hot(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−(1/N) Σ_i Σ_k y_ik log p_ik with one-hot y: the textbook form."""
    onehot = F.one_hot(targets, logits.shape[1]).to(logits.dtype)  # (N, C)
    return -(onehot * torch.log(torch.softmax(logits, dim=1))).sum(dim=1).mean()


def bce_by_hand(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """−mean[t log p + (1 − t) log(1 − p)] on probabilities."""
    return -(t * p.log() + (1 - t) * (1 - p).log()).mean()


def bce_logits_by_hand(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The same on logits, stable: log σ(z) = −softplus(−z), log(1 − σ(z)) = −softplus(z)."""
    return (t * F.softplus(-z) + (1 - t) * F.softplus(z)).mean()


SHAPES = [(1, 2), (4, 3), (16, 10), (128, 10), (7, 100)]


@pytest.mark.parametrize("n, c", SHAPES)
def test_hand_written_cross_entropy_equals_pytorch(n: int, c: int) -> None:
    g = torch.Generator().manual_seed(n * 1000 + c)
    z = 3 * torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    ref = F.cross_entropy(z, y)
    torch.testing.assert_close(cross_entropy_by_hand(z, y), ref)
    torch.testing.assert_close(cross_entropy_one_hot(z, y), ref)
    torch.testing.assert_close(F.nll_loss(F.log_softmax(z, dim=1), y), ref)
    torch.testing.assert_close(F.cross_entropy(z, y, reduction="sum"), n * ref)  # the document's Σ is N × the mean


def test_the_log_sum_exp_form_survives_large_logits_where_the_textbook_form_does_not() -> None:
    z = torch.tensor([[1000.0, 0.0, -1000.0], [5.0, 900.0, 3.0]])
    y = torch.tensor([2, 0])
    ref = F.cross_entropy(z, y)
    assert torch.isfinite(ref) and torch.allclose(cross_entropy_by_hand(z, y), ref)
    assert not torch.isfinite(cross_entropy_one_hot(z, y))  # softmax underflows to 0, log(0) = −inf
    naive = -torch.log(z.exp() / z.exp().sum(1, keepdim=True))[torch.arange(2), y].mean()
    assert not torch.isfinite(naive)  # exp(1000) = inf: inf / inf = nan, 1 / inf = 0 and log(0) = −inf


@pytest.mark.parametrize("shape", [(8,), (32,), (6, 4), (5, 10)])
def test_binary_cross_entropy_by_hand_equals_pytorch(shape: tuple[int, ...]) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    z = 2 * torch.randn(shape, generator=g, dtype=torch.float64)
    t = (torch.rand(shape, generator=g) < 0.5).double()
    p = torch.sigmoid(z)
    torch.testing.assert_close(bce_by_hand(p, t), F.binary_cross_entropy(p, t))
    torch.testing.assert_close(bce_logits_by_hand(z, t), F.binary_cross_entropy_with_logits(z, t))
    torch.testing.assert_close(F.binary_cross_entropy(p, t), F.binary_cross_entropy_with_logits(z, t))


def test_stable_binary_cross_entropy_survives_logits_of_100() -> None:
    z, t = torch.tensor([100.0, -100.0, 50.0]), torch.tensor([0.0, 1.0, 1.0])
    ref = F.binary_cross_entropy_with_logits(z, t)
    torch.testing.assert_close(bce_logits_by_hand(z, t), ref)
    assert not torch.isfinite(bce_by_hand(torch.sigmoid(z), t))  # σ(100) == 1.0 exactly in float32


def test_two_class_softmax_cross_entropy_is_binary_cross_entropy_of_the_logit_difference() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(50, 2, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (50,), generator=g)
    torch.testing.assert_close(F.cross_entropy(z, y), F.binary_cross_entropy_with_logits(z[:, 1] - z[:, 0], y.double()))


@pytest.mark.parametrize("seed", range(5))
def test_one_vs_rest_binary_cross_entropy_is_a_different_loss(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    z = 2 * torch.randn(32, 10, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (32,), generator=g)
    onehot = F.one_hot(y, 10).double()
    ovr_sum = F.binary_cross_entropy_with_logits(z, onehot, reduction="sum") / 32  # Σ over classes, mean over N
    ce = F.cross_entropy(z, y)
    assert not torch.isclose(ovr_sum, ce, rtol=1e-3)
    assert not torch.isclose(F.binary_cross_entropy_with_logits(z, onehot), ce, rtol=1e-3)  # PyTorch's mean over N·K
    assert not torch.allclose(torch.sigmoid(z).sum(1), torch.ones(32, dtype=torch.float64))  # no distribution


def test_the_documents_formula_with_integer_labels_rewards_a_wrong_answer_for_label_0() -> None:
    p = torch.tensor([0.2, 0.5, 0.8], requires_grad=True)  # probability given to the true class
    y = torch.tensor([0.0, 0.0, 0.0])
    loss = -(y * p.log() + (1 - y) * (1 - p).log()).sum()
    loss.backward()
    assert (p.grad > 0).all()  # gradient descent lowers the true class's probability
    p_right = torch.tensor(0.999)
    y3 = torch.tensor(3.0)
    assert -(y3 * p_right.log() + (1 - y3) * (1 - p_right).log()) < 0  # a "loss" below zero, unbounded as p → 1


# --- weight interpolation θ(λ) = λ θ_S + (1 − λ) θ_T' ---

def _pair() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    return tl.LeNet().state_dict(), tl.LeNet().state_dict()


def test_interpolation_end_points_and_midpoint() -> None:
    a, b = _pair()
    for k in a:
        assert torch.equal(tl.interpolate_state_dicts(a, b, 0.0)[k], b[k])
        assert torch.equal(tl.interpolate_state_dicts(a, b, 1.0)[k], a[k])
        torch.testing.assert_close(tl.interpolate_state_dicts(a, b, 0.5)[k], (a[k] + b[k]) / 2)


@pytest.mark.parametrize("lam", [0.1, 0.25, 0.7, 0.9])
def test_interpolation_equals_torch_lerp_and_is_linear_in_lambda(lam: float) -> None:
    a, b = _pair()
    mid = tl.interpolate_state_dicts(a, b, lam)
    for k in a:
        torch.testing.assert_close(mid[k], torch.lerp(b[k], a[k], lam))  # lerp(start, end, w) = start + w (end − start)
        torch.testing.assert_close(mid[k], b[k] + lam * (a[k] - b[k]))  # a straight line from θ_T' to θ_S
    # linearity: blending two blends is the blend at the blended λ
    lo, hi = tl.interpolate_state_dicts(a, b, 0.2), tl.interpolate_state_dicts(a, b, 0.8)
    mix = tl.interpolate_state_dicts(hi, lo, lam)
    for k in a:
        torch.testing.assert_close(mix[k], tl.interpolate_state_dicts(a, b, 0.2 + lam * 0.6)[k])


def test_interpolation_minimises_the_weighted_squared_distance() -> None:
    a, b = _pair()
    lam = 0.3
    theta = {k: v.clone().requires_grad_(True) for k, v in tl.interpolate_state_dicts(a, b, lam).items()}
    objective = sum(lam * (theta[k] - a[k]).pow(2).sum() + (1 - lam) * (theta[k] - b[k]).pow(2).sum() for k in a)
    objective.backward()
    assert max(theta[k].grad.abs().max().item() for k in a) < 1e-5  # gradient zero: the minimiser


def test_outputs_interpolate_for_a_linear_layer_but_not_for_a_network() -> None:
    torch.manual_seed(0)
    la, lb = nn.Linear(5, 3), nn.Linear(5, 3)
    lin = nn.Linear(5, 3)
    lin.load_state_dict(tl.interpolate_state_dicts(la.state_dict(), lb.state_dict(), 0.3))
    x = torch.randn(4, 5)
    torch.testing.assert_close(lin(x), 0.3 * la(x) + 0.7 * lb(x))
    na, nb, net = tl.LeNet(), tl.LeNet(), tl.LeNet()
    net.load_state_dict(tl.interpolate_state_dicts(na.state_dict(), nb.state_dict(), 0.3))
    xi = torch.randn(4, 1, 28, 28)
    assert not torch.allclose(net(xi), 0.3 * na(xi) + 0.7 * nb(xi), atol=1e-4)  # ReLU and products of weights
