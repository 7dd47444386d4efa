"""ULMFiT's first two stages on real text: pretrain a language model, then fine-tune it on the target's text.

``text_settings`` gives the sizes of a run profile; ``text_material`` reads the fortune
quotations once (the labelled task, the unlabelled corpus, WordLlama's token ids and a
vocabulary built on the corpus); ``train_language_model`` trains a ``LanguageModel`` with
``tl.fit`` — once: a checkpoint named after a fingerprint of its data and settings is
loaded by later calls, and an interrupted training resumes from its last finished epoch.

Example:
    >>> import tlcourse as tl
    >>> tl.text_settings(tl.get_profile("quick")).budgets
    (8, 32)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import Profile, get_profile
from .sources import checkpoint_dir, data_fingerprint, fit_once
from .text_data import TextTask, topic_task, unlabelled_corpus
from .text_models import LanguageModel, LMWindows, LSTMEncoder
from .text_tokens import EOS, PAD, UNK, Vocabulary, token_ids, wordllama_tokenizer
from .train import History

__all__ = ["TextSettings", "TEXT_SETTINGS", "text_settings", "TextMaterial", "text_material", "TrainedLM",
           "train_language_model", "next_token_guesses"]


@dataclass(frozen=True)
class TextSettings:
    """How big the text chapter's runs are; fixed in advance (nothing here is tuned on the test set)."""

    corpus_limit: int | None  # unlabelled quotations the language model is pretrained on; None = all
    pool_limit: int | None  # labelled quotations kept per topic to draw budgets from; None = all
    test_per_class: int  # held-out test quotations per topic
    vocab_size: int  # pieces the small models know (the rest are <unk>)
    dim: int  # embedding size = the encoder's output size
    hidden: int  # the first LSTM layer's size
    window: int  # tokens per language-model window
    pretrain_epochs: int  # stage 1: on the unlabelled corpus
    lm_finetune_epochs: int  # stage 2: on the target's texts, without labels
    max_length: int  # tokens of a quotation the classifiers read
    batch_size: int
    budgets: tuple[int | None, ...]  # labelled quotations per topic; None = the whole pool
    seeds: tuple[int, ...]
    min_steps: int  # optimiser steps a classifier trains at least (per stage when unfreezing gradually)
    lm_lr: float = 3e-3
    lr: float = 2e-3  # the classifiers' rate (the head's, with discriminative rates)
    decay: float = 1 / 2.6  # ULMFiT's factor between the learning rates of neighbouring layers
    head_lr: float = 1e-2  # a linear head on frozen features
    head_steps: int = 300


TEXT_SETTINGS = {
    # CI: a slice of everything; results show that the code runs, not what transfer does.
    "quick": TextSettings(corpus_limit=1_500, pool_limit=120, test_per_class=50, vocab_size=2_000, dim=64,
                          hidden=64, window=48, pretrain_epochs=1, lm_finetune_epochs=1, max_length=48,
                          batch_size=32, budgets=(8, 32), seeds=(0, 1), min_steps=4, head_steps=100),
    # A laptop's two cores: every quotation, four budgets, three seeds, in minutes.
    "cpu": TextSettings(corpus_limit=None, pool_limit=None, test_per_class=100, vocab_size=4_000, dim=128,
                        hidden=128, window=64, pretrain_epochs=2, lm_finetune_epochs=2, max_length=64,
                        batch_size=32, budgets=(8, 32, 128, None), seeds=(0, 1, 2), min_steps=40),
    # A GPU: a bigger model trained longer, five seeds.
    "full": TextSettings(corpus_limit=None, pool_limit=None, test_per_class=100, vocab_size=8_000, dim=256,
                         hidden=512, window=64, pretrain_epochs=10, lm_finetune_epochs=5, max_length=128,
                         batch_size=32, budgets=(8, 32, 128, None), seeds=(0, 1, 2, 3, 4), min_steps=80),
}


def text_settings(profile: Profile | None = None) -> TextSettings:
    """The text chapter's settings for ``profile`` (default ``get_profile()``)."""
    return TEXT_SETTINGS[(profile or get_profile()).name]


@dataclass(frozen=True)
class TextMaterial:
    """The chapter's text, read and tokenised once: the task, the corpus, their WordLlama ids, the vocabulary."""

    task: TextTask
    corpus: list[str]  # unlabelled quotations (no task topic)
    corpus_ids: list[list[int]]  # WordLlama tokenizer ids of each
    pool_ids: list[list[int]]
    test_ids: list[list[int]]
    vocab: Vocabulary  # built on the corpus alone, without its held-out part
    held_out: int  # the corpus's first quotations (5%): seen neither by the vocabulary nor by pretraining

    def __repr__(self) -> str:
        tokens = sum(map(len, self.corpus_ids))
        return (f"{self.task!r}\nUnlabelled corpus: {len(self.corpus):,} quotations, {tokens:,} tokens; "
                f"{self.vocab!r}")


def text_material(settings: TextSettings) -> TextMaterial:
    """Read the fortune quotations and tokenise them as ``settings`` says.

    The corpus's first 5% (``held_out``) is kept out of the vocabulary, so that its coverage
    of held-out corpus text can be compared with its coverage of the target's.
    """
    task = topic_task(test_per_class=settings.test_per_class, pool_limit=settings.pool_limit)
    corpus = unlabelled_corpus(task)
    if settings.corpus_limit is not None:
        g = torch.Generator().manual_seed(0)
        keep = sorted(torch.randperm(len(corpus), generator=g)[: settings.corpus_limit].tolist())
        corpus = [corpus[i] for i in keep]
    corpus_ids = token_ids(corpus)
    held_out = max(1, len(corpus) // 20)
    return TextMaterial(task, corpus, corpus_ids, token_ids(task.pool_texts), token_ids(task.test_texts),
                        Vocabulary(corpus_ids[held_out:], size=settings.vocab_size), held_out)


@dataclass
class TrainedLM:
    """A language model from ``train_language_model`` and how it got there."""

    model: LanguageModel  # in eval mode
    history: History  # per epoch: loss (nats per token) and next-token accuracy on the held-out text
    tokens: int  # training tokens per epoch
    path: Path  # the checkpoint
    loaded: bool
    seconds: float

    @property
    def perplexity(self) -> float:
        """exp(held-out loss) after the last epoch: how many tokens it hesitates between, on average."""
        return math.exp(self.history.test_loss[-1])

    def __repr__(self) -> str:
        how = f"loaded from {self.path.name}" if self.loaded else f"trained in {self.seconds:.0f} s"
        return (f"LanguageModel: {self.history.epochs} epochs over {self.tokens:,} tokens ({how}); held-out "
                f"perplexity {self.perplexity:.0f}, next-token accuracy {self.history.test_acc[-1]:.1%}")


def train_language_model(texts: list[list[int]], held_out: list[list[int]], settings: TextSettings, *,
                         epochs: int, start: LanguageModel | None = None, seed: int = 0,
                         device: torch.device | str = "cpu", name: str = "lm") -> TrainedLM:
    """Train a ``LanguageModel`` on ``texts`` (vocabulary ids) once; later calls with the same inputs load it.

    Args:
        texts: the training text, as vocabulary ids (``material.vocab.encode``), one list per text.
        held_out: text it never trains on, for the loss and accuracy after each epoch.
        settings: sizes, window, learning rate.
        epochs: passes over ``texts``.
        start: a language model to continue from (stage 2 starts from stage 1's); None = random.
        seed: initialisation and window order.
        device: where it trains.
        name: the checkpoint's name prefix.
    """
    device = torch.device(device)
    train = LMWindows(texts, length=settings.window, batch_size=settings.batch_size, seed=seed, device=device)
    test = LMWindows(held_out, length=settings.window, batch_size=256, shuffle=False, device=device)
    start_key = data_fingerprint(*start.state_dict().values()) if start is not None else "random"
    key = data_fingerprint(train.x, test.x, start_key, seed, epochs, dataclasses.asdict(settings))
    path = checkpoint_dir() / f"{name}-{key}.pt"

    def fresh() -> LanguageModel:
        torch.manual_seed(seed)
        model = LanguageModel(LSTMEncoder(settings.vocab_size, dim=settings.dim, hidden=settings.hidden))
        if start is not None:
            model.load_state_dict(start.state_dict())
        return model.to(device)

    def setup(model: nn.Module) -> tuple[nn.Module, LMWindows, LMWindows, torch.optim.Optimizer]:
        return model, train, test, torch.optim.Adam(model.parameters(), lr=settings.lm_lr)

    t0 = time.perf_counter()
    model, history, loaded = fit_once(path, fresh=fresh, blank=fresh, setup=setup, epochs=epochs, device=device,
                                      fingerprint=key, what="language model", call="train_language_model")
    return TrainedLM(model, history, train.tokens, path, loaded, time.perf_counter() - t0)


@torch.no_grad()
def next_token_guesses(lm: LanguageModel, vocab: Vocabulary, text: str, *, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` pieces ``lm`` finds likeliest to follow ``text``, with their probabilities.

    Pieces are shown as WordLlama's tokenizer writes them (``▁`` starts a word);
    ``<unk>`` and ``<end>`` stand for the unknown piece and the end of a quotation,
    ``<newline>`` and ``<tab>`` for those two characters.
    """
    ids = vocab.encode(token_ids([text])[0])
    if not ids:
        raise ValueError("text holds no tokens: give the model something to continue")
    device = next(lm.parameters()).device
    probs = lm.eval()(torch.tensor([ids], device=device))[-1].softmax(dim=0).cpu()
    top = probs.topk(k)
    tok = wordllama_tokenizer()
    specials = {PAD: "<pad>", UNK: "<unk>", EOS: "<end>"}
    shown = {"<0x0A>": "<newline>", "<0x09>": "<tab>"}  # the byte pieces of a line break and a tab

    def piece(i: int) -> str:
        if i in specials:
            return specials[i]
        name = tok.id_to_token(vocab.pieces[i])
        return shown.get(name, name)

    return [(piece(i), round(float(p), 3)) for i, p in zip(top.indices.tolist(), top.values.tolist())]
