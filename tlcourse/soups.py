"""Model soups: several fine-tuned networks averaged into one (Wortsman et al., 2022).

``uniform_soup`` averages every ingredient's weights; ``greedy_soup`` adds ingredients one by
one, best first, keeping each only if a score (on validation data, never the test set) does
not drop; ``LogitEnsemble`` is the costlier alternative that averages their outputs instead
of their weights. The ingredients must share one architecture and start (the same source).

Example:
    >>> import torch, tlcourse as tl
    >>> sd = tl.LeNet().state_dict()
    >>> soup = tl.uniform_soup([sd, sd])
    >>> all(torch.equal(soup[k], sd[k]) for k in sd)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["uniform_soup", "greedy_soup", "LogitEnsemble"]

StateDict = Mapping[str, torch.Tensor]


def _check_ingredients(state_dicts: Sequence[StateDict], *, what: str) -> None:
    """Raise unless there is at least one state dict and all have the first one's keys and shapes."""
    if len(state_dicts) == 0:
        raise ValueError(f"{what}: state_dicts is empty; a soup needs at least one ingredient (a state dict).")
    first = state_dicts[0]
    for i, sd in enumerate(state_dicts[1:], start=1):
        if sd.keys() != first.keys() or any(sd[k].shape != first[k].shape for k in first):
            raise ValueError(f"{what}: ingredient {i} has other keys or shapes than ingredient 0")


def uniform_soup(state_dicts: Sequence[StateDict]) -> dict[str, torch.Tensor]:
    """Average the weights of several networks of one architecture: a uniform model soup.

    Floating tensors are averaged in float64 and cast back, so the soup of identical
    networks is exactly that network; integer buffers (BatchNorm's step counter) are
    taken from the first. Averaging only makes sense for networks fine-tuned from the
    same starting point; two networks trained from different random initialisations
    average into a poor one (see ``barrier``).

    Args:
        state_dicts: the ingredients (at least one), with identical keys and shapes.

    Example:
        >>> soup = uniform_soup([{"w": torch.tensor([0.0])}, {"w": torch.tensor([1.0])}])
        >>> soup["w"]
        tensor([0.5000])
    """
    _check_ingredients(state_dicts, what="uniform_soup")
    first = state_dicts[0]
    out = {}
    for k, t in first.items():
        if t.dtype.is_floating_point:
            acc = torch.stack([sd[k].to(t.device, torch.float64) for sd in state_dicts]).sum(0) / len(state_dicts)
            out[k] = acc.to(t.dtype)
        else:
            out[k] = t.clone()
    return out


def greedy_soup(state_dicts: Sequence[StateDict], score: Callable[[StateDict], float]
                ) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Greedy soup (Wortsman et al., 2022): add ingredients best-first, keep each only if it helps.

    Sort the ingredients by their own score; start the soup with the best; try each next
    one and keep it when the soup's score does not drop. ``score`` must use held-out
    data (a validation set), never the test set.

    Args:
        state_dicts: the ingredients (at least one), with identical keys and shapes;
            checked before any is scored.
        score: ``score(state_dict) -> float``, higher is better.

    Returns:
        The soup and the indices of the ingredients it contains.

    Example:
        >>> sds = [{"w": torch.tensor([1.0])}, {"w": torch.tensor([3.0])}, {"w": torch.tensor([9.0])}]
        >>> greedy_soup(sds, lambda sd: -abs(float(sd["w"]) - 2.0))[1]
        [0, 1]
    """
    _check_ingredients(state_dicts, what="greedy_soup")  # before any (costly) scoring
    own = [score(sd) for sd in state_dicts]
    order = sorted(range(len(state_dicts)), key=lambda i: -own[i])
    chosen = [order[0]]
    best = own[order[0]]
    for i in order[1:]:
        trial = uniform_soup([state_dicts[j] for j in chosen + [i]])
        s = score(trial)
        if s >= best:
            chosen, best = chosen + [i], s
    return uniform_soup([state_dicts[j] for j in chosen]), sorted(chosen)


class LogitEnsemble(nn.Module):
    """Average the logits of several networks: an ensemble (N forward passes per input, unlike a soup).

    Example:
        >>> m = tl.LeNet(); x = torch.zeros(2, 1, 28, 28)
        >>> torch.allclose(LogitEnsemble([m, m])(x), m(x))
        True
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        if len(models) == 0:
            raise ValueError("LogitEnsemble needs at least one model.")
        super().__init__()
        self.members = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(0)  # (B, num_classes)
