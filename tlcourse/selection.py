"""Choosing a source: transferability scores computed without fine-tuning, and whether they rank well.

A transferability score looks at a candidate source network's outputs on the *labelled
target data* and predicts how well it will transfer, without training it:

* ``leep``: LEEP (Nguyen et al., 2020), the log-likelihood of the target labels under a
  classifier that maps the source's *predicted source classes* to target classes.
* ``logme``: LogME (You et al., 2021), the log marginal likelihood (evidence) of a
  Bayesian linear model from the source's *features* to the target labels, with its prior
  and noise precisions set to maximise that evidence.

``probe_on_features`` measures the actual linear-probe accuracy; ``rank_correlation`` asks
whether scores rank the sources as their accuracies do; ``transfer_verdicts`` compares each
source with a scratch baseline by the course's one rule (``compare_arms``). The candidates' features and logits come from
``extract_features``, and a real ImageNet candidate from ``imagenet_source`` (both in
``tlcourse.pretrained``).

Example:
    >>> import torch, tlcourse as tl
    >>> probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    >>> round(tl.leep(probs, torch.tensor([0, 1])), 4)
    -0.2911
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F

from .comparison import compare_arms

__all__ = [
    "leep",
    "LogMEFit",
    "logme_evidence",
    "logme_fit",
    "logme",
    "probe_on_features",
    "rank_correlation",
    "transfer_verdicts",
]


def leep(source_probs: torch.Tensor, labels: torch.Tensor, *, num_classes: int | None = None) -> float:
    """LEEP score of a source on labelled target data (Nguyen et al., 2020). Higher is better; always ≤ 0.

    With θ(x) the source's predicted distribution over its Z classes and y the target labels:

    1. the empirical joint ``P(y, z) = (1/N) Σ_i θ(x_i)_z · [y_i = y]`` and ``P(z) = Σ_y P(y, z)``;
    2. the conditional ``P(y | z) = P(y, z) / P(z)``: how often source class z is target class y;
    3. ``LEEP = (1/N) Σ_i log Σ_z P(y_i | z) · θ(x_i)_z``, the mean log-likelihood of the
       "expected empirical predictor" that routes each input through the source's classes.

    Args:
        source_probs: (N, Z) rows of the source's softmax probabilities.
        labels: (N,) target classes.
        num_classes: number of target classes (default: the largest label + 1).

    Example:
        >>> leep(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([1, 0]))  # a perfect (relabelled) match
        0.0
    """
    theta = torch.as_tensor(source_probs, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    if theta.ndim != 2 or len(theta) != len(y):
        raise ValueError(f"source_probs must be (N, Z) with N = len(labels); got {tuple(theta.shape)}, {len(y)}")
    if not torch.allclose(theta.sum(1), torch.ones(len(theta), dtype=torch.float64), atol=1e-4):
        raise ValueError("source_probs rows must sum to 1: pass softmax(logits), not logits")
    c = num_classes or int(y.max()) + 1
    joint = torch.zeros(c, theta.shape[1], dtype=torch.float64).index_add_(0, y, theta) / len(y)  # (C, Z)
    conditional = joint / joint.sum(0, keepdim=True).clamp_min(1e-300)  # P(y | z), (C, Z)
    eep = theta @ conditional.T  # (N, C): Σ_z P(y | z) θ_z
    return float(eep[torch.arange(len(y)), y].clamp_min(1e-300).log().mean())


@dataclass(frozen=True)
class LogMEFit:
    """The evidence-maximising prior precision α and noise precision β for one target vector."""

    evidence: float  # log p(y | F, α, β) / N
    alpha: float  # precision of the Gaussian prior on the weights
    beta: float  # precision of the Gaussian noise on the targets
    iterations: int  # fixed-point iterations used


def _svd_terms(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """U and squared singular values of the (N, D) features, in float64, plus N and D."""
    f = torch.as_tensor(features, dtype=torch.float64)
    u, s, _ = torch.linalg.svd(f, full_matrices=False)  # u (N, r), s (r,)
    return u, s**2, f.shape[0], f.shape[1]


def _evidence(u: torch.Tensor, sigma: torch.Tensor, n: int, d: int, y: torch.Tensor,
              alpha: float, beta: float) -> tuple[float, float, float, float]:
    """(evidence / N, N − γ, ‖m‖², ‖F m − y‖²) of Bayesian linear regression at (α, β), via the SVD.

    N − γ is returned rather than γ, computed as ``Σ α/(α + βσᵢ) + (N − r)``: with at least as
    many features as examples (r = N) it is tiny, and ``N − γ`` would round to exactly 0.
    """
    z = u.T @ y  # (r,) coordinates of y in the column space of F
    denom = alpha + beta * sigma
    m2 = float((beta * sigma.sqrt() * z / denom).pow(2).sum())  # ‖m‖², m the posterior mean
    outside = max(float(y @ y - z @ z), 0.0)  # the part of y no weight vector can reach
    res2 = float((alpha * z / denom).pow(2).sum()) + outside  # ‖F m − y‖²
    n_minus_gamma = float((alpha / denom).sum()) + (n - len(sigma))  # N − γ, γ the effective number of parameters
    logdet_a = float(denom.log().sum()) + (d - len(sigma)) * math.log(alpha)  # log|αI + βFᵀF|
    ev = (d / 2 * math.log(alpha) + n / 2 * math.log(beta) - n / 2 * math.log(2 * math.pi)
          - beta / 2 * res2 - alpha / 2 * m2 - logdet_a / 2)
    return ev / n, n_minus_gamma, m2, res2


def logme_evidence(features: torch.Tensor, y: torch.Tensor, *, alpha: float, beta: float) -> float:
    """Log evidence per example, ``log p(y | F, α, β) / N``, of Bayesian linear regression.

    The model is ``y = F w + ε`` with prior ``w ~ N(0, α⁻¹ I)`` and noise ``ε ~ N(0, β⁻¹ I)``;
    integrating out ``w`` gives ``y ~ N(0, α⁻¹ F Fᵀ + β⁻¹ I)``. Computed with one SVD of F.

    Args:
        features: (N, D).
        y: (N,) real targets (for LogME: one column of the one-hot labels).
        alpha, beta: the precisions.

    Example:
        >>> round(logme_evidence(torch.ones(2, 1), torch.tensor([1.0, 1.0]), alpha=1.0, beta=1.0), 4)
        -1.3603
    """
    u, sigma, n, d = _svd_terms(features)
    return _evidence(u, sigma, n, d, torch.as_tensor(y, dtype=torch.float64), alpha, beta)[0]


def logme_fit(features: torch.Tensor, y: torch.Tensor, *, max_iter: int = 100, tol: float = 1e-6) -> LogMEFit:
    """Maximise the evidence over α and β by MacKay's fixed-point updates (LogME's Algorithm 1).

    Repeat ``γ = Σ βσᵢ/(α + βσᵢ)``, ``α = γ / ‖m‖²``, ``β = (N − γ) / ‖F m − y‖²`` (σᵢ the
    squared singular values of F, m the posterior mean) until α/β stops changing.

    Args:
        features: (N, D).
        y: (N,) real targets.
        max_iter: at most this many updates.
        tol: stop when α/β changes by less than this fraction.

    Example:
        >>> f = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
        >>> fit = logme_fit(f, f @ torch.tensor([1.0, -1.0, 0.5]))
        >>> fit.beta > 100  # the targets are an exact linear function: almost no noise
        True
    """
    u, sigma, n, d = _svd_terms(features)
    y = torch.as_tensor(y, dtype=torch.float64)
    alpha, beta = 1.0, 1.0
    it = 0
    for it in range(1, max_iter + 1):
        _, n_minus_gamma, m2, res2 = _evidence(u, sigma, n, d, y, alpha, beta)
        new_alpha = max(n - n_minus_gamma, 1e-300) / max(m2, 1e-300)
        new_beta = max(n_minus_gamma, 1e-300) / max(res2, 1e-300)
        done = abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    return LogMEFit(_evidence(u, sigma, n, d, y, alpha, beta)[0], alpha, beta, it)


def logme(features: torch.Tensor, labels: torch.Tensor, *, num_classes: int | None = None) -> float:
    """LogME score (You et al., 2021): the mean over classes of the maximised evidence per example.

    Each class k gives a regression target, the k-th column of the one-hot labels; its
    evidence is maximised over (α, β) by ``logme_fit``; the score is the average over
    classes. Higher is better. Only features and labels are needed, so LogME also
    scores networks whose source task had no classes.

    Args:
        features: (N, D) target features from the candidate source.
        labels: (N,) target classes.
        num_classes: number of target classes (default: the largest label + 1).

    Example:
        >>> f = torch.randn(40, 5, generator=torch.Generator().manual_seed(0))
        >>> y = torch.arange(40) % 2
        >>> logme(f + 3.0 * y[:, None], y) > logme(f, y)  # features that separate the classes score higher
        True
    """
    y = torch.as_tensor(labels, dtype=torch.long)
    c = num_classes or int(y.max()) + 1
    onehot = F.one_hot(y, c).to(torch.float64)  # (N, C)
    return float(sum(logme_fit(features, onehot[:, k]).evidence for k in range(c)) / c)


def probe_on_features(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                      test_labels: torch.Tensor, *, l2: float = 1e-3, max_iter: int = 200) -> float:
    """Accuracy of a linear classifier trained on frozen features: a linear probe, in seconds.

    Features are standardised with the training set's mean and std; the classifier is
    multinomial logistic regression with an L2 penalty ``l2/2 · ‖W‖²``, fitted by L-BFGS
    (full batch, deterministic).

    Args:
        train_features, train_labels: (N, D) and (N,), the labelled target budget.
        test_features, test_labels: (M, D) and (M,).
        l2: strength of the penalty (needed: with few examples the classes separate perfectly).
        max_iter: L-BFGS iterations.

    Example:
        >>> f = torch.randn(40, 5, generator=torch.Generator().manual_seed(0)); y = torch.arange(40) % 2
        >>> probe_on_features(f + 3.0 * y[:, None], y, f + 3.0 * y[:, None], y)
        1.0
    """
    xtr, xte = train_features.double(), test_features.double()
    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    xtr, xte = (xtr - mean) / std, (xte - mean) / std
    c = int(max(train_labels.max(), test_labels.max())) + 1
    w = torch.zeros(xtr.shape[1], c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(xtr @ w + b, train_labels) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((xte @ w + b).argmax(1) == test_labels).double().mean())


def rank_correlation(scores: Sequence[float], accuracies: Sequence[float]) -> dict[str, float]:
    """Spearman's ρ and Kendall's τ between scores and accuracies (scipy), with their p-values.

    1 means the scores rank the sources exactly as their accuracies do, −1 exactly
    reversed. With a handful of sources the p-values are large: a perfect ranking of 5
    sources has p ≈ 0.02 (Kendall), of 4 sources p ≈ 0.08.

    Example:
        >>> rank_correlation([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.9])["kendall"]
        0.6666666666666669
    """
    from scipy import stats

    s, a = list(map(float, scores)), list(map(float, accuracies))
    if len(s) != len(a) or len(s) < 2:
        raise ValueError("need two equally long sequences of at least 2 values")
    if len(set(s)) < 2 or len(set(a)) < 2:  # a constant input has no ranking
        return {"spearman": math.nan, "spearman_p": math.nan, "kendall": math.nan, "kendall_p": math.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho, rho_p = stats.spearmanr(s, a)
        tau, tau_p = stats.kendalltau(s, a)
    return {"spearman": float(rho), "spearman_p": float(rho_p), "kendall": float(tau), "kendall_p": float(tau_p)}


def transfer_verdicts(runs: pd.DataFrame | Sequence[Mapping[str, Any]], *, baseline: str, by: str = "method",
                      value: str = "accuracy", controls: Sequence[str] = ()) -> pd.DataFrame:
    """Each source against the ``baseline`` (the target trained from scratch), by the course's one comparison.

    Every method in ``runs`` is compared with ``baseline`` over paired seeds
    (``compare_arms``: the mean difference and its 95% paired t interval). The verdict is
    "positive transfer" when the interval lies above zero, "negative transfer" when it lies
    below, else "no clear difference". A method named in ``controls`` (say, the same
    network randomly initialised) transfers nothing, so it is a "control", never negative
    transfer. Compare only runs trained the same way (the same protocol): a frozen probe
    against a fully trained baseline measures the protocol, not the source.

    Returns:
        one row per method, in order of appearance: ``mean``, ``gain`` (mean difference),
        ``low``, ``high`` (the interval), ``verdict``.

    Example:
        >>> runs = [{"method": m, "seed": s, "accuracy": v} for m, vals in
        ...         {"scratch": [.70, .72, .71], "bad": [.60, .61, .62], "good": [.80, .81, .83]}.items()
        ...         for s, v in enumerate(vals)]
        >>> transfer_verdicts(runs, baseline="scratch")["verdict"].tolist()
        ['baseline', 'negative transfer', 'positive transfer']
    """
    df = pd.DataFrame(list(runs) if not isinstance(runs, pd.DataFrame) else runs)
    rows = {}
    for name in dict.fromkeys(df[by]):
        mean = float(df.loc[df[by] == name, value].mean())
        if name == baseline:
            rows[name] = {"mean": mean, "gain": 0.0, "low": math.nan, "high": math.nan, "verdict": "baseline"}
            continue
        c = compare_arms(df, name, baseline, by=by, value=value)
        verdict = ("control" if name in controls else
                   {"higher": "positive transfer", "lower": "negative transfer"}.get(c.verdict, "no clear difference"))
        rows[name] = {"mean": mean, "gain": c.mean_difference, "low": math.nan if c.low is None else c.low,
                      "high": math.nan if c.high is None else c.high, "verdict": verdict}
    return pd.DataFrame.from_dict(rows, orient="index")
