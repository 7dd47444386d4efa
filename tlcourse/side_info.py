"""New movies, which nobody has rated yet: what their genres and year transfer, and what embeddings cannot.

A collaborative model knows a movie only through its ratings: a new one has an embedding
that never trained. ``SideInfoFactorization`` adds what is known of every movie before its
first rating, its genres and decade (``item_features``): a movie's vector is its own
embedding (only for movies with training ratings) plus a learned vector per genre and
decade, so a new comedy of the 1990s starts where the comedies of the 1990s are.

``new_item_split`` holds out every rating of a random ``new_item_fraction`` of the movies
(the new movies) and each user's latest rating of the others (the known movies); the arms
``collaborative`` (``MatrixFactorization``) and ``side information`` are scored on both,
each with the ``λ`` its own validation ratings choose (each user's latest known rating
before the test one), per seed.

Example:
    >>> from tlcourse.side_info import ITEM_ARMS
    >>> ITEM_ARMS
    ('collaborative', 'side information')
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from .names import unknown_choice
from .ratings_data import GENRES, Ratings
from .ratings_eval import rmse, split_per_user
from .recommender import MatrixFactorization, RecSettings, penalty_fits, rating_model
from .results import results_dir
from .run_grid import run_grid
from .sources import data_fingerprint

__all__ = ["ITEM_ARMS", "item_features", "SideInfoFactorization", "new_item_split", "cold_item_experiment"]

ITEM_ARMS = ("collaborative", "side information")
DECADES = tuple(range(1920, 2000, 10))  # 1920s … 1990s; earlier films join the 1920s, an unknown year its own column


def item_features(ratings: Ratings) -> torch.Tensor:
    """float ``(n_items, 19 + 9)``: each movie's genres (several may be 1) and its decade (one is 1)."""
    genres = torch.tensor([[float(g in gs) for g in GENRES] for gs in ratings.items["genres"]])
    decade = torch.zeros(ratings.n_items, len(DECADES) + 1)
    for i, year in enumerate(ratings.items["year"]):
        decade[i, len(DECADES) if year <= 0 else max(0, min(len(DECADES) - 1, (year - DECADES[0]) // 10))] = 1
    return torch.cat([genres, decade], dim=1)


class SideInfoFactorization(MatrixFactorization):
    """Matrix factorisation whose item vectors add a learned vector per feature (genre, decade).

    Args:
        features: float ``(n_items, F)``, e.g. ``item_features``.
        known: bool ``(n_items,)``: movies with training ratings; the others use their features alone.
        dim, mean, init: as ``MatrixFactorization``.
    """

    def __init__(self, n_users: int, features: torch.Tensor, known: torch.Tensor, *, dim: int = 32,
                 mean: float = 3.5, init: float = 0.05) -> None:
        super().__init__(n_users, len(features), dim=dim, mean=mean, init=init)
        self.register_buffer("features", features.float())
        self.register_buffer("known", known.float()[:, None])
        self.feature_vector = nn.Linear(features.shape[1], dim, bias=False)
        self.feature_bias = nn.Linear(features.shape[1], 1, bias=False)
        nn.init.normal_(self.feature_vector.weight, std=init)
        nn.init.zeros_(self.feature_bias.weight)

    def item_vectors(self, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, known = self.features[i], self.known[i]
        q = known * self.item(i) + self.feature_vector(f)
        b = (known * self.item_bias(i) + self.feature_bias(f)).squeeze(-1)
        return q, b


def new_item_split(ratings: Ratings, *, settings: RecSettings, seed: int,
                   min_ratings: int = 20) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of the training ratings, the new movies' ratings and the known movies' held-out ones.

    The new movies: ``new_item_fraction`` of those with ``min_ratings`` ratings or more, drawn
    with ``seed``; none of their ratings trains. Of the rest, each user's latest is held out.
    """
    counts = torch.bincount(ratings.item, minlength=ratings.n_items)
    eligible = torch.nonzero(counts >= min_ratings).flatten()
    if len(eligible) == 0:
        raise ValueError(f"no movie has {min_ratings} ratings or more, so none can be held out as new: "
                         f"lower min_ratings (the most any movie has is {int(counts.max())})")
    g = torch.Generator().manual_seed(seed)
    new = eligible[torch.randperm(len(eligible), generator=g)[: max(1, int(settings.new_item_fraction * len(eligible)))]]
    is_new = torch.zeros(ratings.n_items, dtype=torch.bool)
    is_new[new] = True
    new_test = torch.nonzero(is_new[ratings.item]).flatten()
    rest = torch.nonzero(~is_new[ratings.item]).flatten()
    train, known_test = split_per_user(ratings, by="time", among=rest)
    return train, new_test, known_test


def _run_item_arm(arm: str, ratings: Ratings, features: torch.Tensor, *, settings: RecSettings, seed: int,
                  device: torch.device | str) -> dict[str, Any]:
    """One arm on one seed's split: ``λ`` chosen on validation ratings, then the test touched once."""
    started = time.perf_counter()
    train, new_test, known_test = new_item_split(ratings, settings=settings, seed=seed)
    fit, val = split_per_user(ratings, by="time", among=train)  # each user's latest known rating before the test
    mean = float(ratings.rating[fit].mean())
    known = torch.bincount(ratings.item[fit], minlength=ratings.n_items) > 0

    def make() -> MatrixFactorization:
        if arm == "collaborative":
            return rating_model(ratings, fit, settings=settings)
        return SideInfoFactorization(ratings.n_users, features, known, dim=settings.dim, mean=mean)

    reg, _, model = min(penalty_fits(ratings, fit, val, settings=settings, make=make, seed=seed, device=device),
                        key=lambda f: f[1])
    scored = {name: rmse(model.score(ratings.user[t], ratings.item[t]), ratings.rating[t])
              for name, t in (("new movies", new_test), ("known movies", known_test))}
    return {"method": arm, "seed": seed, "λ": reg, **scored, "new_ratings": len(new_test),
            "seconds": round(time.perf_counter() - started, 2)}


def cold_item_experiment(ratings: Ratings, *, settings: RecSettings, arms: tuple[str, ...] = ITEM_ARMS,
                         seeds: tuple[int, ...] | None = None, device: torch.device | str = "cpu",
                         path: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """RMSE on new and on known movies of each arm × seed (each seed draws its new movies); saved, resumed.

    Returns:
        one row per run: ``method``, ``seed``, ``new movies`` and ``known movies`` (RMSE),
        ``new_ratings``, ``seconds``.
    """
    for arm in arms:
        if arm not in ITEM_ARMS:
            raise ValueError(unknown_choice("new-movie arm", arm, ITEM_ARMS))
    seeds = seeds or settings.seeds
    features = item_features(ratings)
    key = data_fingerprint(ratings.user, ratings.item, ratings.rating, features, repr(settings))
    path = Path(path) if path is not None else results_dir() / f"new-movies-{key}.json"
    plan = [(a, s) for s in seeds for a in arms]
    rows = run_grid(plan, lambda a, s: _run_item_arm(a, ratings, features, settings=settings, seed=s, device=device),
                    key=lambda r: (r["method"], r["seed"]), fingerprint=key, path=path, progress=progress)
    return pd.DataFrame(rows)
