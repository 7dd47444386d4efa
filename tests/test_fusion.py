"""Weight fusion: soups against the models they average, curves against their end points, barriers by hand."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

import tlcourse as tl

CPU = torch.device("cpu")


def _nets(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return tl.LeNetBN(), tl.LeNetBN()


def test_the_soup_of_identical_models_is_the_model() -> None:
    model, _ = _nets()
    with torch.no_grad():
        model.bn1.running_mean.uniform_()  # buffers too
    model.bn1.num_batches_tracked.fill_(7)
    sd = model.state_dict()
    soup = tl.uniform_soup([sd, sd, sd])
    assert soup.keys() == sd.keys()
    assert all(torch.equal(soup[k], sd[k]) and soup[k].dtype == sd[k].dtype for k in sd)  # exactly, not roughly
    x = torch.randn(4, 1, 28, 28)
    souped = tl.LeNetBN().eval()
    souped.load_state_dict(soup)
    assert torch.equal(souped(x), model.eval()(x))


def test_a_soup_of_two_is_the_midpoint_of_the_interpolation() -> None:
    a, b = _nets()
    soup = tl.uniform_soup([a.state_dict(), b.state_dict()])
    mid = tl.interpolate_state_dicts(a.state_dict(), b.state_dict(), 0.5)
    for k in soup:
        torch.testing.assert_close(soup[k], mid[k]) if soup[k].is_floating_point() else None
    with pytest.raises(ValueError, match="other keys or shapes"):
        tl.uniform_soup([a.state_dict(), tl.LeNet().state_dict()])
    with pytest.raises(ValueError, match="at least one"):
        tl.uniform_soup([])


def test_greedy_soup_keeps_only_ingredients_that_help() -> None:
    sds = [{"w": torch.tensor([v])} for v in (4.0, 1.0, 2.5, 9.0)]
    score = lambda sd: -abs(float(sd["w"]) - 2.0)  # noqa: E731 - best soup: w close to 2
    soup, chosen = tl.greedy_soup(sds, score)
    # order by own score: 2.5 (idx 2), 1.0 (idx 1), 4.0 (idx 0), 9.0 (idx 3)
    # 2.5 -> {2.5, 1.0} = 1.75 (score -0.25 >= -0.5: keep) -> {2.5, 1, 4} = 2.5 (-0.5: drop) -> {.., 9}: drop
    assert chosen == [1, 2]
    assert float(soup["w"]) == pytest.approx(1.75)


def test_interpolation_curve_end_points_are_the_two_models_and_the_model_is_untouched() -> None:
    a, b = _nets()
    a.eval(), b.eval()
    x = torch.randn(3, 1, 28, 28)
    before = {k: v.clone() for k, v in a.state_dict().items()}
    curve = tl.interpolation_curve(a, a.state_dict(), b.state_dict(), lams=[0.0, 0.5, 1.0],
                                   metrics=lambda m: {"out": float(m.eval()(x).detach().sum())})
    assert curve["lam"].tolist() == [0.0, 0.5, 1.0]
    assert curve["out"].iloc[0] == pytest.approx(float(b(x).detach().sum()), rel=1e-6)
    assert curve["out"].iloc[-1] == pytest.approx(float(a(x).detach().sum()), rel=1e-6)
    assert all(torch.equal(before[k], v) for k, v in a.state_dict().items())


def test_barrier_by_hand() -> None:
    curve = pd.DataFrame({"lam": [0.0, 0.25, 0.5, 0.75, 1.0], "loss": [1.0, 2.0, 4.0, 2.5, 2.0],
                          "acc": [0.9, 0.5, 0.2, 0.6, 0.7]})
    # loss line: 1.0, 1.25, 1.5, 1.75, 2.0 -> gaps 0, .75, 2.5, .75, 0
    assert tl.barrier(curve, "loss", higher_is_better=False) == pytest.approx(2.5)
    # accuracy line: 0.9, 0.85, 0.8, 0.75, 0.7 -> gaps 0, .35, .6, .15, 0
    assert tl.barrier(curve, "acc", higher_is_better=True) == pytest.approx(0.6)
    linear = pd.DataFrame({"lam": [0.0, 0.5, 1.0], "loss": [1.0, 1.5, 2.0]})
    assert tl.barrier(linear, "loss", higher_is_better=False) == 0.0
    with pytest.raises(ValueError, match="λ = 0 and λ = 1"):
        tl.barrier(linear.iloc[:2], "loss", higher_is_better=False)


def test_logit_ensemble_and_with_head() -> None:
    a, b = _nets()
    a.eval(), b.eval()
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(tl.LogitEnsemble([a, b]).eval()(x), (a(x) + b(x)) / 2)
    swapped = tl.with_head(a, b.fc2.state_dict(), head="fc2")
    assert torch.equal(swapped.fc2.weight, b.fc2.weight) and torch.equal(swapped.conv1.weight, a.conv1.weight)
    assert not torch.equal(a.fc2.weight, b.fc2.weight)  # the original keeps its head


def test_plot_interpolation_draws_a_band_for_several_curves() -> None:
    c1 = pd.DataFrame({"lam": [0.0, 1.0], "acc": [0.5, 0.7]})
    c2 = pd.DataFrame({"lam": [0.0, 1.0], "acc": [0.6, 0.9]})
    fig = tl.plot_interpolation([c1, c2], ["acc"], percent=True, title="t")
    ax = fig.axes[0]
    assert ax.get_lines()[0].get_ydata().tolist() == pytest.approx([55.0, 80.0])
    assert len(ax.collections) == 1  # the min-max band


def test_lambda_slider_draws_first_and_recomputes_on_change(capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("ipywidgets")
    a, b = _nets()
    calls: list[float] = []

    def metrics(m: nn.Module) -> dict[str, float]:
        calls.append(float(m.fc2.bias[0].detach()))
        return {"acc": 0.5}

    slider = tl.lambda_slider(a, a.state_dict(), b.state_dict(), metrics=metrics, lam=0.25)
    assert len(calls) == 1  # the static figure, drawn before any widget
    expected = 0.25 * a.fc2.bias[0].item() + 0.75 * b.fc2.bias[0].item()
    assert calls[0] == pytest.approx(expected, rel=1e-5)
    slider.value = 1.0
    assert len(calls) == 2 and calls[1] == pytest.approx(a.fc2.bias[0].item())


def test_empty_inputs_raise_a_clear_error() -> None:
    calls: list[int] = []
    with pytest.raises(ValueError, match="greedy_soup: state_dicts is empty; a soup needs at least one"):
        tl.greedy_soup([], lambda sd: calls.append(1) or 0.0)
    with pytest.raises(ValueError, match="uniform_soup: state_dicts is empty"):
        tl.uniform_soup([])
    a, b = _nets()
    with pytest.raises(ValueError, match="lams is empty"):
        tl.interpolation_curve(a, a.state_dict(), b.state_dict(), lams=[], metrics=lambda m: {"x": 0.0})
    with pytest.raises(ValueError, match="λ = 0 and λ = 1"):
        tl.barrier(pd.DataFrame({"lam": [], "loss": []}), "loss", higher_is_better=False)
    with pytest.raises(ValueError, match="at least one curve"):
        tl.plot_interpolation([], ["acc"])
    with pytest.raises(ValueError, match="at least one model"):
        tl.LogitEnsemble([])
    assert calls == []


def test_greedy_soup_checks_the_ingredients_before_scoring_any() -> None:
    calls: list[int] = []
    with pytest.raises(ValueError, match="(?i)ingredient 1 has other keys or shapes"):
        tl.greedy_soup([tl.LeNet().state_dict(), tl.LeNetBN().state_dict()], lambda sd: calls.append(1) or 0.0)
    assert calls == []  # no costly evaluation before the error
