"""Fusing weights: interpolation curves, loss barriers, model soups, an interactive λ slider.

The course's fusion formula θ_T = λ·θ_S + (1−λ)·θ_T' is ``tl.interpolate_state_dicts``;
this module measures what it does:

* ``interpolation_curve`` evaluates a network at many points on the straight line between
  two weight vectors (the WiSE-FT picture of Wortsman et al., 2022, when the end points
  are a pretrained and a fine-tuned network); ``barrier`` reads the loss or accuracy
  barrier off such a curve.
* ``with_head`` puts a head fitted elsewhere on a network (a probe on the source's body).
* ``lambda_slider`` draws the metrics at one λ and attaches an ipywidgets slider.

Averaging several fine-tuned networks (model soups) is ``tlcourse.soups``.

Example:
    >>> import torch, tlcourse as tl
    >>> sd = tl.LeNet().state_dict()
    >>> curve = tl.interpolation_curve(tl.LeNet(), sd, sd, lams=[0.0, 1.0], metrics=lambda m: {"n": 1.0})
    >>> curve["lam"].tolist()
    [0.0, 1.0]
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from .interpolation import interpolate_state_dicts

__all__ = [
    "interpolation_curve",
    "barrier",
    "plot_interpolation",
    "with_head",
    "lambda_slider",
]

StateDict = Mapping[str, torch.Tensor]
Metrics = Callable[[nn.Module], Mapping[str, float]]


def interpolation_curve(model: nn.Module, sd_a: StateDict, sd_b: StateDict, *, lams: Sequence[float],
                        metrics: Metrics) -> pd.DataFrame:
    """Evaluate ``λ·sd_a + (1−λ)·sd_b`` for every λ in ``lams``; one row per λ.

    ``model`` only provides the architecture: a copy is loaded with each blend, so
    ``model`` itself is not changed.

    Args:
        model: a network with the state dicts' keys and shapes.
        sd_a: weights at λ = 1 (in the course: the source θ_S).
        sd_b: weights at λ = 0 (the fine-tuned θ_T').
        lams: the λ values, in [0, 1].
        metrics: ``metrics(network) -> {"name": value, ...}``, e.g. accuracies on two test sets.

    Returns:
        A DataFrame with a column ``lam`` and one column per metric.

    Example:
        >>> a, b = nn.Linear(2, 1), nn.Linear(2, 1)
        >>> curve = interpolation_curve(a, a.state_dict(), b.state_dict(), lams=[0, 0.5, 1],
        ...                             metrics=lambda m: {"w0": m.weight[0, 0].item()})
        >>> list(curve.columns)
        ['lam', 'w0']
    """
    if len(lams) == 0:
        raise ValueError("interpolation_curve: lams is empty; pass the λ values to evaluate, e.g. [0, 0.5, 1].")
    work = copy.deepcopy(model)
    rows = []
    for lam in lams:
        work.load_state_dict(interpolate_state_dicts(sd_a, sd_b, float(lam)))
        rows.append({"lam": float(lam), **{k: float(v) for k, v in metrics(work).items()}})
    return pd.DataFrame(rows)


def barrier(curve: pd.DataFrame, column: str, *, higher_is_better: bool) -> float:
    """The barrier on an interpolation curve: the worst gap below the straight line between its ends.

    For a loss, ``max_λ [ L(λ) − ((1−λ)·L(0) + λ·L(1)) ]``; for an accuracy the same with
    the sign flipped, so a positive barrier always means "worse in the middle than the
    ends predict" and 0 means the path between them is (at least) as good as the ends.

    Args:
        curve: from ``interpolation_curve`` (column ``lam`` from 0 to 1).
        column: the metric.
        higher_is_better: ``True`` for accuracy, ``False`` for loss.

    Example:
        >>> barrier(pd.DataFrame({"lam": [0, 0.5, 1], "loss": [1.0, 3.0, 2.0]}), "loss", higher_is_better=False)
        1.5
    """
    c = curve.sort_values("lam")
    lam, v = c["lam"].to_numpy(float), c[column].to_numpy(float)
    if len(lam) == 0 or lam[0] != 0 or lam[-1] != 1:
        raise ValueError("the curve must include λ = 0 and λ = 1")
    line = (1 - lam) * v[0] + lam * v[-1]
    gap = (line - v) if higher_is_better else (v - line)
    return float(max(gap.max(), 0.0))


def plot_interpolation(curves: pd.DataFrame | Sequence[pd.DataFrame], columns: Sequence[str], *,
                       labels: Sequence[str] | None = None, ylabel: str = "", title: str = "",
                       percent: bool = False, lam_label: str = "λ", ax=None) -> Figure:
    """Metrics against λ; with several curves (one per seed) the mean line and a min-max band.

    Args:
        curves: one DataFrame from ``interpolation_curve``, or one per seed (same λ grid).
        columns: the metrics to draw.
        labels: legend entries (default: the column names).
        ylabel, title: axis label and title.
        percent: multiply by 100.
        lam_label: the x-axis label.
        ax: draw into these axes instead of a new figure.

    Example:
        >>> fig = plot_interpolation(pd.DataFrame({"lam": [0, 1], "acc": [0.5, 0.7]}), ["acc"])
    """
    curves = [curves] if isinstance(curves, pd.DataFrame) else list(curves)
    if not curves or not columns:
        raise ValueError("plot_interpolation needs at least one curve and one column to draw.")
    if ax is None:
        fig = Figure(figsize=(6.4, 3.6))
        ax = fig.subplots()
    else:
        fig = ax.figure
    scale = 100 if percent else 1
    lam = curves[0]["lam"].to_numpy(float)
    for i, col in enumerate(columns):
        values = np.stack([c[col].to_numpy(float) for c in curves]) * scale  # (seeds, len(lam))
        label = labels[i] if labels else col
        (line,) = ax.plot(lam, values.mean(0), marker="o", ms=3, label=label)
        if len(curves) > 1:
            ax.fill_between(lam, values.min(0), values.max(0), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel(lam_label)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def with_head(model: nn.Module, head_state: StateDict, *, head: str) -> nn.Module:
    """A copy of ``model`` whose module ``head`` gets the weights ``head_state`` (e.g. the source's classifier).

    Lets one body be evaluated on two tasks: the fine-tuned head for the target, the
    source's head for the source.

    Args:
        model: the network (not changed).
        head_state: the head's own state dict (keys ``weight``, ``bias``).
        head: the head's module name, e.g. ``"fc2"``.

    Example:
        >>> m, other = tl.LeNet(), tl.LeNet()
        >>> torch.equal(with_head(m, other.fc2.state_dict(), head="fc2").fc2.weight, other.fc2.weight)
        True
    """
    out = copy.deepcopy(model)
    out.get_submodule(head).load_state_dict(head_state)
    return out


def lambda_slider(model: nn.Module, sd_a: StateDict, sd_b: StateDict, *, metrics: Metrics,
                  curve: pd.DataFrame | None = None, lam: float = 0.5, step: float = 0.05,
                  percent: bool = True, title: str = "") -> object:
    """Show the metrics of ``λ·sd_a + (1−λ)·sd_b`` at one λ, with a slider that recomputes them.

    The figure for the default ``lam`` is drawn first, as an ordinary output (so a
    notebook run without a widget frontend, as in CI or on the website, still shows it);
    then an ipywidgets ``FloatSlider`` is attached. Moving it loads the new blend,
    re-evaluates it and redraws the same figure in place.

    Args:
        model: gives the architecture (not changed).
        sd_a, sd_b: the end points (λ = 1 and λ = 0).
        metrics: ``metrics(network) -> {"name": value}``.
        curve: a precomputed ``interpolation_curve`` to draw behind the point.
        lam: the λ shown first.
        step: the slider's step.
        percent: metrics are fractions; show them in percent.
        title: the figure's title.

    Returns:
        The slider (``None`` when ipywidgets is not installed: then only the figure is shown).

    Example:
        >>> slider = lambda_slider(tl.LeNet(), sd, sd, metrics=lambda m: {"zero": 0.0})  # doctest: +SKIP
    """
    from IPython.display import display

    work = copy.deepcopy(model)
    scale = 100 if percent else 1

    def draw(value: float) -> Figure:
        work.load_state_dict(interpolate_state_dicts(sd_a, sd_b, value))
        now = {k: float(v) for k, v in metrics(work).items()}
        fig = Figure(figsize=(6.4, 3.6))
        ax = fig.subplots()
        if curve is not None:
            plot_interpolation(curve, [c for c in now if c in curve], percent=percent, ax=ax)
            for line in ax.get_lines():
                line.set_alpha(0.45)
        for name, v in now.items():
            ax.plot([value], [scale * v], marker="o", ms=9, ls="none",
                    label=f"{name} at λ={value:.2f}: {scale * v:.1f}")
        ax.axvline(value, color="grey", lw=0.8, ls="--")
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("λ  (0: fine-tuned θ_T',  1: source θ_S)")
        ax.set_ylabel("accuracy (%)" if percent else "value")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        return fig

    handle = display(draw(lam), display_id=True)
    try:
        import ipywidgets as widgets
    except ImportError:  # the static figure is all there is
        return None
    slider = widgets.FloatSlider(value=lam, min=0.0, max=1.0, step=step, description="λ",
                                 continuous_update=False, readout_format=".2f")

    def redraw(change: dict) -> None:
        fig = draw(float(change["new"]))
        if handle is not None:
            handle.update(fig)
        else:
            display(fig)

    slider.observe(redraw, names="value")
    display(slider)
    return slider
