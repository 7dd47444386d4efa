"""Weight transfer against a reference (the source tensors), freezing, param groups, interpolation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tlcourse as tl


def _lenets() -> tuple[tl.LeNet, tl.LeNet]:
    torch.manual_seed(0)
    return tl.LeNet(in_channels=1, image_size=28), tl.LeNet(in_channels=3, image_size=32)


def test_copied_tensors_equal_the_source_and_the_report_says_what_happened() -> None:
    src, dst = _lenets()
    fc1_before = dst.fc1.weight.clone()
    report = tl.transfer_weights(src, dst, adapt_first_conv="repeat")
    s, d = src.state_dict(), dst.state_dict()
    assert report.copied == ["conv1.bias", "conv2.weight", "conv2.bias", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert all(torch.equal(d[k], s[k]) for k in report.copied)
    assert report.adapted == ["conv1.weight"] and report.skipped == ["fc1.weight"]
    assert torch.equal(dst.fc1.weight, fc1_before)  # skipped: keeps its own values
    assert report.counts == {"copied": 6, "adapted": 1, "skipped": 1}
    row = next(r for r in report.rows if r.name == "fc1.weight")
    assert (row.source_shape, row.target_shape, row.reason) == ((50, 320), (50, 500), "shape mismatch")
    text = str(report)
    assert "fc1.weight" in text and "(50, 320)" in text and "(50, 500)" in text and "6 copied" in text
    assert "<table>" in report._repr_html_() and "fc1.weight" in report._repr_html_()


def test_repeat_gives_the_same_output_on_a_grey_image_replicated_to_rgb() -> None:
    src, dst = _lenets()
    tl.transfer_weights(src, dst, adapt_first_conv="repeat")
    assert torch.equal(dst.conv1.weight, src.conv1.weight.repeat(1, 3, 1, 1) / 3)  # the documented formula
    grey = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(dst.conv1(grey.expand(-1, 3, -1, -1)), src.conv1(grey))


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_sum_and_mean_reduce_rgb_filters_to_grey(mode: str) -> None:
    torch.manual_seed(0)
    rgb, grey = tl.LeNet(in_channels=3), tl.LeNet(in_channels=1)
    report = tl.transfer_weights(rgb, grey, adapt_first_conv=mode)
    assert report.adapted == ["conv1.weight"]
    expected = rgb.conv1.weight.sum(1, keepdim=True) if mode == "sum" else rgb.conv1.weight.mean(1, keepdim=True)
    assert torch.equal(grey.conv1.weight, expected)
    if mode == "sum":  # grey input to the target == that image replicated to RGB in the source
        x = torch.rand(2, 1, 28, 28)
        torch.testing.assert_close(grey.conv1(x), rgb.conv1(x.expand(-1, 3, -1, -1)))


def test_a_mode_that_cannot_map_the_channels_skips_with_a_reason() -> None:
    src, dst = _lenets()
    report = tl.transfer_weights(src, dst, adapt_first_conv="sum")
    row = next(r for r in report.rows if r.name == "conv1.weight")
    assert row.action == "skipped" and "'repeat'" in row.reason


def test_strict_transfer_lists_every_mismatch_with_both_shapes_and_copies_nothing() -> None:
    src, dst = _lenets()
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(tl.TransferError) as info:
        tl.transfer_weights(src, dst, strict=True, adapt_first_conv=None)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "conv1.weight" in msg and "(10, 1, 5, 5)" in msg and "(10, 3, 5, 5)" in msg
    assert "fc1.weight" in msg and "(50, 320)" in msg and "(50, 500)" in msg
    assert all(torch.equal(v, before[k]) for k, v in dst.state_dict().items())
    report = tl.transfer_weights(src, dst, adapt_first_conv=None)  # non-strict: the same two, skipped
    assert report.skipped == ["conv1.weight", "fc1.weight"]


def test_strict_passes_when_the_mismatches_are_adapted_or_skipped() -> None:
    src, dst = _lenets()
    report = tl.transfer_weights(src, dst, strict=True, adapt_first_conv="repeat", skip=["fc1.weight"])
    assert report.counts == {"copied": 6, "adapted": 1, "skipped": 1}


def test_missing_and_unexpected_keys_are_reported_and_fail_strict() -> None:
    src = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    dst = nn.Sequential(nn.Linear(3, 4))
    report = tl.transfer_weights(src, dst)
    assert report.copied == ["0.weight", "0.bias"]
    assert {r.name: r.reason for r in report.rows if r.action == "skipped"} == {
        "1.weight": "not in target", "1.bias": "not in target"}
    with pytest.raises(tl.TransferError, match="1.weight"):
        tl.transfer_weights(src, dst, strict=True)
    with pytest.raises(tl.TransferError, match="not in source"):
        tl.transfer_weights(dst, src, strict=True)


def test_buffers_are_transferred_too() -> None:
    src, dst = nn.BatchNorm2d(4), nn.BatchNorm2d(4)
    src.train()
    src(torch.randn(8, 4, 3, 3) * 3 + 1)  # update running stats and num_batches_tracked
    report = tl.transfer_weights(src.state_dict(), dst)  # a state_dict works as the source
    assert torch.equal(dst.running_mean, src.running_mean) and torch.equal(dst.running_var, src.running_var)
    assert dst.num_batches_tracked.item() == 1
    assert "num_batches_tracked" in report.copied


def _bn_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_frozen_parameters_unchanged_and_trainable_ones_changed_after_a_step() -> None:
    model = _bn_net()
    frozen = tl.freeze(model, ["0", "1"])
    assert frozen == ["0.weight", "0.bias", "1.weight", "1.bias"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.SGD(tl.trainable_parameters(model), lr=0.1)
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    assert held == {id(p) for n, p in model.named_parameters() if n.startswith("4.")}
    F.cross_entropy(model(torch.randn(5, 3, 8, 8)), torch.tensor([0, 1, 2, 0, 1])).backward()
    opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n in frozen), n


def test_freeze_puts_batchnorm_in_eval_and_keep_frozen_bn_eval_undoes_train() -> None:
    model = _bn_net()
    tl.freeze(model, "1")
    assert not model[1].training
    model.train()  # switches every module to training mode, frozen BatchNorm included
    assert model[1].training
    assert tl.keep_frozen_bn_eval(model) == 1 and not model[1].training and model[0].training
    tl.unfreeze(model, "1")
    assert model[1].training and model[1].weight.requires_grad
    assert tl.keep_frozen_bn_eval(model) == 0
    tl.freeze(model, "1", bn_eval=False)
    assert model[1].training and not model[1].weight.requires_grad


def test_freeze_all_but_and_trainable_summary() -> None:
    model = tl.LeNet()
    assert tl.freeze_all_but(model, "fc2") == ["fc2.weight", "fc2.bias"]
    summary = tl.trainable_summary(model)
    assert summary.trainable == 510 and summary.frozen == sum(p.numel() for p in model.parameters()) - 510
    assert [r[0] for r in summary.rows] == ["conv1", "conv2", "fc1", "fc2"]
    text = str(summary)
    assert "fc2" in text and "510" in text and "total" in text
    with pytest.raises(ValueError, match="fc3"):
        tl.freeze(model, "fc3")  # a typo is an error, not a silent no-op


def test_param_groups_give_the_head_ten_times_the_rate_and_skip_frozen_params() -> None:
    model = tl.LeNet()
    tl.freeze(model, "conv1")
    groups = tl.param_groups(model, lr=0.01, head_names="fc2")
    assert [(g["name"], g["lr"]) for g in groups] == [("body", 0.01), ("head", pytest.approx(0.1))]
    names = {id(p): n for n, p in model.named_parameters()}
    assert [names[id(p)] for p in groups[1]["params"]] == ["fc2.weight", "fc2.bias"]
    assert [names[id(p)] for p in groups[0]["params"]] == ["conv2.weight", "conv2.bias", "fc1.weight", "fc1.bias"]
    opt = torch.optim.SGD(groups, lr=1.0, momentum=0.9)
    assert [g["lr"] for g in opt.param_groups] == [0.01, pytest.approx(0.1)]
    with pytest.raises(ValueError, match="head_names"):
        tl.param_groups(model, lr=0.01, head_names="fc")  # "fc" is not a prefix of "fc2"


def test_layerwise_lr_groups_decay_towards_the_input() -> None:
    model = tl.LeNet()
    groups = tl.layerwise_lr_groups(model, lr=0.1, decay=0.5, layers=[["conv1", "conv2"], "fc1", "fc2"])
    assert [g["name"] for g in groups] == ["conv1+conv2", "fc1", "fc2"]
    assert [g["lr"] for g in groups] == pytest.approx([0.025, 0.05, 0.1])
    assert len(groups[0]["params"]) == 4
    tl.freeze(model, "fc1")
    groups = tl.layerwise_lr_groups(model, lr=0.1, decay=0.5, layers=["conv1", "conv2", "fc1", "fc2"])
    assert [(g["name"], g["lr"]) for g in groups] == [("conv1", 0.0125), ("conv2", 0.025), ("fc2", 0.1)]
    with pytest.raises(ValueError, match="conv2.weight"):
        tl.layerwise_lr_groups(model, lr=0.1, decay=0.5, layers=["conv1", "fc2"])


def test_interpolation_end_points_midpoint_and_integer_buffers() -> None:
    torch.manual_seed(0)
    a_model, b_model = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    for m, k in ((a_model, 5), (b_model, 2)):
        nn.init.normal_(m.weight)
        m.num_batches_tracked.fill_(k)
    a, b = a_model.state_dict(), b_model.state_dict()
    for lam, want in ((0.0, b), (1.0, a)):
        out = tl.interpolate_state_dicts(a, b, lam)
        assert all(torch.equal(out[k], want[k]) and out[k].dtype == want[k].dtype for k in a)
    mid = tl.interpolate_state_dicts(a, b, 0.5)
    assert torch.equal(mid["weight"], (a["weight"] + b["weight"]) / 2)
    assert mid["num_batches_tracked"].item() == 2 and mid["num_batches_tracked"].dtype == torch.long
    assert tl.interpolate_state_dicts(a, b, 0.75)["num_batches_tracked"].item() == 5
    out = tl.interpolate_state_dicts(a, b, 0.25)
    torch.testing.assert_close(out["weight"], 0.25 * a["weight"] + 0.75 * b["weight"])
    assert out["weight"] is not b["weight"]


def test_interpolation_rejects_bad_lambda_keys_and_shapes() -> None:
    a = {"w": torch.zeros(2), "b": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tl.interpolate_state_dicts(a, a, 1.5)
    with pytest.raises(ValueError, match="only in sd_a: \\['b'\\]"):
        tl.interpolate_state_dicts(a, {"w": torch.zeros(2)}, 0.5)
    with pytest.raises(ValueError, match=r"w: \(2,\).*\(3,\)"):
        tl.interpolate_state_dicts(a, {"w": torch.zeros(3), "b": torch.zeros(1)}, 0.5)


# --- names that match nothing: an error naming the nearest real names, and nothing changed ---


def _state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, bool], dict[str, bool]]:
    """Everything the functions below could change: tensors, requires_grad flags, training modes."""
    return ({k: v.clone() for k, v in model.state_dict().items()},
            {n: p.requires_grad for n, p in model.named_parameters()},
            {n: m.training for n, m in model.named_modules()})


def _unchanged(model: nn.Module, before: tuple) -> bool:
    tensors, flags, modes = _state(model)
    return (all(torch.equal(v, before[0][k]) for k, v in tensors.items())
            and flags == before[1] and modes == before[2])


@pytest.mark.parametrize("strict", [False, True])
@pytest.mark.parametrize("skip, nearest", [("fc_2", "fc2"), (["fc2.weights"], "fc2.weight"), (["fc1", "fc3"], ".*fc2")])
def test_a_skip_name_that_matches_nothing_raises_and_copies_nothing(skip, nearest: str, strict: bool) -> None:
    torch.manual_seed(0)
    src, dst = tl.LeNet(), tl.LeNet()
    before = _state(dst)
    with pytest.raises(tl.UnknownNameError, match=f"did you mean {nearest}") as info:
        tl.transfer_weights(src, dst, skip=skip, strict=strict)
    assert isinstance(info.value, ValueError) and "Nothing was changed" in str(info.value)
    assert _unchanged(dst, before)  # the source's head was not copied in


def test_an_empty_skip_name_raises_instead_of_skipping_everything() -> None:
    src, dst = tl.LeNet(), tl.LeNet()
    before = _state(dst)
    with pytest.raises(tl.UnknownNameError, match="empty name"):
        tl.transfer_weights(src, dst, skip="")
    with pytest.raises(tl.UnknownNameError, match="empty name"):
        tl.transfer_weights(src, dst, skip=["fc2", ""])
    assert _unchanged(dst, before)


def test_a_skip_name_may_name_a_tensor_of_the_source_only() -> None:
    src = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    dst = nn.Sequential(nn.Linear(3, 4))
    report = tl.transfer_weights(src, dst, skip="1", strict=True)  # the source's extra layer, left out on purpose
    assert report.copied == ["0.weight", "0.bias"] and report.skipped == []


def test_freeze_and_unfreeze_with_a_typo_change_nothing() -> None:
    model = tl.LeNetBN()
    before = _state(model)
    with pytest.raises(tl.UnknownNameError, match="'cnv2'.*did you mean conv2"):
        tl.freeze(model, ["conv1", "bn1", "cnv2"])
    assert _unchanged(model, before)  # conv1 not frozen, bn1 still in training mode
    assert tl.keep_frozen_bn_eval(model) == 0
    tl.freeze(model)
    before = _state(model)
    with pytest.raises(tl.UnknownNameError, match="fc_2"):
        tl.unfreeze(model, ["fc1", "fc_2"])
    assert _unchanged(model, before)
    with pytest.raises(tl.UnknownNameError, match="empty name"):
        tl.freeze(model, "")
    with pytest.raises(tl.UnknownNameError, match="pass None"):
        tl.freeze(model, [])
    with pytest.raises(TypeError, match="strings"):
        tl.freeze(model, ["conv1", 2])
    assert _unchanged(model, before)


def test_freeze_all_but_with_a_typo_freezes_nothing() -> None:
    model = tl.LeNet()
    tl.freeze(model, "conv1")
    before = _state(model)
    with pytest.raises(tl.UnknownNameError, match="'head'.*conv1, conv2, fc1, fc2"):
        tl.freeze_all_but(model, "head")  # no name is close: the message lists the top-level modules
    assert _unchanged(model, before)
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["conv1.weight", "conv1.bias"]


def test_param_groups_and_layerwise_groups_reject_a_typo_instead_of_dropping_it() -> None:
    model = tl.LeNet()
    with pytest.raises(tl.UnknownNameError, match="head_names: 'fc_1'.*did you mean fc1"):
        tl.param_groups(model, lr=0.01, head_names=["fc2", "fc_1"])
    with pytest.raises(tl.UnknownNameError, match="layers: 'fc_2'.*did you mean fc2"):
        tl.layerwise_lr_groups(model, lr=0.1, decay=0.5, layers=[["conv1", "conv2"], "fc1", ["fc2", "fc_2"]])
    with pytest.raises(tl.UnknownNameError, match="head_names is empty"):
        tl.param_groups(model, lr=0.01, head_names=[])
    tl.freeze(model, "fc1")  # a frozen layer is still a real name
    groups = tl.layerwise_lr_groups(model, lr=0.1, decay=0.5, layers=["conv1", "conv2", "fc1", "fc2"])
    assert [g["name"] for g in groups] == ["conv1", "conv2", "fc2"]


def test_the_split_modules_keep_every_name_available() -> None:
    from tlcourse import freezing, interpolation, transfer

    for module in (transfer, freezing, interpolation):
        assert all(getattr(tl, name) is getattr(module, name) for name in module.__all__)
    assert not hasattr(transfer, "freeze")  # each name lives in one module: freezing, not transfer
