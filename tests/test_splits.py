"""Label budgets and validation carved from them (tlcourse.splits)."""

from __future__ import annotations

import pytest
import torch

import tlcourse as tl


def test_validation_comes_out_of_the_budget_disjoint_and_per_class() -> None:
    y = torch.arange(10).repeat(30)  # 30 of each class
    budget = tl.per_class_subset(y, 8, seed=3)
    yb = y[budget]
    train, val = tl.carve_validation(yb, per_class=2, seed=1)
    assert len(set(train.tolist()) & set(val.tolist())) == 0
    assert sorted(train.tolist() + val.tolist()) == list(range(len(yb)))  # nothing added, nothing lost
    assert torch.bincount(yb[val]).tolist() == [2] * 10 and torch.bincount(yb[train]).tolist() == [6] * 10
    again = tl.carve_validation(yb, per_class=2, seed=1)
    assert torch.equal(again[1], val) and not torch.equal(tl.carve_validation(yb, per_class=2, seed=2)[1], val)


def test_a_class_too_small_to_give_validation_is_refused() -> None:
    y = torch.tensor([0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="class 1 has only 2 labelled examples: it cannot give 2 to validation"):
        tl.carve_validation(y, per_class=2)
    with pytest.raises(ValueError, match="per_class must be at least 1"):
        tl.carve_validation(y, per_class=0)
