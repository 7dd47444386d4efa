"""The recommender chapter's helpers (issue 16): MovieLens reading, the splits, metrics, MF, cross-domain, new movies.

Every check is against a reference computed by hand (or by a plain loop) on a toy small
enough to read; one test reads the real MovieLens-100k and is skipped where it is not installed.
"""

from __future__ import annotations

import io
import json
import math
import urllib.request
import zipfile
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

import tlcourse.cross_domain
import tlcourse.ratings_data
from tlcourse.config import get_profile
from tlcourse.cross_domain import (CROSS_ARMS, cold_start_split, cross_domain_experiment, genre_domains,
                                   run_cross_arm)
from tlcourse.data import DataUnavailableError
from tlcourse.ratings_data import GENRES, Ratings, load_movielens, movielens_folder
from tlcourse.ratings_eval import popularity, ranking_metrics, rmse, split_per_user
from tlcourse.recommender import (REC_SETTINGS, MatrixFactorization, RecSettings, choose_penalty, click_examples,
                                  click_model, penalised, ranking_runs, rec_settings)
from tlcourse.run_grid import run_grid
from tlcourse.side_info import (ITEM_ARMS, SideInfoFactorization, cold_item_experiment, item_features,
                                new_item_split)

# tiny sizes for anything that trains: every model here fits in milliseconds
TINY = RecSettings(dim=2, epochs=1, click_epochs=1, negatives=2, batch_size=64, regs=(0.0, 10.0))


# --------------------------------------------------------------------------------------------- toys
def toy(n_users: int = 4, n_items: int = 6) -> Ratings:
    """Every user rates every item once, at times that make the last item the latest."""
    u, i = torch.meshgrid(torch.arange(n_users), torch.arange(n_items), indexing="ij")
    u, i = u.flatten(), i.flatten()
    genres = [("Drama",), ("Drama",), ("Comedy",), ("Comedy",), ("Drama", "Comedy"), ("Horror",)][:n_items]
    return Ratings(u, i, (1 + (u + i) % 5).float(), i * 10 + u, pd.DataFrame({"title": list("abcdef")[:n_items],
                   "year": 1990, "genres": genres}), pd.DataFrame({"age": range(n_users)}), "toy")


def ratings_of(pairs: list[tuple[int, int]], *, n_users: int, n_items: int, stars: list[float] | None = None,
               times: list[int] | None = None, genres: list[tuple[str, ...]] | None = None,
               years: list[int] | None = None) -> Ratings:
    """A Ratings of the (user, item) ``pairs`` given, in that order (times default to the position)."""
    n = len(pairs)
    return Ratings(torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]),
                   torch.tensor(stars if stars is not None else [3.0] * n),
                   torch.tensor(times if times is not None else list(range(n))),
                   pd.DataFrame({"title": [f"m{i}" for i in range(n_items)], "year": years or [1990] * n_items,
                                 "genres": genres or [("Drama",)] * n_items}),
                   pd.DataFrame({"age": [30] * n_users}), "toy")


def sparse_toy(n_users: int = 6, n_items: int = 30, per_user: int = 8, seed: int = 0) -> Ratings:
    """Each user rates ``per_user`` random movies, at random distinct times, with random stars."""
    g = torch.Generator().manual_seed(seed)
    pairs = [(u, int(i)) for u in range(n_users) for i in torch.randperm(n_items, generator=g)[:per_user]]
    stars = (1 + torch.randint(5, (len(pairs),), generator=g)).float().tolist()
    times = torch.randperm(len(pairs), generator=g).mul(7).add(10**9).tolist()
    return ratings_of(pairs, n_users=n_users, n_items=n_items, stars=stars, times=times)


def domains_toy(n_users: int = 8, seed: int = 0) -> Ratings:
    """Every user rates every movie: 0-3 dramas (source), 4-9 comedies (target), 10 both (neither); random times."""
    genres = [("Drama",)] * 4 + [("Comedy",)] * 6 + [("Drama", "Comedy")]
    g = torch.Generator().manual_seed(seed)
    pairs = [(u, i) for u in range(n_users) for i in range(len(genres))]
    stars = (1 + torch.randint(5, (len(pairs),), generator=g)).float().tolist()
    times = torch.randperm(len(pairs), generator=g).add(10**9).tolist()
    return ratings_of(pairs, n_users=n_users, n_items=len(genres), stars=stars, times=times, genres=genres)


def as_set(idx: torch.Tensor) -> set[int]:
    return set(idx.tolist())


# ------------------------------------------------------------------------------------------ metrics
def test_rmse_is_the_root_of_the_mean_squared_error():
    # errors 1 and 2: sqrt((1 + 4) / 2)
    assert rmse(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 5.0])) == pytest.approx(math.sqrt(2.5))
    assert rmse(torch.tensor([4, 4]), torch.tensor([4, 4])) == 0.0  # ints are fine


def test_rmse_refuses_tensors_of_different_shapes_or_none():
    with pytest.raises(ValueError, match="one shape"):
        rmse(torch.tensor([1.0, 2.0]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="non-empty"):
        rmse(torch.tensor([]), torch.tensor([]))


def test_popularity_counts_each_items_training_ratings():
    r = ratings_of([(0, 0), (0, 1), (1, 1), (1, 3), (2, 1)], n_users=3, n_items=4)
    train = torch.tensor([0, 1, 2, 4])  # rating 3, of movie 3, is not in training
    assert popularity(r, train).tolist() == [1.0, 3.0, 0.0, 0.0]


def test_hr_and_ndcg_follow_the_hand_computed_rank_of_each_held_out_item():
    # user 0 rated item 0, user 1 rated item 1; each has the 4 other items unrated, so 4 negatives are all of them
    r = ratings_of([(0, 0), (1, 1)], n_users=2, n_items=5)
    table = torch.tensor([[2.5, 5.0, 3.0, 1.0, 0.0],  # user 0: items 1, 2 above item 0: rank 2
                          [9.0, 8.0, 1.0, 2.0, 3.0]])  # user 1: item 0 above item 1: rank 1
    def score(u, i):
        return table[u, i]
    both = torch.tensor([0, 1])
    assert ranking_metrics(score, r, both, negatives=4, k=1) == {"HR@1": 0.0, "NDCG@1": 0.0}
    assert ranking_metrics(score, r, both, negatives=4, k=2) == pytest.approx(
        {"HR@2": 0.5, "NDCG@2": 0.5 / math.log2(3)})
    assert ranking_metrics(score, r, both, negatives=4, k=3) == pytest.approx(
        {"HR@3": 1.0, "NDCG@3": (1 / math.log2(4) + 1 / math.log2(3)) / 2})


def test_a_positive_tied_with_negatives_is_ranked_in_the_middle_of_them():
    r = ratings_of([(0, 0)], n_users=1, n_items=5)  # item 0 held out, items 1-4 the negatives
    def ranked(scores):  # the positive's 0-based rank, read off HR@k for k = 1 … 5
        hits = [ranking_metrics(lambda u, i: torch.tensor(scores)[i], r, torch.tensor([0]), negatives=4, k=k)[f"HR@{k}"]
                for k in range(1, 6)]
        return hits.index(1.0)
    assert ranked([1.0, 1.0, 1.0, 1.0, 1.0]) == 2  # 0 above, 4 tied: 0 + 4 // 2
    assert ranked([1.0, 1.0, 0.0, 0.0, 0.0]) == 0  # 0 above, 1 tied: 0 + 1 // 2
    assert ranked([1.0, 2.0, 1.0, 1.0, 0.0]) == 2  # 1 above, 2 tied: 1 + 2 // 2
    out = ranking_metrics(lambda u, i: torch.ones(i.shape), r, torch.tensor([0]), negatives=4, k=3)
    assert out == pytest.approx({"HR@3": 1.0, "NDCG@3": 1 / math.log2(4)})


def test_candidates_restrict_the_negatives_to_the_candidate_items():
    r = ratings_of([(0, 0)], n_users=1, n_items=8)
    candidates = torch.tensor([False, False, False, False, True, True, True, False])  # items 4, 5, 6
    seen = []
    def score(u, i):  # items 1-3 and 7 would beat the positive; 4-6 would not
        seen.append(i.clone())
        return torch.tensor([5.0, 9.0, 9.0, 9.0, 1.0, 2.0, 3.0, 9.0])[i]
    assert ranking_metrics(score, r, torch.tensor([0]), negatives=3, k=1, candidates=candidates)["HR@1"] == 1.0
    assert sorted(seen[0][0, 1:].tolist()) == [4, 5, 6] and seen[0][0, 0] == 0  # the positive first, then negatives
    assert ranking_metrics(score, r, torch.tensor([0]), negatives=3, k=1)["HR@1"] == 0.0  # without: some 9s drawn


def test_negatives_are_never_items_the_user_rated_in_training_or_test():
    r = sparse_toy(n_users=5, n_items=20, per_user=8)
    _, test = split_per_user(r, test_per_user=2)
    rated = {(int(u), int(i)) for u, i in zip(r.user, r.item)}
    seen = []
    def score(u, i):
        seen.append((u.clone(), i.clone()))
        return torch.zeros(i.shape)
    ranking_metrics(score, r, test, negatives=12, k=5)  # 20 - 8 = 12: every unrated item is drawn
    users, items = seen[0]
    assert torch.equal(items[:, 0], r.item[test]) and torch.equal(users[:, 0], r.user[test])
    negatives = {(int(u), int(i)) for u, i in zip(users[:, 1:].flatten(), items[:, 1:].flatten())}
    assert not negatives & rated
    assert all(len(set(row.tolist())) == 12 for row in items[:, 1:])  # drawn without replacement


def test_the_negatives_depend_on_the_seed_only():
    r = sparse_toy(n_users=5, n_items=40, per_user=8)
    _, test = split_per_user(r)
    def drawn(seed):
        seen = []
        ranking_metrics(lambda u, i: seen.append(i.clone()) or torch.zeros(i.shape), r, test, negatives=5, seed=seed)
        return seen[0]
    assert torch.equal(drawn(0), drawn(0)) and not torch.equal(drawn(0), drawn(1))


def test_a_user_with_too_few_unrated_candidates_raises_a_clear_value_error():
    r = ratings_of([(0, 0), (0, 1), (0, 2), (1, 0)], n_users=2, n_items=5)  # user 0: items 3 and 4 unrated
    with pytest.raises(ValueError, match=r"user 0 has rated all but 2 candidate items: fewer than the 3 negatives"):
        ranking_metrics(lambda u, i: torch.zeros(i.shape), r, torch.tensor([0]), negatives=3)
    only_3 = torch.tensor([False, False, False, True, False])  # user 1 has one unrated candidate, needs 2
    with pytest.raises(ValueError, match=r"user 1 has rated all but 1 candidate items"):
        ranking_metrics(lambda u, i: torch.zeros(i.shape), r, torch.tensor([3]), negatives=2, candidates=only_3)


# -------------------------------------------------------------------------------------------- split
def test_the_time_split_holds_out_each_users_latest_ratings_and_none_trains():
    r = toy()  # item 5 is each user's latest, then item 4
    train, test = split_per_user(r, test_per_user=2, by="time")
    assert not as_set(train) & as_set(test) and as_set(train) | as_set(test) == set(range(len(r.user)))
    assert sorted(zip(r.user[test].tolist(), r.item[test].tolist())) == [(u, i) for u in range(4) for i in (4, 5)]


def test_the_time_split_breaks_ties_in_time_by_position():
    t = 881250949  # one second, as a real MovieLens timestamp: the later rating in the file is held out
    r = ratings_of([(0, 0), (0, 1), (0, 2), (0, 3)], n_users=1, n_items=4, times=[t - 5, t, t, t])
    train, test = split_per_user(r, by="time")
    assert test.tolist() == [3] and train.tolist() == [0, 1, 2]


def test_the_random_split_holds_out_that_many_of_each_user_seeded_and_none_trains():
    r = toy(n_users=5, n_items=6)
    train, test = split_per_user(r, test_per_user=2, by="random", seed=3)
    assert not as_set(train) & as_set(test) and len(train) + len(test) == len(r.user)
    assert torch.bincount(r.user[test]).tolist() == [2] * 5
    again = split_per_user(r, test_per_user=2, by="random", seed=3)
    assert torch.equal(again[1], test)
    others = [split_per_user(r, test_per_user=2, by="random", seed=s)[1] for s in range(4, 8)]
    assert any(not torch.equal(o, test) for o in others)


def test_a_user_with_test_per_user_ratings_or_fewer_keeps_them_all_for_training():
    # user 0: 2 ratings, user 1: 3 ratings, user 2: 1 rating
    r = ratings_of([(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 2)], n_users=3, n_items=3)
    for by in ("time", "random"):
        train, test = split_per_user(r, test_per_user=2, by=by)
        assert r.user[test].tolist() == [1, 1], by
        assert as_set(train) == {0, 1, 5} | (as_set(torch.arange(2, 5)) - as_set(test)), by
    assert split_per_user(r, test_per_user=2, by="time")[1].tolist() == [3, 4]


def test_among_splits_only_the_ratings_it_indexes():
    r = toy(n_users=3, n_items=6)
    among = torch.nonzero(r.item < 4).flatten()  # items 0-3: item 3 is now each user's latest
    fit, held = split_per_user(r, by="time", among=among)
    assert as_set(fit) | as_set(held) == as_set(among) and not as_set(fit) & as_set(held)
    assert r.item[held].tolist() == [3, 3, 3] and r.user[held].tolist() == [0, 1, 2]
    fit_r, held_r = split_per_user(r, by="random", seed=0, among=among)
    assert as_set(fit_r) | as_set(held_r) == as_set(among) and torch.bincount(r.user[held_r]).tolist() == [1, 1, 1]


def test_the_split_rejects_an_unknown_order_or_a_test_size_below_one():
    with pytest.raises(ValueError, match="by must be 'time' or 'random'"):
        split_per_user(toy(), by="tim")
    with pytest.raises(ValueError, match="test_per_user must be at least 1"):
        split_per_user(toy(), test_per_user=0)


# --------------------------------------------------------------------------------- matrix factorisation
def test_mf_predicts_the_mean_plus_both_biases_plus_the_dot_product():
    mf = MatrixFactorization(2, 3, dim=2, mean=3.0)
    with torch.no_grad():
        mf.user.weight.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0]]))
        mf.item.weight.copy_(torch.tensor([[1.0, 0.0], [2.0, 1.0], [-1.0, 3.0]]))
        mf.user_bias.weight.copy_(torch.tensor([[0.1], [-0.2]]))
        mf.item_bias.weight.copy_(torch.tensor([[0.3], [0.0], [-0.5]]))
    out = mf(torch.tensor([[0, 1], [1, 2]]))
    assert out.tolist() == pytest.approx([3.0 + 0.1 + 0.0 + (2 + 2), 3.0 - 0.2 - 0.5 + (-0.5 - 3)])
    assert mf.score(torch.tensor([[0, 1]]), torch.tensor([[1, 2]]))[0].tolist() == pytest.approx(out.tolist())


def test_the_penalty_is_the_batch_mean_of_the_squared_rows_and_biases():
    torch.manual_seed(0)
    mf = MatrixFactorization(3, 4, dim=2, init=1.0)
    with torch.no_grad():
        mf.user_bias.weight.normal_()
        mf.item_bias.weight.normal_()
    pairs = torch.tensor([[0, 1], [2, 3], [0, 1]])  # a row used twice counts twice
    mf(pairs)
    P, Q = mf.user.weight.tolist(), mf.item.weight.tolist()
    bu, bi = mf.user_bias.weight.flatten().tolist(), mf.item_bias.weight.flatten().tolist()
    by_hand = sum(sum(x * x for x in P[u]) + sum(x * x for x in Q[i]) + bu[u] ** 2 + bi[i] ** 2
                  for u, i in pairs.tolist()) / len(pairs)
    assert float(mf.penalty.detach()) == pytest.approx(by_hand)


def test_penalised_adds_reg_times_the_last_batchs_penalty():
    torch.manual_seed(0)
    mf = MatrixFactorization(3, 4, dim=2, init=1.0)
    with torch.no_grad():
        out = mf(torch.tensor([[0, 1], [2, 3]]))
    y = torch.tensor([1.0, 2.0])
    loss = penalised(mf, torch.nn.functional.mse_loss, 0.5)(out, y)
    assert float(loss) == pytest.approx(float(torch.nn.functional.mse_loss(out, y) + 0.5 * mf.penalty))


def test_rec_settings_are_the_profiles_entry():
    assert set(REC_SETTINGS) == {"quick", "cpu", "full"}
    for name in REC_SETTINGS:
        assert rec_settings(get_profile(name)) is REC_SETTINGS[name]


# ------------------------------------------------------------------------------------- click examples
def test_click_examples_are_the_ratings_labelled_1_then_the_negatives_labelled_0():
    r = sparse_toy(n_users=4, n_items=20, per_user=6)
    train, _ = split_per_user(r, test_per_user=2)
    pairs, labels = click_examples(r, train, negatives=3, seed=0)
    n = len(train)
    assert pairs.shape == (4 * n, 2) and labels.shape == (4 * n,)
    assert labels[:n].eq(1).all() and labels[n:].eq(0).all()
    assert torch.equal(pairs[:n], torch.stack([r.user[train], r.item[train]], 1))
    assert torch.equal(pairs[n:, 0], r.user[train].repeat_interleave(3))  # 3 negatives per rating, its user's
    again, _ = click_examples(r, train, negatives=3, seed=0)
    assert torch.equal(again, pairs)


def test_click_negatives_are_never_movies_the_user_rated_anywhere():
    r = sparse_toy(n_users=4, n_items=12, per_user=8)
    train, _ = split_per_user(r, test_per_user=3)  # the 3 held out of each user are rated too
    rated = {(int(u), int(i)) for u, i in zip(r.user, r.item)}
    pairs, labels = click_examples(r, train, negatives=5, seed=1)
    negatives = {tuple(p) for p in pairs[labels == 0].tolist()}
    assert negatives and not negatives & rated


def test_a_user_who_rated_all_movies_but_one_gets_that_one_as_every_negative():
    pairs = [(0, i) for i in range(9)] + [(1, 0)]  # user 0 has only movie 9 left unrated
    r = ratings_of(pairs, n_users=2, n_items=10)
    out, labels = click_examples(r, torch.arange(9), negatives=4, seed=0)
    assert out[labels == 0].tolist() == [[0, 9]] * 36


def test_click_model_has_no_global_mean_and_is_the_same_for_a_seed():
    r = sparse_toy()
    train, _ = split_per_user(r)
    a, b = (click_model(r, train, settings=TINY, reg=0.1, seed=2) for _ in range(2))
    assert float(a.mean) == 0.0
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_choose_penalty_picks_the_lowest_validation_rmse_and_reads_no_test_rating():
    r = sparse_toy(n_users=6, n_items=30, per_user=8)
    train, test = split_per_user(r, test_per_user=2)
    fit, val = split_per_user(r, among=train)
    blind = replace(r, rating=r.rating.clone().index_fill_(0, test, float("nan")))  # a test rating read is NaN
    reg, table = choose_penalty(blind, fit, val, settings=TINY)
    assert list(table.index) == list(TINY.regs) and table["validation RMSE"].notna().all()
    assert reg == table["validation RMSE"].idxmin()


def test_ranking_runs_score_every_ranker_of_every_seed_against_that_seeds_negatives():
    r = sparse_toy(n_users=5, n_items=130, per_user=10)  # 120 unrated movies each: enough for 99 negatives
    train, test = split_per_user(r)
    runs = ranking_runs(r, train, test, settings=TINY, seeds=(0, 1))
    assert list(zip(runs["method"], runs["seed"])) == [(m, s) for s in (0, 1) for m in
                                                       ("popularity", "rating model", "click model")]
    pop = popularity(r, train)
    for seed in (0, 1):
        expected = ranking_metrics(lambda u, i: pop[i], r, test, seed=seed)
        row = runs[(runs["method"] == "popularity") & (runs["seed"] == seed)].iloc[0]
        assert (row["HR@10"], row["NDCG@10"]) == pytest.approx((expected["HR@10"], expected["NDCG@10"]))
    assert runs["HR@10"].between(0, 1).all()


# ------------------------------------------------------------------------------------- cross-domain
def test_domains_split_the_catalogue_and_a_movie_in_both_is_in_neither():
    r = toy()
    source, target = genre_domains(r, ("Drama",), ("Comedy",))
    assert set(r.item[source].tolist()) == {0, 1} and set(r.item[target].tolist()) == {2, 3}


def cold_settings(**changes) -> RecSettings:
    return replace(TINY, **{"min_target": 4, "cold_fraction": 0.5, **changes})


def test_cold_users_keep_exactly_their_k_earliest_target_ratings_and_none_of_the_rest_trains():
    r = domains_toy()
    _, target = genre_domains(r, ("Drama",), ("Comedy",))
    train, test = cold_start_split(r, target, k=2, settings=cold_settings(), seed=0)
    target_idx = as_set(torch.nonzero(target).flatten())
    assert not as_set(train) & as_set(test) and as_set(train) | as_set(test) == target_idx  # no source rating
    cold = set(r.user[test].tolist())
    assert len(cold) == 4  # half of the 8 users with >= 4 target ratings
    for u in range(r.n_users):
        mine = sorted((int(r.time[j]), j) for j in target_idx if r.user[j] == u)
        kept = {j for j in train.tolist() if r.user[j] == u}
        assert kept == ({j for _, j in mine[:2]} if u in cold else {j for _, j in mine}), u


def test_cold_users_are_the_same_for_every_k_and_keep_more_as_k_grows():
    r = domains_toy()
    _, target = genre_domains(r, ("Drama",), ("Comedy",))
    splits = {k: cold_start_split(r, target, k=k, settings=cold_settings(), seed=1) for k in (1, 2, 3)}
    assert len({frozenset(r.user[test].tolist()) for _, test in splits.values()}) == 1
    assert as_set(splits[1][0]) < as_set(splits[2][0]) < as_set(splits[3][0])
    other_seed = cold_start_split(r, target, k=1, settings=cold_settings(), seed=5)[1]
    assert set(r.user[other_seed].tolist()) != set(r.user[splits[1][1]].tolist())


def test_cold_users_keep_the_first_of_tied_ratings_in_file_order():
    n, t = 40, 881250949  # one user rating 40 comedies within the same second, as MovieLens users do
    r = ratings_of([(0, i) for i in range(n)], n_users=1, n_items=n, times=[t] * n, genres=[("Comedy",)] * n)
    train, _ = cold_start_split(r, torch.ones(n, dtype=torch.bool), k=3, settings=cold_settings(cold_fraction=1.0),
                                seed=0)
    assert train.tolist() == [0, 1, 2]


def test_cold_start_split_refuses_k_outside_1_to_min_target_minus_1():
    r = domains_toy()
    _, target = genre_domains(r, ("Drama",), ("Comedy",))
    for k in (0, 4):
        with pytest.raises(ValueError, match="k must be between 1 and 3"):
            cold_start_split(r, target, k=k, settings=cold_settings(), seed=0)


def starts_of(arm: str, monkeypatch: pytest.MonkeyPatch, seed: int = 0):
    """The user rows and biases ``arm``'s model starts training from, and the source model it was given."""
    r = toy(n_users=10, n_items=6)
    _, target = genre_domains(r, ("Drama",), ("Comedy",))
    settings = replace(TINY, cold_fraction=0.5, min_target=2)
    train, test = cold_start_split(r, target, k=1, settings=settings, seed=0)
    torch.manual_seed(123)
    source_model = MatrixFactorization(r.n_users, r.n_items, dim=2, init=1.0)
    with torch.no_grad():
        source_model.user_bias.weight.normal_()  # so that copying the biases shows
    seen = {}

    def no_training(model, *args, **kwargs):  # what the arm trains from
        seen["user"] = model.user.weight.detach().clone()
        seen["bias"] = model.user_bias.weight.detach().clone()
        return []

    monkeypatch.setattr(tlcourse.cross_domain, "train_ratings", no_training)
    run_cross_arm(arm, r, train=train, test=test, settings=settings, seed=seed, source_model=source_model)
    return seen["user"], seen["bias"], source_model


def test_the_transfer_arm_starts_from_the_source_users_embeddings_and_biases(monkeypatch):
    user, bias, source_model = starts_of("transfer", monkeypatch)
    assert torch.equal(user, source_model.user.weight) and torch.equal(bias, source_model.user_bias.weight)


def test_the_shuffled_users_arm_starts_from_a_permutation_of_the_source_users(monkeypatch):
    user, bias, source_model = starts_of("shuffled users", monkeypatch)
    source_rows = source_model.user.weight.detach()
    # whose source row each user starts from (the rows are random normals: all distinct)
    whose = [int(torch.nonzero((source_rows == row).all(1)).flatten()[0]) for row in user]
    assert sorted(whose) == list(range(10)) and whose != list(range(10))
    assert torch.equal(bias, source_model.user_bias.weight[whose])  # each user's bias moves with its embedding


def test_the_target_only_arm_does_not_start_from_the_source(monkeypatch):
    user, _, source_model = starts_of("target only", monkeypatch)
    assert not torch.equal(user, source_model.user.weight)


def test_the_item_mean_arm_predicts_each_movies_training_mean_and_the_global_mean_for_a_new_one():
    # train: movie 0 rated 2 and 4 (mean 3), movie 1 rated 5; global training mean (2+4+5)/3 = 11/3
    r = ratings_of([(0, 0), (1, 0), (2, 1), (3, 0), (3, 1), (3, 2)], n_users=4, n_items=3,
                   stars=[2.0, 4.0, 5.0, 1.0, 4.0, 3.0])
    out = run_cross_arm("item mean", r, train=torch.tensor([0, 1, 2]), test=torch.tensor([3, 4, 5]),
                        settings=TINY, seed=0)
    assert out == pytest.approx(math.sqrt(((3 - 1) ** 2 + (5 - 4) ** 2 + (11 / 3 - 3) ** 2) / 3))


def test_run_cross_arm_refuses_an_unknown_arm_and_a_transfer_without_source():
    r = toy()
    with pytest.raises(ValueError, match="did you mean 'transfer'"):
        run_cross_arm("tranfser", r, train=torch.tensor([0]), test=torch.tensor([1]), settings=TINY, seed=0)
    with pytest.raises(ValueError, match="needs source_model"):
        run_cross_arm("transfer", r, train=torch.tensor([0]), test=torch.tensor([1]), settings=TINY, seed=0)


def count_training(monkeypatch: pytest.MonkeyPatch, module) -> list[int]:
    """Wrap ``module.train_ratings`` so that each call is counted (it still trains)."""
    calls: list[int] = []
    real = module.train_ratings

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "train_ratings", counted)
    return calls


def test_the_cross_domain_experiment_saves_its_runs_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    r = domains_toy()
    source, target = genre_domains(r, ("Drama",), ("Comedy",))
    path = tmp_path / "cross.json"
    calls = count_training(monkeypatch, tlcourse.cross_domain)
    kwargs = dict(settings=cold_settings(), arms=CROSS_ARMS, ks=(1, 2), seeds=(0,), path=path, progress=False)
    first = cross_domain_experiment(r, source, target, **kwargs)
    # per k: target only, transfer, shuffled users; plus one source model for the seed, shared by both k
    assert len(calls) == 3 * 2 + 1
    assert list(zip(first["method"], first["k"])) == [(a, k) for k in (1, 2) for a in CROSS_ARMS]
    assert first["rmse"].gt(0).all() and first["test_ratings"].gt(0).all()
    assert len(json.loads(path.read_text())["runs"]) == 8
    calls.clear()
    again = cross_domain_experiment(r, source, target, **kwargs)
    assert calls == []
    pd.testing.assert_frame_equal(again, first)


def test_the_cross_domain_experiment_names_the_arms_when_one_is_misspelt(tmp_path):
    r = domains_toy()
    source, target = genre_domains(r, ("Drama",), ("Comedy",))
    with pytest.raises(ValueError, match=r"'shufled users' \(did you mean 'shuffled users'\?\); choose from item mean, "
                                         r"target only, transfer, shuffled users"):
        cross_domain_experiment(r, source, target, settings=cold_settings(), arms=("transfer", "shufled users"),
                                path=tmp_path / "x.json", progress=False)
    assert not (tmp_path / "x.json").exists()


# --------------------------------------------------------------------------------------- new movies
def test_item_features_are_the_genre_flags_and_one_decade():
    r = ratings_of([(0, 0)], n_users=1, n_items=5, years=[1995, 1925, 1910, 0, 2003],
                   genres=[("Comedy", "Drama"), ("Horror",), ("unknown",), ("Drama",), ("Sci-Fi",)])
    f = item_features(r)
    assert f.shape == (5, 19 + 9)
    assert [sorted(GENRES[j] for j in torch.nonzero(row[:19]).flatten()) for row in f] == [
        ["Comedy", "Drama"], ["Horror"], ["unknown"], ["Drama"], ["Sci-Fi"]]
    # decade columns 1920s … 1990s, then "unknown year"; before 1920 joins the 1920s, after 1999 the 1990s
    assert [torch.nonzero(row[19:]).flatten().tolist() for row in f] == [[7], [0], [0], [8], [7]]


def test_an_unknown_movie_is_scored_from_its_features_alone():
    features = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    known = torch.tensor([False, False, False, True])  # movies 0 and 1: unknown, same features; movie 3 known
    torch.manual_seed(0)
    model = SideInfoFactorization(3, features, known, dim=4, mean=3.0, init=1.0)
    with torch.no_grad():
        model.feature_bias.weight.normal_()
        model.item_bias.weight.normal_()
    users = torch.arange(3).repeat_interleave(4).view(3, 4)
    items = torch.arange(4).repeat(3, 1)
    before = model.score(users, items)
    assert torch.equal(before[:, 0], before[:, 1])  # equal features, no ratings: equal scores, for every user
    with torch.no_grad():  # an unknown movie's own embedding and bias play no part; a known one's do
        model.item.weight[:3].normal_()
        model.item_bias.weight[:3].normal_()
        model.item.weight[3].normal_()
    after = model.score(users, items)
    assert torch.equal(after[:, :3], before[:, :3]) and not torch.equal(after[:, 3], before[:, 3])


def new_items_toy() -> Ratings:
    """About 28 ratings a movie: every movie can be drawn as new (cold_item_experiment needs 20)."""
    return sparse_toy(n_users=40, n_items=10, per_user=7, seed=4)


def test_new_item_split_keeps_every_rating_of_a_new_movie_out_of_training():
    r = new_items_toy()
    settings = replace(TINY, new_item_fraction=0.5)
    train, new_test, known_test = new_item_split(r, settings=settings, seed=0, min_ratings=25)
    parts = [as_set(train), as_set(new_test), as_set(known_test)]
    assert sum(map(len, parts)) == len(r.user) and set.union(*parts) == set(range(len(r.user)))
    new = set(r.item[new_test].tolist())
    eligible = int((torch.bincount(r.item, minlength=r.n_items) >= 25).sum())
    assert 2 <= eligible < r.n_items and len(new) == eligible // 2
    assert new.isdisjoint(r.item[train].tolist()) and new.isdisjoint(r.item[known_test].tolist())
    assert as_set(new_test) == {j for j in range(len(r.user)) if int(r.item[j]) in new}  # all of their ratings
    for j in known_test.tolist():  # each user's latest rating of a known movie
        u = int(r.user[j])
        assert int(r.time[j]) == max(int(r.time[i]) for i in train.tolist() + [j] if int(r.user[i]) == u)


def test_the_new_movie_experiment_saves_its_runs_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    import tlcourse.recommender

    r = new_items_toy()
    settings = replace(TINY, new_item_fraction=0.5)
    calls = count_training(monkeypatch, tlcourse.recommender)
    kwargs = dict(settings=settings, seeds=(0, 1), path=tmp_path / "new.json", progress=False)
    first = cold_item_experiment(r, **kwargs)
    # each arm of each seed tries every λ on its own validation ratings
    assert len(calls) == 4 * len(settings.regs)
    assert list(zip(first["method"], first["seed"])) == [(a, s) for s in (0, 1) for a in ITEM_ARMS]
    assert set(first["λ"]) <= set(settings.regs)
    assert first[["new movies", "known movies"]].gt(0).all().all()
    calls.clear()
    pd.testing.assert_frame_equal(cold_item_experiment(r, **kwargs), first)
    assert calls == []
    with pytest.raises(ValueError, match="did you mean 'side information'"):
        cold_item_experiment(r, settings=settings, arms=("side informaton",), path=tmp_path / "y.json")


# ----------------------------------------------------------------------------------------- run_grid
def test_run_grid_resumes_without_rerunning_finished_combinations(tmp_path):
    path, calls = tmp_path / "grid.json", []

    def square(n):
        calls.append(n)
        return {"n": n, "square": n * n}

    def grid(plan):
        return run_grid(plan, square, key=lambda r: (r["n"],), fingerprint="f", path=path, progress=False)

    assert grid([(2,), (3,)]) == [{"n": 2, "square": 4}, {"n": 3, "square": 9}] and calls == [2, 3]
    assert [r["n"] for r in grid([(4,), (3,), (2,)])] == [4, 3, 2]  # the plan's order
    assert calls == [2, 3, 4]  # only the new one ran


def test_run_grid_refuses_a_file_of_another_fingerprint_and_leaves_it_unchanged(tmp_path):
    path = tmp_path / "grid.json"
    run_grid([(1,)], lambda n: {"n": n}, key=lambda r: (r["n"],), fingerprint="old", path=path, progress=False)
    before, calls = path.read_bytes(), []
    with pytest.raises(ValueError, match="other settings or data"):
        run_grid([(1,), (2,)], lambda n: calls.append(n) or {"n": n}, key=lambda r: (r["n"],), fingerprint="new",
                 path=path, progress=False)
    assert path.read_bytes() == before and calls == []


def test_run_grid_writes_the_file_after_each_run(tmp_path):
    path = tmp_path / "grid.json"

    def fails_on_the_second(n):
        if n == 2:
            raise RuntimeError("interrupted")
        return {"n": n}

    with pytest.raises(RuntimeError, match="interrupted"):
        run_grid([(1,), (2,), (3,)], fails_on_the_second, key=lambda r: (r["n"],), fingerprint="f", path=path,
                 progress=False)
    assert json.loads(path.read_text()) == {"fingerprint": "f", "runs": [{"n": 1}]}
    calls = []
    run_grid([(1,), (2,), (3,)], lambda n: calls.append(n) or {"n": n}, key=lambda r: (r["n"],), fingerprint="f",
             path=path, progress=False)
    assert calls == [2, 3]


# ------------------------------------------------------------------------------------- MovieLens files
# A tiny MovieLens in both formats: users 10, 2, 7 and movies 12, 3, 1, out of id order in every file
# (and "10" < "2" as text), so renumbering by id is visible. Movie 1 has no release date.
DATA = [("10", "12", "4", "881250949"), ("2", "3", "5", "881250950"), ("7", "1", "1", "881250951"),
        ("2", "12", "3", "881250952")]
MOVIES = [("12", "Café Society", "1995", ("Comedy", "Drama")), ("3", "Toy Story", "1995",
          ("Animation", "Children's", "Comedy")), ("1", "unknown", "", ("unknown",))]
USERS = [("10", "24", "M", "technician", "85711"), ("2", "53", "F", "other", "94043"),
         ("7", "32", "M", "none", "02139")]


def write_grouplens(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text("".join("\t".join(row) + "\n" for row in DATA))
    lines = []
    for movie, title, year, genres in MOVIES:
        date = f"01-Jan-{year}" if year else ""
        flags = "|".join("1" if g in genres else "0" for g in GENRES)
        lines.append(f"{movie}|{title}{f' ({year})' if year else ''}|{date}||http://example.org/{movie}|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode("latin-1"))
    (folder / "u.user").write_text("".join("|".join(row) + "\n" for row in USERS))
    return folder


def write_recbole(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ml-100k.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                          + "".join("\t".join(row) + "\n" for row in DATA))
    (folder / "ml-100k.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        + "".join(f"{m}\t{t}\t{y}\t{' '.join(g)}\n" for m, t, y, g in MOVIES), encoding="utf-8")
    (folder / "ml-100k.user").write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                                         + "".join("\t".join(row) + "\n" for row in USERS))
    return folder


def test_a_movielens_folder_without_the_files_raises_naming_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_MOVIELENS", str(tmp_path))
    (tmp_path / "u.data").write_text("1\t1\t5\t0\n")  # one of three is not enough
    with pytest.raises(DataUnavailableError, match="TLCOURSE_MOVIELENS") as err:
        load_movielens()
    for name in ("ml-100k.inter", "ml-100k.item", "ml-100k.user", "u.data", "u.item", "u.user"):
        assert name in str(err.value)


def test_grouplens_files_load_with_users_and_movies_renumbered_in_id_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_MOVIELENS", str(write_grouplens(tmp_path / "gl")))
    r = load_movielens()
    # users 2, 7, 10 -> 0, 1, 2; movies 1, 3, 12 -> 0, 1, 2
    assert r.user.tolist() == [2, 0, 1, 0] and r.item.tolist() == [2, 1, 0, 2]
    assert r.rating.tolist() == [4.0, 5.0, 1.0, 3.0] and r.rating.dtype == torch.float32
    assert r.time.tolist() == [881250949, 881250950, 881250951, 881250952] and r.time.dtype == torch.long
    assert r.items["title"].tolist() == ["unknown", "Toy Story", "Café Society"]
    assert r.items["year"].tolist() == [0, 1995, 1995]
    assert r.items["genres"].tolist() == [("unknown",), ("Animation", "Children's", "Comedy"), ("Comedy", "Drama")]
    assert r.users["age"].tolist() == [53, 32, 24] and r.users["occupation"].tolist() == ["other", "none", "technician"]
    assert (r.n_users, r.n_items, r.source) == (3, 3, str(tmp_path / "gl"))


def test_recbole_atomic_files_load_equal_to_the_grouplens_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_MOVIELENS", str(write_grouplens(tmp_path / "gl")))
    grouplens = load_movielens()
    monkeypatch.setenv("TLCOURSE_MOVIELENS", str(write_recbole(tmp_path / "rb")))
    recbole = load_movielens()
    for field in ("user", "item", "rating", "time"):
        assert torch.equal(getattr(recbole, field), getattr(grouplens, field)), field
    pd.testing.assert_frame_equal(recbole.items, grouplens.items)
    pd.testing.assert_frame_equal(recbole.users, grouplens.users)


def test_ratings_naming_a_movie_the_tables_lack_are_refused(tmp_path, monkeypatch):
    folder = write_grouplens(tmp_path / "gl")
    (folder / "u.data").write_text("2\t99\t4\t881250949\n")
    monkeypatch.setenv("TLCOURSE_MOVIELENS", str(folder))
    with pytest.raises(DataUnavailableError, match="do not belong together"):
        load_movielens()


def no_installed_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """No $TLCOURSE_MOVIELENS, no recbole wheel, an empty data directory; returns the addresses fetched."""
    monkeypatch.delenv("TLCOURSE_MOVIELENS", raising=False)
    monkeypatch.setenv("TLCOURSE_DATA", str(tmp_path))
    monkeypatch.setattr(tlcourse.ratings_data, "_recbole_folder", lambda: None)
    return []


def test_without_files_and_with_downloads_off_nothing_is_downloaded(tmp_path, monkeypatch):
    fetched = no_installed_copy(tmp_path, monkeypatch)

    def no_network(url, *args, **kwargs):
        fetched.append(url)
        raise AssertionError(f"downloaded {url} with downloads off")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv("TLCOURSE_DOWNLOAD", "0")
    with pytest.raises(DataUnavailableError, match="TLCOURSE_DOWNLOAD=1"):
        load_movielens()
    assert fetched == [] and not (tmp_path / "ml-100k").exists()


def test_with_downloads_on_grouplens_zip_is_unpacked_into_the_data_directory(tmp_path, monkeypatch):
    fetched = no_installed_copy(tmp_path, monkeypatch)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("u.data", "u.item", "u.user"):
            z.writestr(f"ml-100k/{name}", (write_grouplens(tmp_path / "made") / name).read_bytes())

    def fake_urlopen(url, *args, **kwargs):
        fetched.append(url)
        return io.BytesIO(archive.getvalue())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    r = load_movielens(download=True)
    assert fetched == [tlcourse.ratings_data.GROUPLENS_URL] and r.source == str(tmp_path / "ml-100k")
    assert len(r.rating) == 4 and r.n_users == 3
    load_movielens(download=True)  # the second time it reads the unpacked copy
    assert len(fetched) == 1


def test_the_real_movielens_100k_has_its_published_size():
    try:
        movielens_folder()
    except DataUnavailableError as err:
        pytest.skip(f"MovieLens-100k is not installed here ({err})")
    r = load_movielens()
    assert (len(r.rating), r.n_users, r.n_items) == (100_000, 943, 1_682)
    assert sorted(set(r.rating.tolist())) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert int(r.user.min()) == 0 and int(r.user.max()) == 942 and int(r.item.max()) == 1_681
    assert int(torch.bincount(r.user).min()) >= 20  # GroupLens kept only users with 20 ratings or more
    assert all(set(g) <= set(GENRES) and g for g in r.items["genres"])
    assert r.items["title"][0] == "Toy Story" and r.items["year"][0] == 1995


def test_a_user_who_rated_every_movie_is_refused_by_click_examples():
    r = ratings_of([(0, 0), (0, 1), (1, 0)], n_users=2, n_items=2)
    with pytest.raises(ValueError, match="user 0 has rated every movie"):
        click_examples(r, torch.arange(3), negatives=1, seed=0)


def test_new_item_split_refuses_when_no_movie_has_enough_ratings():
    r = ratings_of([(0, 0), (1, 1)], n_users=2, n_items=2)
    with pytest.raises(ValueError, match="lower min_ratings"):
        new_item_split(r, settings=RecSettings(), seed=0)
