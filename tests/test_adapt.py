"""Chapter 6 methods against references: L2-SP's gradient, the unfreezing order, LP-FT's first phase."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import tlcourse as tl

CPU = torch.device("cpu")
LAYERS = ["conv1", "conv2", "fc1", "fc2"]
BN_LAYERS = [["conv1", "bn1"], ["conv2", "bn2"], "fc1", "fc2"]


def _batches(n: int = 16, seed: int = 0, size: int = 28) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 1, size, size, generator=g), torch.randint(0, 10, (n,), generator=g))]


def _trainable(model: torch.nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]


# --- L2-SP ---------------------------------------------------------------------------------------

def test_l2sp_penalty_is_zero_at_the_source_weights() -> None:
    torch.manual_seed(0)
    model = tl.LeNet()
    anchor = tl.parameter_snapshot(model, exclude="fc2")
    assert sorted(anchor) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight", "fc1.bias", "fc1.weight"]
    assert tl.l2sp_penalty(model, anchor, alpha=0.7, beta=0.0).item() == 0.0
    # with beta, only the new head contributes: beta/2 * ||w_head||^2
    expected = 0.5 * 0.3 * (model.fc2.weight.pow(2).sum() + model.fc2.bias.pow(2).sum())
    torch.testing.assert_close(tl.l2sp_penalty(model, anchor, alpha=0.7, beta=0.3), expected)


def test_l2sp_gradient_matches_autograd_and_the_closed_form() -> None:
    torch.manual_seed(0)
    model = tl.LeNet().double()
    anchor = tl.parameter_snapshot(model, exclude="fc2")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    alpha, beta = 0.5, 0.02
    penalty = tl.l2sp_penalty(model, anchor, alpha=alpha, beta=beta)
    grads = dict(zip([n for n, _ in model.named_parameters()], torch.autograd.grad(penalty, list(model.parameters()))))
    for name, p in model.named_parameters():
        closed = alpha * (p - anchor[name]) if name in anchor else beta * p  # α(w − w⁰), β·w on the head
        torch.testing.assert_close(grads[name], closed.detach())
    # and the penalty's value against a direct sum over every parameter
    direct = sum(0.5 * alpha * (p - anchor[n]).pow(2).sum() if n in anchor else 0.5 * beta * p.pow(2).sum()
                 for n, p in model.named_parameters())
    torch.testing.assert_close(penalty, direct)


def test_l2sp_gradcheck_against_finite_differences() -> None:
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2)).double()
    anchor = {k: v + 0.1 for k, v in tl.parameter_snapshot(model, exclude="1").items()}
    w = model[0].weight

    def f(weight: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            w.copy_(weight)
        return tl.l2sp_penalty(model, anchor, alpha=0.3, beta=0.1)

    eps, base = 1e-6, w.detach().clone()
    g = torch.autograd.grad(f(base), w)[0]
    for idx in [(0, 0), (1, 2)]:
        plus, minus = base.clone(), base.clone()
        plus[idx] += eps
        minus[idx] -= eps
        numeric = (f(plus) - f(minus)).item() / (2 * eps)
        assert abs(numeric - g[idx].item()) < 1e-6


def test_l2sp_skips_frozen_parameters_and_the_loss_adds_the_penalty() -> None:
    torch.manual_seed(0)
    model = tl.LeNet()
    anchor = tl.parameter_snapshot(model, exclude="fc2")
    with torch.no_grad():
        model.conv1.weight.add_(1.0)
    assert tl.l2sp_penalty(model, anchor, alpha=0.1, beta=0.0).item() == pytest.approx(0.5 * 0.1 * 250)
    tl.freeze(model, "conv1")
    assert tl.l2sp_penalty(model, anchor, alpha=0.1, beta=0.0).item() == 0.0
    x, y = _batches()[0]
    loss = tl.l2sp_loss(model, anchor, alpha=0.1, beta=0.01)
    logits = model(x)
    torch.testing.assert_close(loss(logits, y),
                               F.cross_entropy(logits, y) + tl.l2sp_penalty(model, anchor, alpha=0.1, beta=0.01))


def test_l2sp_rejects_an_anchor_of_another_shape() -> None:
    model = tl.LeNet()
    with pytest.raises(ValueError, match="shape"):
        tl.l2sp_penalty(model, {"fc1.weight": torch.zeros(3)}, alpha=1.0, beta=0.0)


# --- gradual unfreezing --------------------------------------------------------------------------

def test_unfreezing_stages_unfreeze_from_the_top_in_order() -> None:
    model = tl.LeNetBN()
    seen = []
    for stage in tl.unfreezing_stages(model, BN_LAYERS):
        seen.append((stage, _trainable(model)))
    assert [s for s, _ in seen] == [["fc2"], ["fc1", "fc2"], ["conv2+bn2", "fc1", "fc2"],
                                    ["conv1+bn1", "conv2+bn2", "fc1", "fc2"]]
    tops = [{n.split(".")[0] for n in names} for _, names in seen]
    assert tops == [{"fc2"}, {"fc1", "fc2"}, {"conv2", "bn2", "fc1", "fc2"},
                    {"conv1", "bn1", "conv2", "bn2", "fc1", "fc2"}]
    # frozen BatchNorm layers stay in eval mode until their stage comes
    model2 = tl.LeNetBN().train()
    stages = tl.unfreezing_stages(model2, BN_LAYERS)
    next(stages)
    assert not model2.bn1.training and not model2.bn2.training
    next(stages), next(stages)
    assert model2.bn2.training and not model2.bn1.training


def test_gradual_unfreezing_trains_lower_layers_only_after_their_stage() -> None:
    torch.manual_seed(0)
    model = tl.LeNet()
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    moved_after: dict[str, int] = {}

    original = tl.adapt.fine_tune

    def spy(m, loader, **kw):  # record which layers have moved after each stage
        out = original(m, loader, **kw)
        stage = len(moved_after_stage)
        moved_after_stage.append({n.split(".")[0] for n, p in m.named_parameters() if not torch.equal(p, start[n])})
        for layer in moved_after_stage[-1]:
            moved_after.setdefault(layer, stage)
        # the learning rates are discriminative: conv1 < conv2 < fc1 < fc2
        lrs = [g["lr"] for g in kw["groups"]]
        assert lrs == sorted(lrs)
        return out

    moved_after_stage: list[set[str]] = []
    tl.adapt.fine_tune = spy
    try:
        stages = tl.gradual_unfreezing(model, _batches(), layers=LAYERS, epochs_per_stage=1, lr=1e-2, decay=0.5,
                                       device=CPU)
    finally:
        tl.adapt.fine_tune = original
    assert stages == [["fc2"], ["fc1", "fc2"], ["conv2", "fc1", "fc2"], ["conv1", "conv2", "fc1", "fc2"]]
    assert moved_after == {"fc2": 0, "fc1": 1, "conv2": 2, "conv1": 3}


# --- LP-FT and the other recipes -----------------------------------------------------------------

def test_lp_ft_first_phase_changes_only_the_head() -> None:
    torch.manual_seed(0)
    model = tl.LeNetBN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tl.linear_probe(model, _batches(), head="fc2", epochs=3, lr=1e-2, device=CPU)
    after = model.state_dict()
    changed = sorted(k for k in before if not torch.equal(before[k], after[k]))
    assert changed == ["fc2.bias", "fc2.weight"]  # BatchNorm running statistics included: unchanged
    # phase 2 of LP-FT trains the body as well
    torch.manual_seed(0)
    model = tl.LeNetBN()
    out = tl.lp_ft(model, _batches(), head="fc2", probe_epochs=2, finetune_epochs=2, probe_lr=1e-2,
                   finetune_lr=1e-3, device=CPU)
    assert len(out["probe"]) == 2 and len(out["finetune"]) == 2
    assert not torch.equal(model.conv1.weight, before["conv1.weight"])
    assert all(p.requires_grad for p in model.parameters())


def test_copy_first_layers_copies_and_freezes_the_first_n() -> None:
    torch.manual_seed(0)
    src, dst = tl.LeNet(), tl.LeNet()
    fc1_before = dst.fc1.weight.clone()
    report = tl.copy_first_layers(src, dst, 2, layers=LAYERS)
    assert report.copied == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"]
    assert torch.equal(dst.conv2.weight, src.conv2.weight) and torch.equal(dst.fc1.weight, fc1_before)
    assert _trainable(dst) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    dst2 = tl.LeNet()
    tl.copy_first_layers(src, dst2, 4, layers=LAYERS, freeze_copied=False)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst2.state_dict().values()))
    assert len(_trainable(dst2)) == 8
    with pytest.raises(ValueError, match="between 0 and 4"):
        tl.copy_first_layers(src, dst, 5, layers=LAYERS)
    bn = tl.LeNetBN()
    tl.copy_first_layers(tl.LeNetBN(), bn, 1, layers=BN_LAYERS)
    assert not bn.bn1.weight.requires_grad and bn.bn2.weight.requires_grad


def test_fine_tune_with_nothing_trainable_trains_nothing() -> None:
    model = tl.LeNet()
    tl.freeze(model)
    before = [p.clone() for p in model.parameters()]
    assert tl.fine_tune(model, _batches(), epochs=2, lr=1.0, device=CPU) == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_lenet_bn_shares_lenet_names() -> None:
    report = tl.transfer_weights(tl.LeNet(), tl.LeNetBN())
    assert report.counts["copied"] == 8
    assert all(r.startswith("bn") for r in report.skipped)


# --- the cached source, results tables, checks ---------------------------------------------------

def test_close_on_numbers_and_lists() -> None:
    assert tl.close(torch.tensor([1.0, 2.0]), [1.0, 2.0 + 1e-7], hint="h").passed is True
    assert tl.close(1.1, 1.0, hint="h") == (False, "h")
    assert tl.close([1.0], 1.0, hint="h").passed is False  # shape
    assert tl.close("one", 1.0, hint="h").passed is False


def test_parameter_snapshot_and_unfreezing_stages_refuse_a_typo_and_change_nothing() -> None:
    model = tl.LeNet()
    with pytest.raises(tl.UnknownNameError, match="did you mean fc2"):
        tl.parameter_snapshot(model, exclude=["fc_2"])
    stages = tl.unfreezing_stages(model, ["conv1", "conv2", "fc1", "fcc2"])
    with pytest.raises(tl.UnknownNameError, match="fcc2"):
        next(stages)
    assert all(p.requires_grad for p in model.parameters())  # the typo froze nothing


def test_distance_from_the_anchor_is_the_relative_norm_of_the_change() -> None:
    model = tl.LeNet()
    anchor = tl.parameter_snapshot(model, exclude="fc2")
    with torch.no_grad():
        model.conv1.weight.mul_(2.0)  # conv1.weight moves by its own size
        model.fc2.weight.add_(5.0)  # not in the anchor: does not count
    size = torch.sqrt(sum(w.pow(2).sum() for w in anchor.values()))
    assert tl.distance_from(model, anchor) == pytest.approx((anchor["conv1.weight"].norm() / size).item())
    with pytest.raises(ValueError, match="no parameter 'bn1.weight' of the anchor"):
        tl.distance_from(tl.LeNet(), tl.parameter_snapshot(tl.LeNetBN()))
