"""The text chapter's experiment: four ways to build a topic classifier, over label budgets and seeds.

* ``scratch``: the LSTM classifier from random weights, every layer trained on the labels;
* ``frozen embeddings``: WordLlama's pretrained token embeddings, frozen, averaged over the
  text, and a linear head;
* ``frozen encoder``: the language model's encoder (ULMFiT stages 1 and 2), frozen, its
  concat-pooled features and a linear head;
* ``fine-tuned``: the same encoder with a new head, trained with ULMFiT's gradual unfreezing
  and discriminative learning rates (``tl.gradual_unfreezing``: stage 3).

Scratch trains for as many optimiser steps as fine-tuning takes over all its stages. Every
arm of a seed sees the same labelled quotations (``TextTask.budget``) and the same test set,
touched once per run; nothing is tuned. Runs are saved after each one (atomically) and a
rerun continues where an interrupted one stopped. ``tl.compare_arms`` decides who wins.

Example:
    >>> import tlcourse as tl
    >>> tl.TEXT_ARMS
    ('scratch', 'frozen embeddings', 'frozen encoder', 'fine-tuned')
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from matplotlib.figure import Figure

from .adapt import fine_tune, gradual_unfreezing
from .names import unknown_choice
from .plots import plot_arms
from .results import results_dir
from .run_grid import run_grid
from .sources import data_fingerprint
from .text_lm import TextMaterial, TextSettings
from .text_models import CLASSIFIER_LAYERS, LanguageModel, LSTMEncoder, MeanEmbeddingClassifier, \
    SequenceClassifier, TensorBatches
from .text_tokens import pad_ids, wordllama_embeddings
from .train import evaluate

__all__ = ["TEXT_ARMS", "TextInputs", "text_inputs", "run_text_arm", "text_budget_experiment", "budget_label",
           "plot_text_budgets"]

TEXT_ARMS = ("scratch", "frozen embeddings", "frozen encoder", "fine-tuned")


def budget_label(budget: int | None) -> str:
    """``8`` → ``"8"``, ``None`` (the whole pool) → ``"all"``."""
    return "all" if budget is None else str(budget)


class TextInputs:
    """What the arms read, padded once: vocabulary ids (the small models) and WordLlama ids (its embeddings)."""

    def __init__(self, material: TextMaterial, settings: TextSettings, lm: LanguageModel,
                 device: torch.device) -> None:
        v, n = material.vocab, settings.max_length
        self.material, self.settings, self.lm, self.device = material, settings, lm, device
        self.pool = pad_ids([v.encode(i) for i in material.pool_ids], max_length=n)
        self.test = pad_ids([v.encode(i) for i in material.test_ids], max_length=n)
        self.pool_wl = pad_ids(material.pool_ids, max_length=n)
        self.test_wl = pad_ids(material.test_ids, max_length=n)
        self.pool_y, self.test_y = material.task.pool_labels, material.task.test_labels
        self.classes = len(material.task.classes)
        self._frozen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def mismatched(self) -> TextInputs:
        """A copy that hands WordLlama's embeddings the *vocabulary's* ids: the wrong tokenizer for them.

        Every id then picks the embedding of some unrelated piece (the vocabulary numbers
        pieces by how often the corpus uses them, WordLlama's tokenizer by its own merges).
        """
        other = copy.copy(self)
        other.pool_wl, other.test_wl, other._frozen = self.pool, self.test, {}
        return other

    @torch.no_grad()
    def frozen_features(self, arm: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool and test features of a frozen arm, computed once (a frozen network gives the same every time)."""
        if arm not in self._frozen:
            if arm == "frozen embeddings":
                net, pool, test = MeanEmbeddingClassifier(wordllama_embeddings(), num_classes=1), self.pool_wl, self.test_wl
            else:
                net = SequenceClassifier(copy.deepcopy(self.lm.encoder), num_classes=1)
                pool, test = self.pool, self.test
            net = net.to(self.device).eval()
            self._frozen[arm] = tuple(torch.cat([net.features(b.to(self.device)).cpu() for b in x.split(256)])
                                      for x in (pool, test))
        return self._frozen[arm]


def text_inputs(material: TextMaterial, settings: TextSettings, lm: LanguageModel, *,
                device: torch.device | str = "cpu") -> TextInputs:
    """The padded inputs of every arm, for the task in ``material`` and the encoder of ``lm``."""
    return TextInputs(material, settings, lm, torch.device(device))


def _linear_head(features: torch.Tensor, y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor, *,
                 classes: int, settings: TextSettings, seed: int) -> float:
    """Test accuracy of a linear head trained (full batch, Adam) on standardised frozen features."""
    mean, std = features.mean(dim=0), features.std(dim=0).clamp(min=1e-6) if len(features) > 1 else 1.0
    torch.manual_seed(seed)
    head = torch.nn.Linear(features.shape[1], classes)
    batches = TensorBatches((features - mean) / std, y, batch_size=len(y), seed=seed)
    fine_tune(head, batches, epochs=settings.head_steps, lr=settings.head_lr, device=torch.device("cpu"))
    return evaluate(head, [((test - mean) / std, test_y)], torch.device("cpu"))["accuracy"]


def run_text_arm(arm: str, inputs: TextInputs, *, budget: int | None, seed: int) -> dict[str, Any]:
    """One run of one arm: train on ``budget`` labelled quotations per topic (seed ``seed``), test once.

    Returns:
        ``{"method", "budget", "seed", "labels", "accuracy", "seconds"}``.
    """
    if arm not in TEXT_ARMS:
        raise ValueError(unknown_choice("text arm", arm, TEXT_ARMS))
    s, device, t0 = inputs.settings, inputs.device, time.perf_counter()
    idx = inputs.material.task.budget(budget, seed=seed)
    y = inputs.pool_y[idx]
    if arm in ("frozen embeddings", "frozen encoder"):
        pool, test = inputs.frozen_features(arm)
        acc = _linear_head(pool[idx], y, test, inputs.test_y, classes=inputs.classes, settings=s, seed=seed)
    else:
        batches = TensorBatches(inputs.pool[idx], y, batch_size=s.batch_size, seed=seed, device=device)
        per_stage = max(1, math.ceil(s.min_steps / len(batches)))
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            if arm == "scratch":
                encoder = LSTMEncoder(s.vocab_size, dim=s.dim, hidden=s.hidden)
            else:
                encoder = copy.deepcopy(inputs.lm.encoder)
            model = SequenceClassifier(encoder, num_classes=inputs.classes).to(device)
            if arm == "scratch":  # as many optimiser steps as fine-tuning's stages take together
                fine_tune(model, batches, epochs=per_stage * len(CLASSIFIER_LAYERS), lr=s.lr, device=device)
            else:
                gradual_unfreezing(model, batches, layers=CLASSIFIER_LAYERS, epochs_per_stage=per_stage, lr=s.lr,
                                   decay=s.decay, device=device)
        test = TensorBatches(inputs.test, inputs.test_y, batch_size=256, shuffle=False, device=device)
        acc = evaluate(model, test, device, progress=False)["accuracy"]
    return {"method": arm, "budget": budget_label(budget), "seed": seed, "labels": len(idx), "accuracy": acc,
            "seconds": round(time.perf_counter() - t0, 2)}


def text_budget_experiment(inputs: TextInputs, *, arms: tuple[str, ...] = TEXT_ARMS,
                           path: str | Path | None = None, progress: bool = True) -> pd.DataFrame:
    """Every arm × budget × seed of ``inputs.settings``; saved after each run, resumed when rerun.

    The results file ``results/text-budgets-<fingerprint>.json`` is named after the task,
    the encoder's weights and the settings: other settings write another file, never over this one.
    """
    for arm in arms:
        if arm not in TEXT_ARMS:
            raise ValueError(unknown_choice("text arm", arm, TEXT_ARMS))
    s = inputs.settings
    key = data_fingerprint(inputs.pool, inputs.test, inputs.pool_y, *inputs.lm.state_dict().values(), repr(s))
    path = Path(path) if path is not None else results_dir() / f"text-budgets-{key}.json"
    plan = [(a, b, seed) for b in s.budgets for seed in s.seeds for a in arms]
    runs = run_grid(plan, lambda a, b, seed: run_text_arm(a, inputs, budget=b, seed=seed), fingerprint=key,
                    path=path, key=lambda r: (r["method"], None if r["budget"] == "all" else int(r["budget"]),
                                              r["seed"]), progress=progress)
    table = pd.DataFrame(runs)
    table.attrs["chance"] = 1 / inputs.classes  # the test set holds as many quotations of every topic
    return table


def plot_text_budgets(runs: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Test accuracy against labelled quotations per topic: each arm's mean over seeds, bars from min to max."""
    chance = runs.attrs.get("chance")
    return plot_arms(runs, x="budget", value="accuracy", scale=100, xlabel="labelled quotations per topic",
                     ylabel="test accuracy (%)", title=title or "Topic of a quotation: four ways to start",
                     reference=None if chance is None else ("chance", 100 * chance))
