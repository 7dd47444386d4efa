"""The recommender chapter's helpers (WIP, issue 16): MovieLens reading, the split, metrics, MF, cross-domain."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from tlcourse.cross_domain import CrossDomainSettings, cold_start_split, genre_domains, run_cross_arm
from tlcourse.ratings_data import Ratings
from tlcourse.ratings_eval import popularity, ranking_metrics, rmse, split_per_user
from tlcourse.recommender import MatrixFactorization


def toy(n_users: int = 4, n_items: int = 6) -> Ratings:
    """Every user rates every item once, at times that make the last item the latest."""
    u, i = torch.meshgrid(torch.arange(n_users), torch.arange(n_items), indexing="ij")
    u, i = u.flatten(), i.flatten()
    genres = [("Drama",), ("Drama",), ("Comedy",), ("Comedy",), ("Drama", "Comedy"), ("Horror",)][:n_items]
    return Ratings(u, i, (1 + (u + i) % 5).float(), i * 10 + u, pd.DataFrame({"title": list("abcdef")[:n_items],
                   "year": 1990, "genres": genres}), pd.DataFrame({"age": range(n_users)}), "toy")


def test_the_split_holds_out_each_users_latest_and_leaves_it_out_of_training():
    r = toy()
    train, test = split_per_user(r, test_per_user=1, by="time")
    assert not set(train.tolist()) & set(test.tolist()) and len(train) + len(test) == len(r.user)
    assert r.user[test].tolist() == [0, 1, 2, 3] and r.item[test].tolist() == [5, 5, 5, 5]
    random_train, random_test = split_per_user(r, by="random", seed=1)
    assert sorted(r.user[random_test].tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="by must be"):
        split_per_user(r, by="tim")


def test_rmse_and_the_ranking_metrics_on_a_hand_computed_case():
    assert rmse(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 5.0])) == pytest.approx(math.sqrt(2.5))
    r = Ratings(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]), torch.ones(3), torch.arange(3),
                pd.DataFrame({"title": list("abcd")}), pd.DataFrame({"age": [1, 2]}), "toy")
    scores = torch.tensor([0.0, 5.0, 1.0, 2.0])  # item 0 (user 0's held-out) ranks below 1, 3 and 2
    out = ranking_metrics(lambda u, i: scores[i], r, torch.tensor([1, 2]), torch.tensor([0]), negatives=2, k=3)
    # user 0's negatives: two of items 1, 2, 3, all scored above item 0: rank 2, inside the top 3
    assert out == {"HR@3": 1.0, "NDCG@3": pytest.approx(1 / math.log2(4))}
    assert popularity(r, torch.tensor([1, 2])).tolist() == [0.0, 1.0, 1.0, 0.0]


def test_domains_split_the_catalogue_and_a_movie_in_both_is_in_neither():
    r = toy()
    source, target = genre_domains(r, ("Drama",), ("Comedy",))
    assert set(r.item[source].tolist()) == {0, 1} and set(r.item[target].tolist()) == {2, 3}


def test_the_transfer_arm_starts_from_the_source_users_embeddings(monkeypatch):
    r = toy(n_users=10, n_items=6)
    source, target = genre_domains(r, ("Drama",), ("Comedy",))
    settings = CrossDomainSettings(dim=4, epochs=1, cold_fraction=0.5, min_target=2)
    train, test = cold_start_split(r, target, k=1, settings=settings, seed=0)
    assert not set(train.tolist()) & set(test.tolist()) and len(test) > 0
    source_model = MatrixFactorization(r.n_users, r.n_items, dim=4)
    seen = {}

    def no_training(model, *args, **kwargs):  # what the transfer arm trains from
        seen["user"] = model.user.weight.detach().clone()
        return []

    monkeypatch.setattr("tlcourse.cross_domain.train_ratings", no_training)
    run_cross_arm("transfer", r, source=source, train=train, test=test, settings=settings, seed=0,
                  source_model=source_model)
    assert torch.equal(seen["user"], source_model.user.weight)
