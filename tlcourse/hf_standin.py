"""A stand-in Hugging Face checkpoint, for running the ``transformers`` recipe offline and in tests.

``tiny_text_checkpoint`` writes, with ``save_pretrained``, what a real checkpoint folder
holds: a tiny DistilBERT with **random** weights and a tokenizer whose vocabulary comes from
the texts given, beside a marker file (``STANDIN_MARKER``) saying what it is.
``tl.hf_text_classifier(folder, ...)`` loads it like any checkpoint and flags it ``standin``:
it runs the same code as ``distilbert-base-uncased``, and its accuracy is never a finding.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = tiny_text_checkpoint(Path(tempfile.mkdtemp()) / "tiny", ["a good film", "a bad film"],
    ...                               labels=["neg", "pos"])
    >>> sorted(p.name for p in folder.iterdir())[:2]
    ['config.json', 'model.safetensors']
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from .hf_text import STANDIN_MARKER, _check_labels, _offline, _transformers

__all__ = ["tiny_text_checkpoint"]

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # DistilBERT's special tokens (here ids 0-4)
_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", STANDIN_MARKER]


def _reuse(folder: Path, made_from: dict) -> Path:
    """``folder`` if it is a complete stand-in made from the same arguments; else a clear error."""
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing:
        raise ValueError(f"{folder} exists but is not a complete tiny_text_checkpoint (no {', '.join(missing)}). "
                         f"Nothing was changed: delete it, or choose another folder.")
    stored = json.loads((folder / STANDIN_MARKER).read_text())["made_from"]
    differ = [k for k in made_from if stored.get(k) != made_from[k]]
    if differ:
        raise ValueError(f"{folder} holds a stand-in made with other {', '.join(differ)} ({stored}). Nothing was "
                         f"changed: delete the folder to rebuild it, or choose another folder.")
    return folder


def _write_standin(folder: Path, texts: list[str], made_from: dict) -> None:
    """Build the tokenizer and the seeded tiny DistilBERT; save both and the marker into ``folder``."""
    from tokenizers import normalizers, pre_tokenizers
    tf = _transformers()
    labels, max_length = made_from["labels"], made_from["max_length"]
    normalise, split = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()  # DistilBERT's
    counts = Counter(w for t in texts for w, _ in split.pre_tokenize_str(normalise.normalize_str(t)))
    chars = sorted({c for w in counts for c in w})
    tokens = _SPECIAL + chars + ["##" + c for c in chars]  # every word seen can be spelt: no [UNK] on these texts
    words = sorted((w for w in counts if len(w) > 1), key=lambda w: (-counts[w], w))  # most frequent first
    tokens += words[:max(0, made_from["vocab_size"] - len(tokens))]
    tokenizer = tf.DistilBertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, model_max_length=max_length)
    why = ("a stand-in for a pretrained DistilBERT, to run the Hugging Face code offline and in tests: its weights "
           "are random and its vocabulary comes from the texts it was given, so its results are never a finding")
    config = tf.DistilBertConfig(
        vocab_size=len(tokens), dim=64, n_layers=2, n_heads=2, hidden_dim=128, max_position_embeddings=max_length,
        pad_token_id=tokenizer.pad_token_id, id2label=dict(enumerate(labels)),
        label2id={x: i for i, x in enumerate(labels)}, tlcourse_standin=why)  # kept by a later save_pretrained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(made_from["seed"])
        model = tf.AutoModelForSequenceClassification.from_config(config)
    with _offline():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    marker = {"what": f"tiny random DistilBERT ({model.num_parameters():,} parameters) and a WordPiece tokenizer "
                      f"of {len(tokens)} tokens from {len(texts)} texts", "why": why, "made_from": made_from}
    (folder / STANDIN_MARKER).write_text(json.dumps(marker, indent=1))


def tiny_text_checkpoint(folder: str | os.PathLike, texts: Sequence[str], *, labels: Sequence[str],
                         vocab_size: int = 2000, max_length: int = 64, seed: int = 0) -> Path:
    """Write a stand-in Hugging Face checkpoint into ``folder``: a tiny random DistilBERT and its tokenizer.

    The tokenizer is ``distilbert-base-uncased``'s (lower-cased, WordPiece) with a vocabulary
    from ``texts``: every character seen, alone and as a ``##`` continuation, then the most
    frequent words (ties alphabetical), ``vocab_size`` tokens in all unless the characters need
    more. (Not ``WordPieceTrainer``: it breaks ties at random, so the same texts gave different
    vocabularies.) The model (2 blocks, width 64, 2 heads, seeded) has a head for ``labels``.
    Both are saved with ``save_pretrained`` beside ``STANDIN_MARKER`` (what this is). The folder
    appears whole or not at all (built beside it, then renamed); one made from the same
    arguments is reused; a folder holding anything else raises ``ValueError`` and is left as it is.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp()) / "tiny"
        >>> tiny_text_checkpoint(folder, ["a good film", "a bad film"], labels=["neg", "pos"]).name
        'tiny'
    """
    if isinstance(texts, str) or not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("texts must be a non-empty list of strings (the tokenizer's vocabulary comes from them)")
    if vocab_size <= len(_SPECIAL) or max_length < 3:
        raise ValueError(f"vocab_size must exceed {len(_SPECIAL)} and max_length be at least 3; "
                         f"got {vocab_size}, {max_length}")
    folder, texts = Path(folder).expanduser(), list(texts)
    made_from = {"labels": _check_labels(labels), "vocab_size": vocab_size, "max_length": max_length, "seed": seed,
                 "n_texts": len(texts), "texts_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest()}
    if folder.exists():
        return _reuse(folder, made_from)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        _write_standin(tmp, texts, made_from)
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise  # else another process finished the same folder first: use theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # already gone after a successful rename
    return _reuse(folder, made_from)
