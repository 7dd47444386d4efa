"""Evaluating a recommender properly: a per-user split, RMSE, and ranking with sampled negatives.

* ``split_per_user``: each user's ``test_per_user`` latest ratings (``by="time"``) or a random
  few (``by="random"``) are held out; every user keeps at least one rating for training.
* ``rmse``: the root mean squared error of predicted ratings.
* ``ranking_metrics``: for each held-out (user, item), the item is ranked among ``negatives``
  items the user never rated (drawn at random, seeded): HR@k is the share ranked in the top
  ``k``, NDCG@k averages ``1 / log2(rank + 2)`` over those (He et al.'s protocol for NCF).
* ``popularity``: how many training ratings each item has, the baseline every model must beat.

Example:
    >>> import torch
    >>> rmse(torch.tensor([3.0, 4.0]), torch.tensor([4.0, 4.0]))
    0.7071067690849304
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .ratings_data import Ratings

__all__ = ["split_per_user", "rmse", "ranking_metrics", "popularity"]


def split_per_user(ratings: Ratings, *, test_per_user: int = 1, by: str = "time",
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and test ratings: each user's last (or random) ``test_per_user`` held out.

    A user with ``test_per_user`` ratings or fewer keeps them all for training. Ties in time
    are broken by the rating's position, so the split is the same every time.

    Raises:
        ValueError: ``by`` is neither ``"time"`` nor ``"random"``, or ``test_per_user < 1``.
    """
    if by not in ("time", "random"):
        raise ValueError(f"by must be 'time' or 'random'; got {by!r}")
    if test_per_user < 1:
        raise ValueError(f"test_per_user must be at least 1; got {test_per_user}")
    n = len(ratings.user)
    if by == "time":
        key = ratings.time.double() + torch.arange(n, dtype=torch.float64) / (10 * n)
    else:
        key = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    order = torch.argsort(key)
    order = order[torch.argsort(ratings.user[order], stable=True)]  # by user, then by key
    users = ratings.user[order]
    counts = torch.bincount(users, minlength=ratings.n_users)
    end = torch.cumsum(counts, 0)[users]  # one past each user's last rating, in ``order``
    position = torch.arange(n)
    held = (position >= end - test_per_user) & (counts[users] > test_per_user)
    return order[~held].sort().values, order[held].sort().values


def rmse(predicted: torch.Tensor, actual: torch.Tensor) -> float:
    """Root mean squared error between two equally long rating tensors."""
    if predicted.shape != actual.shape or predicted.numel() == 0:
        raise ValueError(f"rmse needs two non-empty tensors of one shape; got {tuple(predicted.shape)} "
                         f"and {tuple(actual.shape)}")
    return float(torch.sqrt(torch.mean((predicted.float() - actual.float()) ** 2)))


def popularity(ratings: Ratings, train: torch.Tensor) -> torch.Tensor:
    """float ``(n_items,)``: the number of training ratings of each item."""
    return torch.bincount(ratings.item[train], minlength=ratings.n_items).float()


def ranking_metrics(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ratings: Ratings,
                    train: torch.Tensor, test: torch.Tensor, *, negatives: int = 99, k: int = 10,
                    seed: int = 0) -> dict[str, float]:
    """HR@k and NDCG@k of ``score(users, items)`` over the held-out ratings, each against sampled negatives.

    Args:
        score: higher = recommend sooner; takes int64 users and items of one shape.
        ratings, train, test: the data and the split; a negative is an item the user rated nowhere.
        negatives: sampled items each held-out item is ranked against.
        k: the length of the recommendation list.
        seed: which negatives are drawn (the same for every model compared).

    Example:
        >>> import pandas as pd
        >>> toy = Ratings(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2]), torch.ones(3), torch.arange(3),
        ...               pd.DataFrame({"title": list("abcd")}), pd.DataFrame({"age": [1, 2]}), "toy")
        >>> pop = popularity(toy, torch.tensor([0, 2]))
        >>> ranking_metrics(lambda u, i: pop[i], toy, torch.tensor([0, 2]), torch.tensor([1]), negatives=2, k=1)
        {'HR@1': 0.0, 'NDCG@1': 0.0}
    """
    g = torch.Generator().manual_seed(seed)
    rated = {}
    for u, i in zip(ratings.user.tolist(), ratings.item.tolist()):
        rated.setdefault(u, set()).add(i)
    hits = gains = 0.0
    for t in test.tolist():
        u, positive = int(ratings.user[t]), int(ratings.item[t])
        pool = torch.tensor([i for i in range(ratings.n_items) if i not in rated[u]])
        if len(pool) < negatives:
            raise ValueError(f"user {u} has rated all but {len(pool)} items: fewer than {negatives} negatives")
        drawn = pool[torch.randperm(len(pool), generator=g)[:negatives]]
        items = torch.cat([torch.tensor([positive]), drawn])
        with torch.no_grad():
            s = score(torch.full_like(items, u), items).float()
        rank = int((s[1:] > s[0]).sum()) + int((s[1:] == s[0]).sum()) // 2  # ties: the positive in the middle
        if rank < k:
            hits += 1
            gains += 1 / math.log2(rank + 2)
    n = len(test)
    return {f"HR@{k}": hits / n, f"NDCG@{k}": gains / n}
