"""Chapter 11's exercises: how full the ratings table is, stars or choices, the wrong people, a small source.

Each judge computes its reference from the chapter's objects (``ratings``, ``ranks``,
``failure``, ``cross_settings``, ``run``); the hints point at the idea, never at the number.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("11.1", "11.2", "11.3", "11.4")]
    ['compute', 'predict', 'predict', 'change']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


from ..comparison import compare_arms
from ..cross_domain import cross_domain_experiment, genre_domains
from ..names import unknown_choice
from ..ratings_data import GENRES
from .compare import LEVEL, Verdict, as_real, by_gap, close, judge_prediction
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number

BETTER = {"better": "better", "about the same": "about the same", "the same": "about the same",
          "same": "about the same", "worse": "worse"}
TARGET = ("Comedy",)  # the chapter's target domain
SMALL = 10_000  # ratings a small source holds fewer of (exercise 11.4)
SAME_RMSE = 0.005  # stars: two mean RMSEs this close are "about the same" (exercise 11.3)


@exercise("11.1", answer="filled", stars=1, kind="compute",
          mistake="filled = len(ratings.rating) / ratings.n_users")
def _filled(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    ratings = need(ns, "ratings")
    pairs = len(set(zip(ratings.user.tolist(), ratings.item.tolist())))
    cells = ratings.n_users * ratings.n_items
    truth = pairs / cells
    value = as_real(answer)
    if value is None:
        return Verdict(False, f"Give a fraction between 0 and 1, not {type(answer).__name__}.")
    if close(value, truth, hint="").passed:
        return Verdict(True, "Well done: ratings over cells. Almost every cell is empty, and those are the cells a "
                             "recommender exists to fill.")
    if close(value, 100 * truth, hint="").passed:
        return Verdict(False, "Give a fraction between 0 and 1, not a percentage.")
    if close(value, 1 - truth, hint="").passed:
        return Verdict(False, "That is the share of *empty* cells; the question asks for the cells holding a rating.")
    if value > 1:
        return Verdict(False, "A share of the table is at most 1. How many cells does a table of users × movies "
                              "have, and how many of them hold a rating?")
    return Verdict(False, "Divide the number of ratings by the number of cells of the user × movie table.")


@exercise("11.2", answer="rating_model_guess", stars=2, kind="predict", mistake='rating_model_guess = "higher"')
def _rating_model_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    mean = need(ns, "ranks").groupby("method")["HR@10"].mean()
    return judge_prediction(
        answer, LEVEL, by_gap(100 * (mean["rating model"] - mean["popularity"]), within=2),
        ask='Write one of "higher", "about the same" or "lower" as your prediction.',
        right="Your prediction matches the cell above. A model of stars learns how much people like what they "
              "watched; the test asks what they watch next.",
        wrong="The cell above disagrees with your prediction: compare the two HR@10 means. What did the rating "
              "model see during training, and what did it never see?")


@exercise("11.3", answer="shuffled_guess", stars=2, kind="predict", mistake='shuffled_guess = "better"')
def _shuffled_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    mean = need(ns, "failure").groupby("method")["rmse"].mean()
    truth = by_gap(mean["shuffled users"] - mean["target only"], within=SAME_RMSE,
                   words=("better", "about the same", "worse"))
    return judge_prediction(
        answer, BETTER, truth, ask='Write one of "better", "about the same" or "worse" as your prediction.',
        right="Your prediction matches the table above (for RMSE, lower is better). A transferred vector is only "
              "as good as the match between the source's users and the target's.",
        wrong="The table above disagrees with your prediction (for RMSE, lower is better). What does a cold user's "
              "starting vector say about them when it belongs to someone else?")


def _genres(answer: Any) -> tuple[str, ...] | None:
    if isinstance(answer, str):
        answer = (answer,)
    if not isinstance(answer, (tuple, list)) or not answer or not all(isinstance(g, str) for g in answer):
        return None
    return tuple(answer)


@exercise("11.4", answer="small_source", stars=3, kind="change", mistake='small_source = ("Drama", "Thriller")')
def _small_source(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    ratings, settings, run = need(ns, "ratings", "cross_settings", "run")
    genres = _genres(answer)
    if genres is None:
        return Verdict(False, 'Give a tuple of genre names, e.g. ("Western",): the names are in tl.GENRES.')
    for g in genres:
        if g not in GENRES:
            return Verdict(False, unknown_choice("genre", g, GENRES))
    if set(genres) & set(TARGET):
        return Verdict(False, "Comedy is the target domain: a source of comedies would hold the very movies the "
                              "cold users are tested on. Choose genres other than Comedy.")
    source, target = genre_domains(ratings, genres, TARGET)
    held = int(source.sum())
    if held == 0:
        return Verdict(False, "Those genres hold no movie outside comedy: choose others.")
    if held >= SMALL:
        return Verdict(False, f"Those genres' movies without a comedy hold {held:,} ratings: not a small source. "
                              f"Choose genres with fewer than {SMALL:,}; ratings per genre are in the data.")
    k = settings.ks[0]
    runs = cross_domain_experiment(ratings, source, target, settings=settings, arms=("target only", "transfer"),
                                   ks=(k,), device=run.device, progress=False)
    comparison = compare_arms(runs, "transfer", "target only", value="rmse", percent=False)
    table = runs.groupby("method")["rmse"].mean()
    return Verdict(True, f"Measured with a source of {held:,} ratings ({', '.join(genres)}) at k = {k}, seeds "
                         f"{list(settings.seeds)}: RMSE target only {table['target only']:.3f}, transfer "
                         f"{table['transfer']:.3f}. {comparison.sentence()} (Lower is better.)")
