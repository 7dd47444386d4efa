"""Multi-task learning: the heads, the weighted loss against F.cross_entropy, per-task accuracy, equal parameters."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tlcourse as tl
from tlcourse.multitask_runs import _labelled

CPU = torch.device("cpu")


def _net(classes=(3, 2)) -> tl.MultiHead:
    torch.manual_seed(0)
    return tl.MultiHead(nn.Sequential(nn.Flatten(), nn.Linear(4, 6), nn.ReLU()), 6, classes)


def test_train_one_epoch_and_evaluate_report_nan_accuracy_for_two_dimensional_targets() -> None:
    model = _net()
    x, y = torch.randn(8, 2, 2), torch.tensor([[0, 1], [2, -1]] * 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loss = tl.multitask_loss_fn((3, 2))
    out = tl.train_one_epoch(model, [(x, y)], opt, CPU, loss_fn=loss, progress=False)
    assert math.isnan(out["accuracy"]) and math.isfinite(out["loss"])
    assert math.isnan(tl.evaluate(model, [(x, y)], CPU, loss_fn=loss)["accuracy"])
    # a distillation target (B, 1 + C) with (B, C) logits: no accuracy either, and no crash
    soft = torch.cat([torch.zeros(8, 1), torch.softmax(torch.randn(8, 5), 1)], 1)
    kd = tl.evaluate(nn.Linear(4, 5), [(torch.randn(8, 4), soft)], CPU, loss_fn=lambda s, t: F.mse_loss(s, t[:, 1:]))
    assert math.isnan(kd["accuracy"])
    # one label per example still counts as before
    plain = tl.evaluate(nn.Linear(4, 3), [(torch.randn(6, 4), torch.zeros(6, dtype=torch.long))], CPU)
    assert 0 <= plain["accuracy"] <= 1


def test_multihead_concatenates_each_heads_logits() -> None:
    model = _net((3, 2))
    x = torch.randn(5, 2, 2)
    out = model(x)
    features = model.backbone(x)
    assert out.shape == (5, 5)
    torch.testing.assert_close(out[:, :3], model.heads[0](features))
    torch.testing.assert_close(out[:, 3:], model.heads[1](features))
    with pytest.raises(ValueError, match="at least 2"):
        tl.MultiHead(nn.Identity(), 4, (10, 1))


def test_loss_is_the_weighted_sum_of_cross_entropies_over_the_labelled_examples() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 13, generator=g)
    y = torch.tensor([[3, 0], [-1, 2], [7, -1], [1, 1], [-1, -1], [9, 0]])
    first = y[:, 0] != -1
    second = y[:, 1] != -1
    expected = (0.3 * F.cross_entropy(logits[first, :10], y[first, 0])
                + 2.0 * F.cross_entropy(logits[second, 10:], y[second, 1]))
    torch.testing.assert_close(tl.multitask_loss_fn((10, 3), weights=(0.3, 2.0))(logits, y), expected)
    # a task without any label in the batch adds nothing (not NaN)
    only_first = torch.tensor([[3, -1], [4, -1]])
    torch.testing.assert_close(tl.multitask_loss_fn((10, 3))(logits[:2], only_first),
                               F.cross_entropy(logits[:2, :10], only_first[:, 0]))
    # weight 0 switches a task off
    torch.testing.assert_close(tl.multitask_loss_fn((10, 3), weights=(1, 0))(logits, y),
                               F.cross_entropy(logits[first, :10], y[first, 0]))


def test_loss_refuses_labels_and_weights_that_do_not_fit() -> None:
    with pytest.raises(ValueError, match="one non-negative weight per task"):
        tl.multitask_loss_fn((10, 3), weights=(1.0,))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        tl.multitask_loss_fn((10, 3))(torch.zeros(2, 13), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, 13\)"):
        tl.multitask_loss_fn((10, 3))(torch.zeros(2, 12), torch.zeros(2, 2, dtype=torch.long))


def test_task_accuracies_count_only_the_examples_with_that_tasks_label() -> None:
    model = tl.MultiHead(nn.Identity(), 5, (3, 2))  # the logits are the input itself (heads = identity)
    with torch.no_grad():
        model.heads[0].weight.copy_(torch.eye(5)[:3]); model.heads[0].bias.zero_()
        model.heads[1].weight.copy_(torch.eye(5)[3:]); model.heads[1].bias.zero_()
    x = torch.tensor([[5., 0, 0, 0, 1], [0, 5, 0, 1, 0], [0, 0, 5, 0, 1], [5, 0, 0, 1, 0]])
    # predictions: task 0 -> 0, 1, 2, 0; task 1 -> 1, 0, 1, 0
    y = torch.tensor([[0, 1], [2, 0], [2, -1], [-1, 1]])
    batches = [(x[:2], y[:2]), (x[2:], y[2:])]
    assert tl.task_accuracies(model, batches, (3, 2), device=CPU) == [2 / 3, 2 / 3]
    assert math.isnan(tl.task_accuracies(model, [(x, torch.full((4, 2), -1))], (3, 2), device=CPU)[0])


@pytest.mark.parametrize("classes", [(10, 10), (10, 3), (3, 4, 5)])
def test_joint_hidden_is_the_widest_backbone_within_the_separate_networks_parameters(classes) -> None:
    separate = sum(tl.parameter_count(tl.MultiHead(tl.Backbone(50), 50, (c,))) for c in classes)
    h = tl.joint_hidden(50, classes)
    assert tl.parameter_count(tl.MultiHead(tl.Backbone(h), h, classes)) <= separate
    assert tl.parameter_count(tl.MultiHead(tl.Backbone(h + 1), h + 1, classes)) > separate
    assert tl.parameter_count(tl.Backbone(50)) + tl.parameter_count(nn.Linear(50, 10)) == \
        tl.parameter_count(tl.LeNet())  # a single-task network is LeNet


def _task(name: str, images: str, classes: int, n: int, seed: int) -> tl.TaskData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    y = torch.arange(n) % classes
    return tl.TaskData(name, images, classes, (x, y), (x[:12], y[:12]))


def test_labelled_rows_carry_each_tasks_budget_and_share_images_of_one_dataset() -> None:
    a, b = _task("a", "one", 4, 40, 0), _task("b", "two", 3, 30, 1)
    x, y = _labelled([a, b], [2, 3], seed=0)
    assert y.shape == (8 + 9, 2) and x.shape[0] == 17
    assert torch.bincount(y[y[:, 0] != -1, 0]).tolist() == [2, 2, 2, 2]
    assert ((y[:, 0] == -1) ^ (y[:, 1] == -1)).all()  # different images: one label each
    coarse = tl.TaskData("coarse", "one", 2, (a.train[0], a.train[1] % 2), a.test)
    x, y = _labelled([a, coarse], [2, 10], seed=0)
    assert len(x) == len(torch.unique(x.flatten(1), dim=0))  # an image drawn by both tasks is one row
    both = (y != -1).all(1)
    assert torch.equal(y[both, 1], y[both, 0] % 2)  # and carries both of its labels


def test_run_pair_trains_both_arms_at_equal_total_parameters() -> None:
    settings = tl.MultiTaskSettings(epochs=1, min_steps=1, batch_size=16, seeds=(0,))
    tasks = [_task("a", "one", 4, 40, 0), _task("b", "two", 3, 30, 1)]
    rows = tl.run_pair(tasks, budgets=[3, 3], seed=0, settings=settings)
    assert [(r["method"], r["task"]) for r in rows] == [("joint", "a"), ("joint", "b"), ("separate", "a"),
                                                         ("separate", "b")]
    joint = rows[0]["parameters"]
    assert joint == rows[1]["parameters"] <= rows[2]["parameters"] + rows[3]["parameters"]
    assert [r["labels"] for r in rows] == [12, 9, 12, 9]
    assert all(0 <= r["accuracy"] <= 1 for r in rows)
    assert rows == tl.run_pair(tasks, budgets=[3, 3], seed=0, settings=settings)  # seeded
