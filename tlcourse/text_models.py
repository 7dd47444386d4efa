"""Small text networks that train with the course's own loops (``tl.fit``, ``tl.fine_tune``).

* ``LSTMEncoder``: token ids → one vector per position (an embedding and two LSTM layers,
  the shape of ULMFiT's AWD-LSTM, much smaller).
* ``LanguageModel``: the encoder and a decoder tied to its embedding; it predicts the next
  token at every position. Its batches come from ``LMWindows``.
* ``SequenceClassifier``: the same encoder and a new head on ULMFiT's *concat pooling*
  (the last position's vector, the maximum and the mean over the text).
* ``MeanEmbeddingClassifier``: the mean of a text's token embeddings and a linear head —
  the classic way to use pretrained static embeddings, frozen.

Every model takes ``(B, T)`` int64 ids padded with ``tl.PAD`` (0) on the right and returns
logits, so ``train_one_epoch`` / ``evaluate`` need nothing special. A language model's
batch holds ``B*T`` predictions: its ``y`` is flattened, and so are its logits ``(B*T, V)``.

Example:
    >>> import torch, tlcourse as tl
    >>> enc = tl.LSTMEncoder(vocab_size=50, dim=8, hidden=16)
    >>> tl.SequenceClassifier(enc, num_classes=4)(torch.tensor([[5, 6, 0]])).shape
    torch.Size([1, 4])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from .text_tokens import EOS, PAD

__all__ = ["LSTMEncoder", "LanguageModel", "SequenceClassifier", "MeanEmbeddingClassifier", "LMWindows",
           "TensorBatches", "CLASSIFIER_LAYERS"]

# A SequenceClassifier's layers from input to output: for gradual unfreezing and discriminative rates.
CLASSIFIER_LAYERS = ("encoder.embed", "encoder.rnn1", "encoder.rnn2", "head")


class LSTMEncoder(nn.Module):
    """Embedding ``(V, dim)`` → LSTM ``dim→hidden`` → LSTM ``hidden→dim``, with dropout between them."""

    def __init__(self, vocab_size: int, *, dim: int = 128, hidden: int = 128, dropout: float = 0.2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.rnn1 = nn.LSTM(dim, hidden, batch_first=True)
        self.rnn2 = nn.LSTM(hidden, dim, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.dim = dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids → ``(B, T, dim)``; position ``t`` has seen tokens ``0 … t`` only."""
        h = self.drop(self.embed(ids))
        h = self.drop(self.rnn1(h)[0])
        return self.drop(self.rnn2(h)[0])


class LanguageModel(nn.Module):
    """Next-token prediction: ``encoder`` then a decoder whose weight *is* the embedding (weight tying)."""

    def __init__(self, encoder: LSTMEncoder) -> None:
        super().__init__()
        self.encoder = encoder
        vocab_size = encoder.embed.num_embeddings
        self.decoder = nn.Linear(encoder.dim, vocab_size)
        self.decoder.weight = encoder.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` ids → ``(B*T, V)`` logits of the token after each position."""
        return self.decoder(self.encoder(ids)).flatten(0, 1)


class SequenceClassifier(nn.Module):
    """A text classifier on an encoder: concat pooling ``[last, max, mean]`` over the real tokens, then a linear head."""

    def __init__(self, encoder: LSTMEncoder, *, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.encoder = encoder
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(3 * encoder.dim, num_classes)

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        """``(B, 3*dim)``: the vector at each text's last real token, the maximum and the mean over its tokens."""
        h = self.encoder(ids)
        real = (ids != PAD).unsqueeze(-1)  # (B, T, 1)
        n = real.sum(dim=1).clamp(min=1)  # (B, 1)
        last = h[torch.arange(len(ids), device=ids.device), (n.squeeze(1) - 1)]
        top = h.masked_fill(~real, float("-inf")).amax(dim=1)
        top = torch.where(torch.isinf(top), torch.zeros_like(top), top)  # an all-padding row
        mean = (h * real).sum(dim=1) / n
        return torch.cat([last, top, mean], dim=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.features(ids)))


class MeanEmbeddingClassifier(nn.Module):
    """The mean of a text's token embeddings (padding left out), then a linear head.

    Args:
        embeddings: ``(V, D)`` rows to start from (e.g. ``tl.wordllama_embeddings()``), or an int ``V``
            for random ones.
        num_classes: outputs of the head.
        freeze: keep the embeddings as they are (only the head trains).
        dim: ``D`` when ``embeddings`` is an int.
    """

    def __init__(self, embeddings: torch.Tensor | int, *, num_classes: int, freeze: bool = True,
                 dim: int = 256) -> None:
        super().__init__()
        if isinstance(embeddings, int):
            self.embed = nn.Embedding(embeddings, dim)
        else:
            self.embed = nn.Embedding.from_pretrained(embeddings.clone(), freeze=False)
        self.embed.weight.requires_grad_(not freeze)
        self.head = nn.Linear(self.embed.embedding_dim, num_classes)

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        real = (ids != PAD).unsqueeze(-1).float()
        return (self.embed(ids) * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids))


class TensorBatches:
    """Shuffled ``(x[i], y[i])`` mini-batches of two tensors; epoch ``e`` shuffles with ``seed + e``.

    Example:
        >>> b = TensorBatches(torch.arange(5), torch.arange(5), batch_size=2, seed=0)
        >>> len(b), sorted(int(v) for x, _ in b for v in x)
        (3, [0, 1, 2, 3, 4])
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, shuffle: bool = True,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
        if len(x) == 0:
            raise ValueError("no examples: x and y are empty")
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.shuffle, self.seed, self.epoch = batch_size, shuffle, seed, 0

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = (torch.randperm(len(self.x), generator=torch.Generator().manual_seed(self.seed + self.epoch))
                 if self.shuffle else torch.arange(len(self.x)))
        order = order.to(self.x.device)
        for i in range(0, len(order), self.batch_size):
            yield self.x[order[i:i + self.batch_size]], self.y[order[i:i + self.batch_size]]


class LMWindows(TensorBatches):
    """A language model's batches: the corpus as one stream cut into windows; ``y`` is ``x`` shifted by one.

    Texts are joined with ``EOS`` between them. A window of ``length + 1`` tokens gives
    ``x = w[:-1]`` and ``y = w[1:]``; ``y`` comes flattened to ``(B*length,)``, as
    ``LanguageModel`` flattens its logits, so ``tl.fit`` counts accuracy per token.

    Example:
        >>> w = LMWindows([[5, 6], [7, 8, 9]], length=3, batch_size=1, shuffle=False)
        >>> x, y = next(iter(w)); x.tolist(), y.tolist()
        ([[5, 6, 2]], [6, 2, 7])
    """

    def __init__(self, texts_ids: Sequence[Sequence[int]], *, length: int, batch_size: int, shuffle: bool = True,
                 seed: int = 0, device: torch.device | str = "cpu") -> None:
        stream = torch.tensor([i for ids in texts_ids for i in (*ids, EOS)], dtype=torch.long)
        n = (len(stream) - 1) // length
        if n < 1:
            raise ValueError(f"{len(stream)} tokens make no window of {length + 1}: pass more text or a shorter length")
        x = stream[: n * length].view(n, length)
        y = stream[1: n * length + 1].view(n, length)
        super().__init__(x, y, batch_size=batch_size, shuffle=shuffle, seed=seed, device=device)
        self.tokens = n * length

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for x, y in super().__iter__():
            yield x, y.flatten()

