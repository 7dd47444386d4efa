"""Run profiles, device choice and seeding."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tlcourse as tl


def test_three_profiles_with_the_documented_roles() -> None:
    assert set(tl.PROFILES) == {"quick", "cpu", "full"}
    quick, cpu, full = (tl.PROFILES[n] for n in ("quick", "cpu", "full"))
    assert quick.device == "cpu" and quick.source_epochs == 1 and quick.target_epochs == 1
    assert quick.train_size is not None and quick.train_size <= 2_000  # tiny subsets for CI
    assert cpu.train_size is None and cpu.source_epochs == 10 and cpu.target_epochs == 10  # full LeNet case study
    assert full.train_size is None and full.standin_train == 60_000  # stand-ins at the real datasets' size
    for p in tl.PROFILES.values():
        assert p.name in tl.PROFILES and len(p.seeds) >= 2 and all(k > 0 for k in p.label_budgets)


def test_every_profile_field_has_a_comment() -> None:
    import inspect

    source = inspect.getsource(tl.Profile)
    for field in dataclasses.fields(tl.Profile):
        line = next(l for l in source.splitlines() if l.strip().startswith(f"{field.name}:"))
        assert "#" in line, f"Profile.{field.name} has no comment"


def test_environment_variable_picks_the_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.PROFILE_ENV, "quick")
    assert tl.get_profile().name == "quick"
    monkeypatch.setenv(tl.PROFILE_ENV, " CPU ")
    assert tl.get_profile().name == "cpu"


def test_default_is_full_with_cuda_else_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(tl.PROFILE_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert tl.get_profile().name == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert tl.get_profile().name == "full"


def test_unknown_profile_lists_the_valid_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"Unknown run profile 'fast'.*cpu, full, quick"):
        tl.get_profile("fast")
    monkeypatch.setenv(tl.PROFILE_ENV, "gpu")
    with pytest.raises(ValueError, match=r"'gpu'.*TLCOURSE_PROFILE"):
        tl.get_profile()


def test_overrides_replace_fields_without_touching_the_registry() -> None:
    p = tl.get_profile("cpu", target_epochs=3)
    assert p.target_epochs == 3 and tl.PROFILES["cpu"].target_epochs == 10
    with pytest.raises(TypeError):
        tl.get_profile("cpu", no_such_field=1)


def test_choose_device() -> None:
    assert tl.choose_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None:
        assert tl.choose_device("auto").type in {"cpu", "mps"}
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            tl.choose_device("cuda")
    else:
        assert tl.choose_device("auto").type == "cuda"


def test_seed_everything_repeats_random_streams() -> None:
    g1 = tl.seed_everything(3)
    a = (torch.rand(3), torch.rand(2, generator=g1))
    g2 = tl.seed_everything(3)
    b = (torch.rand(3), torch.rand(2, generator=g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
