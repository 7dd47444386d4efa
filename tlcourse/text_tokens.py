"""From text to token ids: a real pretrained tokenizer and embeddings, a corpus vocabulary, coverage.

**WordLlama** (PyPI ``wordllama``, MIT code) ships, inside its wheel, a 32,000 × 256 token-
embedding matrix and the tokenizer that goes with it. The embeddings were distilled from
the token embeddings of Llama 2 (so the Llama 2 Community License applies to them); the
tokenizer is Llama 2's byte-fallback BPE: every string becomes pieces it knows, none is
unknown. ``wordllama_tokenizer`` and ``wordllama_embeddings`` read the two files directly
(the package's own loader looks in another folder and then tries to download).

A small model cannot afford 32,000 output classes, so ``Vocabulary`` keeps the pieces a
corpus uses most and maps the rest to ``<unk>``: how much of a *target* text falls outside
a vocabulary built on the *source* corpus is what ``Vocabulary.coverage`` measures.

Example:
    >>> import tlcourse as tl
    >>> tok = tl.wordllama_tokenizer()
    >>> tok.encode("Transfer learning", add_special_tokens=False).tokens
    ['▁Transfer', '▁learning']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path

import torch

from .data import DataUnavailableError

__all__ = ["wordllama_tokenizer", "wordllama_embeddings", "token_ids", "Vocabulary", "pad_ids",
           "unknown_word_rate", "PAD", "UNK", "EOS"]

PAD, UNK, EOS = 0, 1, 2  # the first ids of every Vocabulary
_FILES = {"tokenizer": "tokenizers/l2_supercat_tokenizer_config.json",
          "embeddings": "weights/l2_supercat_256.safetensors"}


def _wordllama_file(kind: str) -> Path:
    try:
        path = Path(str(resources.files("wordllama") / _FILES[kind]))
    except ModuleNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise DataUnavailableError(f"WordLlama's {kind} file is not installed: `pip install wordllama` "
                                   f"(make lab and make test install it).")
    return path


@lru_cache(maxsize=1)
def wordllama_tokenizer():
    """Llama 2's tokenizer as WordLlama ships it (a ``tokenizers.Tokenizer``, 32,000 pieces)."""
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(_wordllama_file("tokenizer")))


def wordllama_embeddings() -> torch.Tensor:
    """WordLlama's pretrained token embeddings: float32 ``(32000, 256)``, row ``i`` for the tokenizer's id ``i``.

    Example:
        >>> wordllama_embeddings().shape
        torch.Size([32000, 256])
    """
    from safetensors.torch import load_file
    weights = load_file(str(_wordllama_file("embeddings")))
    (matrix,) = [w for w in weights.values() if w.dim() == 2]
    return matrix.float()


def token_ids(texts: Iterable[str], tokenizer=None) -> list[list[int]]:
    """Each text as the tokenizer's ids (no special tokens); default WordLlama's tokenizer."""
    tokenizer = tokenizer or wordllama_tokenizer()
    return [e.ids for e in tokenizer.encode_batch(list(texts), add_special_tokens=False)]


class Vocabulary:
    """The ``size`` pieces a corpus uses most, renumbered ``3 … size-1``; ids 0, 1, 2 are pad, unk, end.

    Built from tokenizer ids (``token_ids``); ``encode`` maps tokenizer ids to vocabulary ids,
    every piece outside the vocabulary to ``UNK``. ``pieces[i]`` is the tokenizer id behind
    vocabulary id ``i`` (``-1`` for the three specials).

    Example:
        >>> v = Vocabulary([[5, 5, 7], [5, 9]], size=6)
        >>> v.encode([5, 7, 9, 8])
        [3, 4, 5, 1]
        >>> v.coverage([[5, 8]])
        0.5
    """

    def __init__(self, corpus_ids: Iterable[Sequence[int]], *, size: int) -> None:
        if size < 4:
            raise ValueError(f"size must leave room for the 3 special ids and at least one piece; got {size}")
        counts = Counter(i for ids in corpus_ids for i in ids)
        kept = [i for i, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 3]]
        self.pieces: list[int] = [-1, -1, -1] + kept
        self._index = {piece: k + 3 for k, piece in enumerate(kept)}

    def __len__(self) -> int:
        return len(self.pieces)

    def encode(self, ids: Sequence[int]) -> list[int]:
        return [self._index.get(i, UNK) for i in ids]

    def coverage(self, texts_ids: Iterable[Sequence[int]]) -> float:
        """The fraction of tokens in ``texts_ids`` that the vocabulary holds (1.0: no ``<unk>``)."""
        known = total = 0
        for ids in texts_ids:
            known += sum(i in self._index for i in ids)
            total += len(ids)
        if total == 0:
            raise ValueError("coverage of no tokens: pass at least one non-empty text")
        return known / total

    def rows_of(self, matrix: torch.Tensor) -> torch.Tensor:
        """The rows of a tokenizer-indexed matrix (e.g. ``wordllama_embeddings()``) for this vocabulary's ids.

        The three specials get zero rows (pad) and the mean row (unk, end).
        """
        out = matrix[torch.tensor([max(p, 0) for p in self.pieces])].clone()
        out[PAD] = 0
        out[UNK] = out[EOS] = matrix.mean(dim=0)
        return out

    def __repr__(self) -> str:
        return f"Vocabulary of {len(self):,} ids (pad, unk, end + the {len(self) - 3:,} most used pieces)"


def pad_ids(sequences: Sequence[Sequence[int]], *, max_length: int) -> torch.Tensor:
    """int64 ``(N, L)``: each sequence cut to ``max_length`` and right-padded with ``PAD`` to the longest.

    Example:
        >>> pad_ids([[5, 6, 7], [8]], max_length=2).tolist()
        [[5, 6], [8, 0]]
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1; got {max_length}")
    length = max(1, min(max_length, max((len(s) for s in sequences), default=1)))
    out = torch.full((len(sequences), length), PAD, dtype=torch.long)
    for row, s in enumerate(sequences):
        s = list(s)[:length]
        if s:
            out[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() else " " for c in text).split()


def unknown_word_rate(source_texts: Iterable[str], target_texts: Iterable[str]) -> float:
    """The fraction of the target's words (lower case, letters and digits) that never occur in the source.

    What a *word-level* vocabulary built on the source would have to call ``<unk>``.

    Example:
        >>> unknown_word_rate(["the cat sat"], ["The dog sat"])
        0.3333333333333333
    """
    known = set(w for t in source_texts for w in _words(t))
    words = [w for t in target_texts for w in _words(t)]
    if not words:
        raise ValueError("the target texts hold no words")
    return sum(w not in known for w in words) / len(words)
