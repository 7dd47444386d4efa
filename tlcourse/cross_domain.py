"""Transfer between two domains of one catalogue: user embeddings learned on dramas serve comedies.

``genre_domains`` splits the movies by genre into a *source* and a *target* domain (a movie
in both is left out of both). ``cold_start_split`` picks *cold* users, seeded: in the target
they keep only their first ``k`` ratings for training, the rest is their test set; every
other user's target ratings train. The arms predict the cold users' held-out ratings:

* ``item mean``: each movie's mean training rating (the global mean for an unrated one): the
  popularity baseline of rating prediction, which a model must beat;
* ``target only``: matrix factorisation trained on the target's training ratings alone;
* ``transfer``: the same, but each user's embedding and bias start from a model trained on
  the *source* domain's ratings (which hold no target movie), then everything trains;
* ``shuffled users``: as ``transfer``, but each user starts from *another* user's source
  embedding (a random permutation): a source that shares no users with the target.

``cross_domain_experiment`` runs arms × k × seeds, saving each run (``tl.run_grid``).

Example:
    >>> from tlcourse.cross_domain import CROSS_ARMS
    >>> CROSS_ARMS
    ('item mean', 'target only', 'transfer', 'shuffled users')
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .names import unknown_choice
from .ratings_data import Ratings
from .ratings_eval import item_means, rmse
from .recommender import MatrixFactorization, RecSettings, rating_model, train_ratings
from .results import results_dir
from .run_grid import run_grid
from .sources import data_fingerprint

__all__ = ["CROSS_ARMS", "genre_domains", "cold_start_split", "source_domain_model", "run_cross_arm",
           "cross_domain_experiment"]

CROSS_ARMS = ("item mean", "target only", "transfer", "shuffled users")


def genre_domains(ratings: Ratings, source: tuple[str, ...], target: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool masks over the ratings: of movies with a ``source`` genre and none of ``target``, and the reverse."""
    genres = ratings.items["genres"]
    in_source = torch.tensor([bool(set(g) & set(source)) for g in genres])
    in_target = torch.tensor([bool(set(g) & set(target)) for g in genres])
    item_source, item_target = in_source & ~in_target, in_target & ~in_source
    return item_source[ratings.item], item_target[ratings.item]


def cold_start_split(ratings: Ratings, target: torch.Tensor, *, k: int, settings: RecSettings,
                     seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the target's training ratings and of the cold users' held-out ones.

    Cold users (``cold_fraction`` of those with ``min_target`` target ratings or more, drawn with
    ``seed``) keep their ``k`` earliest target ratings for training; the rest are the test.
    The cold users of a seed are the same for every ``k``.
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
    mine = idx[torch.argsort(ratings.time[idx], stable=True)]  # in time order, ties in file order
    mine = mine[torch.argsort(ratings.user[mine], stable=True)]  # by user, then time
    users = ratings.user[mine]
    start = torch.cumsum(counts, 0)[users] - counts[users]  # where each user's ratings begin in `mine`
    held = is_cold[users] & (torch.arange(len(mine)) - start >= k)
    return mine[~held].sort().values, mine[held].sort().values


def source_domain_model(ratings: Ratings, source: torch.Tensor, *, settings: RecSettings, seed: int,
                        device: torch.device | str = "cpu") -> MatrixFactorization:
    """Matrix factorisation trained on every source-domain rating (no target movie is among them)."""
    idx = torch.nonzero(source).flatten()
    torch.manual_seed(seed)
    model = rating_model(ratings, idx, settings=settings, device=device)
    train_ratings(model, ratings, idx, settings=settings, seed=seed, device=device)
    return model


def run_cross_arm(arm: str, ratings: Ratings, *, train: torch.Tensor, test: torch.Tensor, settings: RecSettings,
                  seed: int, source_model: MatrixFactorization | None = None,
                  device: torch.device | str = "cpu") -> float:
    """The RMSE of one arm on the cold users' held-out target ratings."""
    if arm not in CROSS_ARMS:
        raise ValueError(unknown_choice("cross-domain arm", arm, CROSS_ARMS))
    actual = ratings.rating[test]
    if arm == "item mean":
        return rmse(item_means(ratings, train)[ratings.item[test]], actual)
    torch.manual_seed(seed)
    model = rating_model(ratings, train, settings=settings, device=device)
    if arm in ("transfer", "shuffled users"):
        if source_model is None:
            raise ValueError(f"the {arm} arm needs source_model: a MatrixFactorization trained on the source "
                             "(tl.source_domain_model)")
        rows = torch.arange(ratings.n_users)
        if arm == "shuffled users":
            rows = torch.randperm(ratings.n_users, generator=torch.Generator().manual_seed(seed))
        rows = rows.to(model.mean.device)
        with torch.no_grad():
            model.user.weight.copy_(source_model.user.weight[rows])
            model.user_bias.weight.copy_(source_model.user_bias.weight[rows])
    train_ratings(model, ratings, train, settings=settings, seed=seed, device=device)
    return rmse(model.score(ratings.user[test], ratings.item[test]), actual)


def cross_domain_experiment(ratings: Ratings, source: torch.Tensor, target: torch.Tensor, *, settings: RecSettings,
                            arms: tuple[str, ...] = CROSS_ARMS[:3], ks: tuple[int, ...] | None = None,
                            seeds: tuple[int, ...] | None = None, device: torch.device | str = "cpu",
                            path: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """RMSE of every arm × k × seed (default ``settings.ks`` and ``.seeds``); saved after each run, resumed.

    Each seed draws its cold users and trains its own source model; all arms of a seed share
    them. The results file ``results/cross-domain-<fingerprint>.json`` is named after the
    ratings, the two domains and the settings.

    Returns:
        one row per run: ``method``, ``k``, ``seed``, ``rmse``, ``test_ratings``, ``seconds``.
    """
    for arm in arms:
        if arm not in CROSS_ARMS:
            raise ValueError(unknown_choice("cross-domain arm", arm, CROSS_ARMS))
    ks, seeds = ks or settings.ks, seeds or settings.seeds
    key = data_fingerprint(ratings.user, ratings.item, ratings.rating, source, target, repr(settings))
    path = Path(path) if path is not None else results_dir() / f"cross-domain-{key}.json"
    sources: dict[int, MatrixFactorization] = {}

    def run(arm: str, k: int, seed: int) -> dict[str, Any]:
        started = time.perf_counter()
        if arm in ("transfer", "shuffled users") and seed not in sources:
            sources[seed] = source_domain_model(ratings, source, settings=settings, seed=seed, device=device)
        train, test = cold_start_split(ratings, target, k=k, settings=settings, seed=seed)
        value = run_cross_arm(arm, ratings, train=train, test=test, settings=settings, seed=seed,
                              source_model=sources.get(seed), device=device)
        return {"method": arm, "k": k, "seed": seed, "rmse": value, "test_ratings": len(test),
                "seconds": round(time.perf_counter() - started, 2)}

    plan = [(a, k, s) for k in ks for s in seeds for a in arms]
    return pd.DataFrame(run_grid(plan, run, key=lambda r: (r["method"], r["k"], r["seed"]), fingerprint=key,
                                 path=path, progress=progress))
