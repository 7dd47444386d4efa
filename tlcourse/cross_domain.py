"""Transfer between two domains of one catalogue: user embeddings learned on dramas serve comedies.

``genre_domains`` splits the movies by genre into a *source* and a *target* domain (a movie
in both is left out of both). ``cold_start_split`` picks *cold* users, seeded: in the target
they keep only their first ``k`` ratings for training, the rest is their test set; every
other user's target ratings train. Three arms predict the cold users' held-out ratings:

* ``item mean``: each movie's mean training rating (the global mean for an unrated one);
* ``target only``: matrix factorisation trained on the target's training ratings alone;
* ``transfer``: the same, but each user's embedding and bias start from a model trained on
  the *source* domain's ratings (which hold no target movie), then everything trains.

Example:
    >>> from tlcourse.cross_domain import CROSS_ARMS
    >>> CROSS_ARMS
    ('item mean', 'target only', 'transfer')
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ratings_data import Ratings
from .ratings_eval import rmse
from .recommender import MatrixFactorization, train_ratings

__all__ = ["CROSS_ARMS", "CrossDomainSettings", "genre_domains", "cold_start_split", "run_cross_arm"]

CROSS_ARMS = ("item mean", "target only", "transfer")


@dataclass(frozen=True)
class CrossDomainSettings:
    """Fixed in advance; nothing here is tuned on the cold users' test ratings."""

    dim: int = 32
    epochs: int = 10
    lr: float = 5e-3
    weight_decay: float = 1e-4
    cold_fraction: float = 0.2  # of the users with enough target ratings
    min_target: int = 25  # target ratings a user needs to be drawn as cold (k train + the rest test)


def genre_domains(ratings: Ratings, source: tuple[str, ...], target: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool masks over the ratings: of movies with a ``source`` genre and none of ``target``, and the reverse."""
    genres = ratings.items["genres"]
    in_source = torch.tensor([bool(set(g) & set(source)) for g in genres])
    in_target = torch.tensor([bool(set(g) & set(target)) for g in genres])
    item_source, item_target = in_source & ~in_target, in_target & ~in_source
    return item_source[ratings.item], item_target[ratings.item]


def cold_start_split(ratings: Ratings, target: torch.Tensor, *, k: int, settings: CrossDomainSettings,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the target's training ratings and of the cold users' held-out ones.

    Cold users (``cold_fraction`` of those with ``min_target`` target ratings or more, drawn with
    ``seed``) keep their ``k`` earliest target ratings for training; the rest are the test.
    """
    if not 1 <= k < settings.min_target:
        raise ValueError(f"k must be between 1 and {settings.min_target - 1}; got {k}")
    idx = torch.nonzero(target).flatten()
    counts = torch.bincount(ratings.user[idx], minlength=ratings.n_users)
    eligible = torch.nonzero(counts >= settings.min_target).flatten()
    g = torch.Generator().manual_seed(seed)
    cold = eligible[torch.randperm(len(eligible), generator=g)[: max(1, int(settings.cold_fraction * len(eligible)))]]
    is_cold = torch.zeros(ratings.n_users, dtype=torch.bool)
    is_cold[cold] = True
    train, test = [], []
    for u in range(ratings.n_users):
        mine = idx[ratings.user[idx] == u]
        if not is_cold[u]:
            train.append(mine)
            continue
        mine = mine[torch.argsort(ratings.time[mine].double() + mine.double() / 1e9)]
        train.append(mine[:k])
        test.append(mine[k:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def run_cross_arm(arm: str, ratings: Ratings, *, source: torch.Tensor, train: torch.Tensor, test: torch.Tensor,
                  settings: CrossDomainSettings, seed: int, source_model: MatrixFactorization | None = None) -> float:
    """The RMSE of one arm on the cold users' held-out target ratings."""
    actual = ratings.rating[test]
    if arm == "item mean":
        sums = torch.zeros(ratings.n_items).index_add_(0, ratings.item[train], ratings.rating[train])
        counts = torch.bincount(ratings.item[train], minlength=ratings.n_items).float()
        mean = ratings.rating[train].mean()
        per_item = torch.where(counts > 0, sums / counts.clamp(min=1), mean)
        return rmse(per_item[ratings.item[test]], actual)
    if arm not in CROSS_ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {', '.join(CROSS_ARMS)}")
    torch.manual_seed(seed)
    model = MatrixFactorization(ratings.n_users, ratings.n_items, dim=settings.dim,
                                mean=float(ratings.rating[train].mean()))
    if arm == "transfer":
        if source_model is None:
            raise ValueError("the transfer arm needs source_model: a MatrixFactorization trained on the source")
        with torch.no_grad():
            model.user.weight.copy_(source_model.user.weight)
            model.user_bias.weight.copy_(source_model.user_bias.weight)
    train_ratings(model, ratings, train, epochs=settings.epochs, lr=settings.lr, weight_decay=settings.weight_decay,
                  seed=seed)
    with torch.no_grad():
        predicted = model(torch.stack([ratings.user[test], ratings.item[test]], dim=1))
    return rmse(predicted, actual)
