"""Matrix factorisation: users and items as embeddings, a rating (or a click) as their interaction.

``MatrixFactorization`` predicts ``r̂(u, i) = μ + b_u + b_i + p_u · q_i``; it takes int64 pairs
``(B, 2)`` of (user, item) and returns ``(B,)`` scores. Two ways to train it, both through
``tl.fine_tune``:

* ``train_ratings``: on the stars, with the squared error (``F.mse_loss``): the score is a
  predicted rating, judged by RMSE;
* ``click_model``: on *whether* a user rated a movie, with the logistic loss on each rated
  movie and ``negatives`` movies the user did not rate, drawn at random (``μ = 0``: the score
  is a logit), judged by ranking (HR@10). This is implicit feedback, as in He et al.'s NCF.

``REC_SETTINGS`` holds the chapter's sizes per run profile (``rec_settings()``).

Example:
    >>> import torch, tlcourse as tl
    >>> mf = tl.MatrixFactorization(3, 4, dim=2, mean=3.0)
    >>> mf(torch.tensor([[0, 1], [2, 3]])).shape
    torch.Size([2])
    >>> mf.score(torch.zeros(2, 5, dtype=torch.long), torch.arange(10).view(2, 5) % 4).shape
    torch.Size([2, 5])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .adapt import fine_tune
from .config import Profile, get_profile
from .ratings_data import Ratings
from .ratings_eval import popularity, ranking_metrics, rmse
from .text_models import TensorBatches

__all__ = ["RecSettings", "REC_SETTINGS", "rec_settings", "MatrixFactorization", "rating_batches", "penalised", "train_ratings", "rating_model",
           "click_examples", "click_model", "penalty_fits", "choose_penalty", "RANKERS", "ranking_runs"]


@dataclass(frozen=True)
class RecSettings:
    """How big the recommender chapter's runs are; fixed in advance (nothing here is tuned on a test set)."""

    dim: int = 32  # embedding size
    epochs: int = 10  # passes over the ratings (rating models)
    lr: float = 5e-3  # Adam
    reg: float = 0.1  # λ of the L2 penalty on the embeddings a batch uses (rating models; tl.rec_penalty)
    regs: tuple[float, ...] = (0.03, 0.1, 0.3)  # the λ tried, chosen on validation ratings
    click_epochs: int = 10  # passes over the rated and sampled pairs (click models)
    negatives: int = 4  # sampled unrated movies per rated one (click models)
    ks: tuple[int, ...] = (1, 3, 5, 10, 20)  # target ratings a cold user keeps
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    cold_fraction: float = 0.2  # of the users with min_target target ratings or more
    min_target: int = 25  # target ratings a user needs to be drawn as cold
    new_item_fraction: float = 0.1  # of the movies with enough ratings, whose ratings all go to the test
    batch_size: int = 256


REC_SETTINGS = {
    # CI: everything runs, on the real ratings, too briefly for the numbers to mean much.
    "quick": RecSettings(epochs=3, click_epochs=1, regs=(0.1, 0.3), ks=(1, 20), seeds=(0, 1), batch_size=1024),
    # A laptop's CPU, a few minutes: the chapter's results.
    "cpu": RecSettings(batch_size=1024),
    # A GPU: more seeds, a narrower interval (these models are small: the GPU does not make them faster).
    "full": RecSettings(seeds=tuple(range(10))),
}


def rec_settings(profile: Profile | None = None) -> RecSettings:
    """The recommender chapter's settings for ``profile`` (default ``get_profile()``)."""
    return REC_SETTINGS[(profile or get_profile()).name]


class MatrixFactorization(nn.Module):
    """``μ + b_u + b_i + p_u · q_i``, with ``dim``-dimensional user and item embeddings.

    Args:
        n_users, n_items: how many of each (ids ``0 …``).
        dim: the embeddings' size.
        mean: ``μ``, the global mean rating of the training set (fixed); 0 for a click model.
        init: the standard deviation of the embeddings' random start (biases start at 0).
    """

    def __init__(self, n_users: int, n_items: int, *, dim: int = 32, mean: float = 3.5, init: float = 0.05) -> None:
        super().__init__()
        self.user, self.item = nn.Embedding(n_users, dim), nn.Embedding(n_items, dim)
        self.user_bias, self.item_bias = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        for table in (self.user, self.item):
            nn.init.normal_(table.weight, std=init)
        for table in (self.user_bias, self.item_bias):
            nn.init.zeros_(table.weight)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.penalty = torch.zeros(())  # of the last batch (forward sets it)

    def item_vectors(self, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The embeddings and biases of items ``i`` (a subclass may add what else it knows of them)."""
        return self.item(i), self.item_bias(i).squeeze(-1)

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """int64 ``(B, 2)`` (user, item) → scores ``(B,)``."""
        u, i = pairs[:, 0], pairs[:, 1]
        p, b_u = self.user(u), self.user_bias(u).squeeze(-1)
        q, b_i = self.item_vectors(i)
        # MF's L2 penalty, on the rows this batch uses: λ (|p_u|² + |q_i|² + b_u² + b_i²), averaged
        self.penalty = ((p**2).sum(-1) + (q**2).sum(-1) + b_u**2 + b_i**2).mean()
        return self.mean + b_u + b_i + (p * q).sum(dim=-1)

    @torch.no_grad()
    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of ``users`` and ``items``, two int64 tensors of one shape, in that shape (for ranking)."""
        device = self.mean.device
        pairs = torch.stack([users.flatten(), items.flatten()], dim=1).to(device)
        return self(pairs).view(users.shape).cpu()


def rating_batches(ratings: Ratings, idx: torch.Tensor, *, batch_size: int = 256, shuffle: bool = True,
                   seed: int = 0, device: torch.device | str = "cpu") -> TensorBatches:
    """``(pairs, rating)`` batches of the ratings ``idx`` selects; epoch ``e`` shuffles with ``seed + e``."""
    pairs = torch.stack([ratings.user[idx], ratings.item[idx]], dim=1)
    return TensorBatches(pairs, ratings.rating[idx], batch_size=batch_size, shuffle=shuffle, seed=seed, device=device)


def penalised(model: MatrixFactorization, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
              reg: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss`` plus ``reg`` times the L2 penalty of the rows ``model``'s last batch used.

    The penalty is the one of Koren et al.'s matrix factorisation: each rating pulls only its
    own user's and item's vectors towards zero. (Adam's weight decay would shrink every
    row at every step, also those of users a batch does not hold, and erase what a
    transferred row knows before its few ratings are seen.)
    """
    return lambda out, y: loss(out, y) + reg * model.penalty


def train_ratings(model: MatrixFactorization, ratings: Ratings, idx: torch.Tensor, *, settings: RecSettings,
                  seed: int = 0, device: torch.device | str = "cpu") -> list[float]:
    """Fit ``model`` to the ratings ``idx`` selects with Adam on the squared error plus ``settings.reg``'s penalty.

    Returns each epoch's mean training loss.
    """
    device = torch.device(device)
    batches = rating_batches(ratings, idx, batch_size=settings.batch_size, seed=seed, device=device)
    return fine_tune(model, batches, epochs=settings.epochs, lr=settings.lr, device=device,
                     loss_fn=penalised(model, F.mse_loss, settings.reg))


def rating_model(ratings: Ratings, idx: torch.Tensor, *, settings: RecSettings,
                 device: torch.device | str = "cpu") -> MatrixFactorization:
    """A fresh rating model: ``settings.dim``-dimensional, ``μ`` the mean of the ratings ``idx`` selects.

    Its random start is torch's global random state: seed it first (``torch.manual_seed``).
    """
    return MatrixFactorization(ratings.n_users, ratings.n_items, dim=settings.dim,
                               mean=float(ratings.rating[idx].mean())).to(device)


def click_examples(ratings: Ratings, idx: torch.Tensor, *, negatives: int, seed: int) -> tuple[torch.Tensor,
                                                                                               torch.Tensor]:
    """Pairs ``(N, 2)`` and labels ``(N,)``: each rating ``idx`` selects (1) and ``negatives`` unrated movies (0).

    A negative is drawn uniformly among the movies the user rated nowhere in ``ratings``
    (seeded); the same user's test movies are never drawn as negatives to learn from.
    """
    rated = torch.zeros(ratings.n_users, ratings.n_items, dtype=torch.bool)
    rated[ratings.user, ratings.item] = True
    full = torch.nonzero(rated.all(dim=1)).flatten()
    if len(full):
        raise ValueError(f"user {int(full[0])} has rated every movie: there is no unrated one to draw as a negative")
    users = ratings.user[idx].repeat_interleave(negatives)
    g = torch.Generator().manual_seed(seed)
    drawn = torch.randint(ratings.n_items, (len(users),), generator=g)
    clash = rated[users, drawn]
    while clash.any():  # draw again where the movie was rated (each user has an unrated one: checked above)
        drawn[clash] = torch.randint(ratings.n_items, (int(clash.sum()),), generator=g)
        clash = rated[users, drawn]
    pairs = torch.cat([torch.stack([ratings.user[idx], ratings.item[idx]], 1), torch.stack([users, drawn], 1)])
    return pairs, torch.cat([torch.ones(len(idx)), torch.zeros(len(users))])


def click_model(ratings: Ratings, idx: torch.Tensor, *, settings: RecSettings, reg: float, seed: int = 0,
                device: torch.device | str = "cpu") -> MatrixFactorization:
    """Matrix factorisation (``μ = 0``) fit to which movies were rated (``idx``) and sampled unrated ones.

    The loss is the logistic loss (``F.binary_cross_entropy_with_logits``) plus ``reg`` times the
    L2 penalty (``penalised``); ``seed`` sets the random start and the negatives drawn.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    model = MatrixFactorization(ratings.n_users, ratings.n_items, dim=settings.dim, mean=0.0).to(device)
    pairs, labels = click_examples(ratings, idx, negatives=settings.negatives, seed=seed)
    batches = TensorBatches(pairs, labels, batch_size=max(settings.batch_size, 1024), shuffle=True, seed=seed,
                            device=device)
    fine_tune(model, batches, epochs=settings.click_epochs, lr=settings.lr, device=device,
              loss_fn=penalised(model, F.binary_cross_entropy_with_logits, reg))
    return model


def penalty_fits(ratings: Ratings, fit: torch.Tensor, val: torch.Tensor, *, settings: RecSettings,
                 make: Callable[[], MatrixFactorization] | None = None, seed: int = 0,
                 device: torch.device | str = "cpu") -> list[tuple[float, float, MatrixFactorization]]:
    """``(λ, validation RMSE, model)`` for each ``λ`` of ``settings.regs``: a model trained on ``fit``, scored on ``val``.

    ``make`` builds each fresh model (default: ``rating_model`` of ``fit``);
    each starts from ``seed``. No test rating is read.
    """
    out = []
    for reg in settings.regs:
        torch.manual_seed(seed)
        model = (make or (lambda: rating_model(ratings, fit, settings=settings)))().to(device)
        train_ratings(model, ratings, fit, settings=replace(settings, reg=reg), seed=seed, device=device)
        out.append((reg, rmse(model.score(ratings.user[val], ratings.item[val]), ratings.rating[val]), model))
    return out


def choose_penalty(ratings: Ratings, fit: torch.Tensor, val: torch.Tensor, *, settings: RecSettings, seed: int = 0,
                   device: torch.device | str = "cpu") -> tuple[float, pd.DataFrame]:
    """The ``λ`` of ``settings.regs`` whose rating model, trained on ``fit``, has the lowest RMSE on ``val``.

    Returns:
        the chosen ``λ`` and a table of every ``λ`` tried with its validation RMSE. No test rating is read.
    """
    fits = penalty_fits(ratings, fit, val, settings=settings, seed=seed, device=device)
    table = pd.DataFrame([{"λ": reg, "validation RMSE": score} for reg, score, _ in fits]).set_index("λ")
    return float(table["validation RMSE"].idxmin()), table


RANKERS = ("popularity", "rating model", "click model")


def ranking_runs(ratings: Ratings, train: torch.Tensor, test: torch.Tensor, *, settings: RecSettings,
                 seeds: tuple[int, ...], device: torch.device | str = "cpu") -> pd.DataFrame:
    """HR@10 and NDCG@10 on ``test`` of popularity, the rating model and the click model, per seed.

    A seed sets a model's random start and the 99 negatives every ranker of that seed is
    ranked against, so the rankers of a seed pair up (``tl.compare_arms``).
    """
    pop = popularity(ratings, train)
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        stars = rating_model(ratings, train, settings=settings, device=device)
        train_ratings(stars, ratings, train, settings=settings, seed=seed, device=device)
        scorers = {"popularity": lambda u, i: pop[i], "rating model": stars.score,
                   "click model": click_model(ratings, train, settings=settings, reg=0.0, seed=seed,
                                              device=device).score}
        for name in RANKERS:
            rows.append({"method": name, "seed": seed, **ranking_metrics(scorers[name], ratings, test, seed=seed)})
    return pd.DataFrame(rows)
