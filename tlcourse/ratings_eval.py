"""Evaluating a recommender properly: a per-user split, RMSE, and ranking with sampled negatives.

* ``split_per_user``: each user's ``test_per_user`` latest ratings (``by="time"``) or a random
  few (``by="random"``) are held out; every user keeps at least one rating for training.
* ``rmse``: the root mean squared error of predicted ratings.
* ``ranking_metrics``: for each held-out (user, item), the item is ranked among ``negatives``
  items the user never rated (drawn at random, seeded): HR@k is the share ranked in the top
  ``k``, NDCG@k averages ``1 / log2(rank + 2)`` over those (He et al.'s protocol for NCF).
* ``popularity``: how many training ratings each item has, the ranking baseline every model must
  beat; ``item_means``: each item's mean rating, the baseline of rating prediction.

Example:
    >>> import torch
    >>> rmse(torch.tensor([3.0, 4.0]), torch.tensor([4.0, 4.0]))
    0.7071067690849304
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .ratings_data import Ratings

__all__ = ["split_per_user", "rmse", "popularity", "item_means", "ranking_metrics"]


def split_per_user(ratings: Ratings, *, test_per_user: int = 1, by: str = "time", seed: int = 0,
                   among: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the training and test ratings: each user's last (or random) ``test_per_user`` held out.

    A user with ``test_per_user`` ratings or fewer keeps them all for training. Ties in time
    are broken by the rating's position, so the split is the same every time. ``among``
    splits only the ratings it indexes (e.g. a training set into fit and validation).

    Raises:
        ValueError: ``by`` is neither ``"time"`` nor ``"random"``, or ``test_per_user < 1``.
    """
    if by not in ("time", "random"):
        raise ValueError(f"by must be 'time' or 'random'; got {by!r}")
    if test_per_user < 1:
        raise ValueError(f"test_per_user must be at least 1; got {test_per_user}")
    if among is not None:
        fit, held = split_per_user(ratings.select(among), test_per_user=test_per_user, by=by, seed=seed)
        return among[fit], among[held]
    n = len(ratings.user)
    if by == "time":
        key = ratings.time
    else:
        key = torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    order = torch.argsort(key, stable=True)  # ties in file order
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


def item_means(ratings: Ratings, train: torch.Tensor) -> torch.Tensor:
    """float ``(n_items,)``: each item's mean training rating; the global training mean for an unrated one."""
    sums = torch.zeros(ratings.n_items).index_add_(0, ratings.item[train], ratings.rating[train])
    counts = torch.bincount(ratings.item[train], minlength=ratings.n_items).float()
    return torch.where(counts > 0, sums / counts.clamp(min=1), ratings.rating[train].mean())


def ranking_metrics(score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], ratings: Ratings,
                    test: torch.Tensor, *, negatives: int = 99, k: int = 10, candidates: torch.Tensor | None = None,
                    seed: int = 0) -> dict[str, float]:
    """HR@k and NDCG@k of ``score(users, items)`` over the held-out ratings, each against sampled negatives.

    Args:
        score: higher = recommend sooner; takes int64 users and items of one shape.
        ratings, test: the data and the held-out ratings; a negative is an item the user rated nowhere.
        negatives: sampled items each held-out item is ranked against.
        k: the length of the recommendation list.
        candidates: bool ``(n_items,)``: the items negatives are drawn from (default: all).
        seed: which negatives are drawn (the same for every model compared).

    Raises:
        ValueError: a user has rated all but fewer than ``negatives`` of the candidates.

    Example:
        >>> import pandas as pd
        >>> toy = Ratings(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2]), torch.ones(3), torch.arange(3),
        ...               pd.DataFrame({"title": list("abcd")}), pd.DataFrame({"age": [1, 2]}), "toy")
        >>> pop = popularity(toy, torch.tensor([0, 2]))
        >>> ranking_metrics(lambda u, i: pop[i], toy, torch.tensor([1]), negatives=2, k=1)
        {'HR@1': 0.0, 'NDCG@1': 0.0}
    """
    pool = torch.ones(ratings.n_items, dtype=torch.bool) if candidates is None else candidates.bool()
    unrated = pool.repeat(ratings.n_users, 1)
    unrated[ratings.user, ratings.item] = False
    users, positives = ratings.user[test], ratings.item[test]
    short = torch.nonzero(unrated[users].sum(1) < negatives).flatten()
    if len(short):
        u = int(users[short[0]])
        raise ValueError(f"user {u} has rated all but {int(unrated[u].sum())} candidate items: "
                         f"fewer than the {negatives} negatives asked for")
    # each row's negatives: its unrated candidates in a random order (seeded), the first `negatives`
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(len(test), ratings.n_items, generator=g)
    drawn = torch.topk(torch.where(unrated[users], noise, -1.0), negatives, dim=1).indices
    items = torch.cat([positives[:, None], drawn], dim=1)
    with torch.no_grad():
        s = score(users[:, None].expand_as(items), items).float()
    rank = (s[:, 1:] > s[:, :1]).sum(1) + (s[:, 1:] == s[:, :1]).sum(1) // 2  # ties: the positive in the middle
    hit = rank < k
    gain = torch.where(hit, 1 / torch.log2(rank.double() + 2), torch.zeros((), dtype=torch.float64))
    return {f"HR@{k}": float(hit.double().mean()), f"NDCG@{k}": float(gain.mean())}
