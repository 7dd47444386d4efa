"""Run profiles, device choice and seeding."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import tlcourse as tl


def test_three_profiles_with_the_documented_roles() -> None:
    assert set(tl.PROFILES) == {"quick", "cpu", "full"}
    quick, cpu, full = (tl.PROFILES[n] for n in ("quick", "cpu", "full"))
    assert quick.device == "cpu" and quick.target_epochs == 1  # one target epoch for CI
    # issue 12: the quick source must learn (it had 1 epoch of 1,000 digits: 23-38 % accuracy); see test_offline
    assert quick.train_size is not None and 4_000 <= quick.train_size <= 5_000 and quick.source_epochs == 5
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


def test_a_profile_typo_names_the_nearest_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"Unknown run profile 'quik'. Did you mean 'quick'\?"):
        tl.get_profile("quik")
    monkeypatch.setenv(tl.PROFILE_ENV, "fulll")
    with pytest.raises(ValueError, match=r"'fulll' in TLCOURSE_PROFILE. Did you mean 'full'\?"):
        tl.get_profile()


def test_the_session_profile_outranks_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10 item 9: the profile a session starts with is the default of every later get_profile()."""
    monkeypatch.setenv(tl.PROFILE_ENV, "cpu")
    assert tl.set_session_profile(profile="quick").name == "quick"
    assert tl.get_profile().name == "quick"
    assert tl.get_profile(target_epochs=4).target_epochs == 4 and tl.get_profile().target_epochs == 1
    assert tl.get_profile("full").name == "full"  # an explicit name still wins
    custom = tl.get_profile("quick", standin_train=40)
    tl.set_session_profile(profile=custom)
    assert tl.get_profile() is custom  # a Profile object is kept as it is
    with pytest.raises(ValueError, match="Unknown run profile 'fast'"):
        tl.set_session_profile(profile="fast")
    assert tl.get_profile() is custom  # the bad name changed nothing
    tl.set_session_profile(profile=None)
    assert tl.get_profile().name == "cpu"  # forgotten: the environment decides again


def test_env_profile_name_reads_and_checks_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.PROFILE_ENV, "  ")
    assert tl.env_profile_name() is None
    monkeypatch.setenv(tl.PROFILE_ENV, "Quick")
    assert tl.env_profile_name() == "quick"
    monkeypatch.setenv(tl.PROFILE_ENV, "gpu")
    with pytest.raises(ValueError, match="Valid profiles: cpu, full, quick"):
        tl.env_profile_name()


@pytest.mark.parametrize(("value", "expected"), [
    ("1", True), ("true", True), (" YES ", True), ("On", True),
    ("0", False), ("false", False), ("no", False), ("OFF", False), ("", False), ("   ", False), (None, False),
])
def test_env_flag_accepts_clear_values(monkeypatch: pytest.MonkeyPatch, value: str | None, expected: bool) -> None:
    if value is None:
        monkeypatch.delenv("TLCOURSE_TEST_FLAG", raising=False)
    else:
        monkeypatch.setenv("TLCOURSE_TEST_FLAG", value)
    assert tl.env_flag("TLCOURSE_TEST_FLAG") is expected


@pytest.mark.parametrize("value", ["2", "maybe", "y", "enabled", "-1"])
def test_env_flag_rejects_anything_else_naming_the_accepted_values(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Issue 10 item 11: TLCOURSE_STANDIN=2 / maybe were read as "off" without a word."""
    monkeypatch.setenv("TLCOURSE_TEST_FLAG", value)
    with pytest.raises(ValueError, match=rf"TLCOURSE_TEST_FLAG='{value}' is not an on/off value. Use 1, true, yes or on"
                                         r" for on; 0, false, no or off \(or leave it empty or unset\) for off"):
        tl.env_flag("TLCOURSE_TEST_FLAG")


def test_env_flag_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLCOURSE_TEST_FLAG", raising=False)
    assert tl.env_flag("TLCOURSE_TEST_FLAG", default=True) is True
    monkeypatch.setenv("TLCOURSE_TEST_FLAG", " ")
    assert tl.env_flag("TLCOURSE_TEST_FLAG", default=True) is True
    monkeypatch.setenv("TLCOURSE_TEST_FLAG", "0")
    assert tl.env_flag("TLCOURSE_TEST_FLAG", default=True) is False
    monkeypatch.setenv("TLCOURSE_TEST_FLAG", "2")
    with pytest.raises(ValueError, match=r"Use 1, true, yes or on \(or leave it empty or unset\) for on; 0, false, "
                                         r"no or off for off\.$"):
        tl.env_flag("TLCOURSE_TEST_FLAG", default=True)


@pytest.mark.parametrize(("value", "expected"), [(None, set()), ("", set()), ("off", set()), ("1", {"a", "bb"}),
                                                  ("TRUE", {"a", "bb"}), ("bb", {"bb"}), (" bb , A ", {"a", "bb"})])
def test_env_selection_reads_all_none_or_a_list(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                                expected: set[str]) -> None:
    if value is None:
        monkeypatch.delenv("TLCOURSE_TEST_SEL", raising=False)
    else:
        monkeypatch.setenv("TLCOURSE_TEST_SEL", value)
    assert tl.env_selection("TLCOURSE_TEST_SEL", choices=["a", "bb"]) == expected


@pytest.mark.parametrize(("value", "problem"), [("b", "names 'b', which is not one of them. Did you mean 'bb'?"),
                                                ("a,,bb", "has an empty entry."), ("2", "names '2'")])
def test_env_selection_refuses_the_unknown(monkeypatch: pytest.MonkeyPatch, value: str, problem: str) -> None:
    monkeypatch.setenv("TLCOURSE_TEST_SEL", value)
    with pytest.raises(ValueError) as info:
        tl.env_selection("TLCOURSE_TEST_SEL", choices=["a", "bb"])
    assert str(info.value).startswith(f"TLCOURSE_TEST_SEL={value!r} {problem}")
    assert str(info.value).endswith("or a comma-separated list of: a, bb.")


def test_env_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TLCOURSE_TEST_CHOICE", raising=False)
    assert tl.env_choice("TLCOURSE_TEST_CHOICE", choices=["strict", "lenient"]) is None
    monkeypatch.setenv("TLCOURSE_TEST_CHOICE", " STRICT ")
    assert tl.env_choice("TLCOURSE_TEST_CHOICE", choices=["strict", "lenient"]) == "strict"
    monkeypatch.setenv("TLCOURSE_TEST_CHOICE", "strcit")
    with pytest.raises(ValueError, match=r"TLCOURSE_TEST_CHOICE='strcit' .*Did you mean 'strict'\?.*lenient, strict"):
        tl.env_choice("TLCOURSE_TEST_CHOICE", choices=["strict", "lenient"])


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


def test_choose_device_refuses_devices_this_machine_lacks() -> None:
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        with pytest.raises(RuntimeError, match="'mps'.*not available"):
            tl.choose_device("mps")
    with pytest.raises(RuntimeError, match="CUDA is not available|does not exist"):
        tl.choose_device(f"cuda:{torch.cuda.device_count() + 1}")
