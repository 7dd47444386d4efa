"""Shifts and surgical fine-tuning: reference values of the shifts, only the arm's layers move, validation chooses."""

from __future__ import annotations

import pytest
import torch

import tlcourse as tl
from tlcourse.surgical import _tuned

CPU = torch.device("cpu")


def _images(n: int = 50, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_inverted_is_255_minus_each_pixel_and_its_own_inverse() -> None:
    x = _images()
    assert torch.equal(tl.inverted(x).int(), 255 - x.int())
    assert torch.equal(tl.inverted(tl.inverted(x)), x)
    with pytest.raises(ValueError, match="uint8"):
        tl.inverted(x.float())


def test_noisy_adds_seeded_gaussian_noise_of_the_given_spread_clipped() -> None:
    x = torch.full((200, 1, 28, 28), 128, dtype=torch.uint8)
    a, b = tl.noisy(x, std=0.1, seed=3), tl.noisy(x, std=0.1, seed=3)
    assert torch.equal(a, b) and not torch.equal(a, tl.noisy(x, std=0.1, seed=4))
    spread = (a.float() - 128).std().item()
    assert spread == pytest.approx(25.5, rel=0.02)  # 0.1 of 255; 128 ± 4 sd stays inside 0-255
    wide = tl.noisy(x, std=2.0, seed=0)
    assert wide.dtype == torch.uint8 and {0, 255} <= set(wide.unique().tolist())  # clipped at both ends
    with pytest.raises(ValueError, match="0 or more"):
        tl.noisy(x, std=-1, seed=0)


def test_permuted_labels_rename_every_class_consistently() -> None:
    y = torch.arange(10).repeat(5)
    for seed in range(20):
        z = tl.permuted_labels(y, seed=seed)
        perm = tl.label_derangement(10, seed=seed)
        assert torch.equal(z, perm[y]) and (z != y).all()
        assert sorted(perm.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="at least 2 classes"):
        tl.label_derangement(1, seed=0)


def test_the_relabelling_is_the_same_task_on_train_and_test_and_the_noise_is_not() -> None:
    s = tl.SurgicalSettings()
    x, y = _images(20), torch.arange(20) % 10
    _, y_train = tl.shifted("relabelled", x, y, settings=s, split="train")
    _, y_test = tl.shifted("relabelled", x, y, settings=s, split="test")
    assert torch.equal(y_train, y_test) and (y_train != y).all()
    assert not torch.equal(tl.shifted("noisy", x, y, settings=s, split="train")[0],
                           tl.shifted("noisy", x, y, settings=s, split="test")[0])
    with pytest.raises(ValueError, match="inverted"):
        tl.shifted("rotated", x, y, settings=s, split="train")


@pytest.mark.parametrize("arm", list(tl.SURGICAL_ARMS))
def test_each_arm_changes_only_its_layers_and_chooses_its_rate_among_those_tried(arm: str) -> None:
    torch.manual_seed(0)
    source = tl.LeNet()
    before = {k: v.clone() for k, v in source.state_dict().items()}
    x, y = _images(60), torch.arange(60) % 10
    settings = tl.SurgicalSettings(per_class=4, val_per_class=1, lrs=(1e-3, 1e-2), epochs=1, min_steps=2,
                                   batch_size=8)
    row = tl.surgical_run(source, (x, y), (x[:20], y[:20]), arm=arm, seed=0, settings=settings, device=CPU)
    assert all(torch.equal(v, source.state_dict()[k]) for k, v in before.items())  # the source is copied
    assert row["lr"] in settings.lrs and row["labels"] == 40 and 0 <= row["accuracy"] <= 1
    tuned = tl.freeze_all_but(tl.LeNet(), list(tl.SURGICAL_ARMS[arm]))
    assert row["trainable"] == sum(p.numel() for n, p in tl.LeNet().named_parameters() if n in tuned)
    model = _tuned(source, tl.SURGICAL_ARMS[arm], x, y, lr=1e-2,
                   settings=settings, seed=0, device=CPU)
    for name, value in model.state_dict().items():
        moved = not torch.equal(value, before[name])
        assert moved == (name.split(".")[0] in tl.SURGICAL_ARMS[arm]), name


def test_unknown_arms_and_shifts_name_the_choices() -> None:
    s = tl.SurgicalSettings()
    with pytest.raises(ValueError, match="first layer"):
        tl.surgical_run(tl.LeNet(), (_images(), torch.zeros(50, dtype=torch.long)), (_images(), torch.zeros(50)),
                        arm="middle layer", seed=0, settings=s)
