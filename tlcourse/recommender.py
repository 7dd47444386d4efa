"""Matrix factorisation: users and items as embeddings, a rating as their dot product plus biases.

``MatrixFactorization`` predicts ``r̂(u, i) = μ + b_u + b_i + p_u · q_i``; it takes int64 pairs
``(B, 2)`` of (user, item) and returns ``(B,)`` ratings, so ``tl.fine_tune`` trains it with
``F.mse_loss`` and ``tl.evaluate`` reports its mean squared error (accuracy is NaN: a rating
is not a class). ``rating_batches`` makes the batches of a set of ratings.

Example:
    >>> import torch, torch.nn.functional as F, tlcourse as tl
    >>> mf = tl.MatrixFactorization(3, 4, dim=2, mean=3.0)
    >>> mf(torch.tensor([[0, 1], [2, 3]])).shape
    torch.Size([2])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .adapt import fine_tune
from .ratings_data import Ratings
from .text_models import TensorBatches

__all__ = ["MatrixFactorization", "rating_batches", "train_ratings"]


class MatrixFactorization(nn.Module):
    """``μ + b_u + b_i + p_u · q_i``, with ``dim``-dimensional user and item embeddings.

    Args:
        n_users, n_items: how many of each (ids ``0 …``).
        dim: the embeddings' size.
        mean: ``μ``, the global mean rating of the training set (fixed).
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

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """int64 ``(B, 2)`` (user, item) → predicted ratings ``(B,)``."""
        u, i = pairs[:, 0], pairs[:, 1]
        return (self.mean + self.user_bias(u).squeeze(-1) + self.item_bias(i).squeeze(-1)
                + (self.user(u) * self.item(i)).sum(dim=-1))


def rating_batches(ratings: Ratings, idx: torch.Tensor, *, batch_size: int = 256, shuffle: bool = True,
                   seed: int = 0, device: torch.device | str = "cpu") -> TensorBatches:
    """``(pairs, rating)`` batches of the ratings ``idx`` selects; epoch ``e`` shuffles with ``seed + e``."""
    pairs = torch.stack([ratings.user[idx], ratings.item[idx]], dim=1)
    return TensorBatches(pairs, ratings.rating[idx], batch_size=batch_size, shuffle=shuffle, seed=seed, device=device)


def train_ratings(model: MatrixFactorization, ratings: Ratings, idx: torch.Tensor, *, epochs: int, lr: float = 1e-2,
                  weight_decay: float = 0.0, batch_size: int = 256, seed: int = 0,
                  device: torch.device | str = "cpu") -> list[float]:
    """Fit ``model`` to the ratings ``idx`` selects with Adam on the squared error; return each epoch's MSE."""
    device = torch.device(device)
    batches = rating_batches(ratings, idx, batch_size=batch_size, seed=seed, device=device)
    return fine_tune(model, batches, epochs=epochs, lr=lr, device=device, loss_fn=F.mse_loss,
                     weight_decay=weight_decay)
