"""The Hugging Face path: a pretrained transformer (``distilbert-base-uncased``) as a course model.

``hf_text_classifier`` is the one loading function: ``AutoTokenizer`` + ``AutoModelForSequenceClassification``
``.from_pretrained(name)`` with a new head for the labels. With downloads off (``TLCOURSE_DOWNLOAD=0``)
it makes no request at all and says what to do instead. Offline and in CI the same function
loads a folder made by ``tiny_text_checkpoint``: a *tiny, randomly initialised* DistilBERT,
marked as a stand-in (``clf.standin``): it has learnt nothing, so what it gives is never a finding.
``HFTextClassifier`` maps token ids ``(B, T)`` to logits ``(B, C)``, so ``tl.fine_tune`` and
``tl.evaluate`` train it unchanged; ``hf_layer_names`` names its layers for ``tl.layerwise_lr_groups``.

Example:
    >>> import tempfile
    >>> texts = ["a good film", "a bad film", "good acting", "bad acting"]
    >>> folder = tl.tiny_text_checkpoint(Path(tempfile.mkdtemp()) / "tiny", texts, labels=["neg", "pos"])
    >>> clf = tl.hf_text_classifier(folder, labels=["neg", "pos"])
    >>> ids = clf.encode(["a good film", "bad"])  # [CLS] = 2 ... [SEP] = 3, then [PAD] = 0
    >>> ids.tolist(), clf.standin, tuple(clf(ids).shape)
    ([[2, 5, 32, 31, 3], [2, 30, 3, 0, 0]], True, (2, 2))
    >>> tl.hf_layer_names(clf)[-1]  # the head: the last entry (embeddings and blocks come first)
    ['model.pre_classifier', 'model.classifier']
    >>> real = tl.hf_text_classifier("distilbert-base-uncased", labels=["neg", "pos"])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from .data import DataUnavailableError
from .names import unknown_choice
from .provenance import DOWNLOAD_ENV, downloads_allowed
from .text_models import TensorBatches

__all__ = ["STANDIN_MARKER", "HFCheckpointUnavailableError", "HFTextClassifier", "hf_text_classifier",
           "hf_layer_names", "text_batches"]

STANDIN_MARKER = "tlcourse_standin.json"  # in a tiny_text_checkpoint folder: what it is, why, and from what
_OFFLINE_RECIPE = ("offline, build the announced stand-in and load it with the same function: clf = "
                   "tl.hf_text_classifier(tl.tiny_text_checkpoint(folder, texts, labels=labels), labels=labels)")


class HFCheckpointUnavailableError(DataUnavailableError):
    """No transformer checkpoint in that folder, nor in the Hugging Face cache, nor downloadable now."""


def _transformers() -> Any:  # imported on first use: it takes seconds, and most chapters never need it
    try:
        import transformers
    except ImportError as err:
        raise ImportError("The Hugging Face path needs transformers: pip install transformers tokenizers") from err
    return transformers


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """No request to the Hub and no progress bars during the block. (``local_files_only`` alone still lets
    huggingface_hub fetch its telemetry registry; ``HF_HUB_OFFLINE`` is read once, at import: set both.)"""
    from huggingface_hub import constants
    logging = _transformers().utils.logging
    env, flag, bars = os.environ.get("HF_HUB_OFFLINE"), constants.HF_HUB_OFFLINE, logging.is_progress_bar_enabled()
    os.environ["HF_HUB_OFFLINE"], constants.HF_HUB_OFFLINE = "1", True
    logging.disable_progress_bar()  # "Loading weights" bars for a local file are noise
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = flag
        if env is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = env
        if bars:
            logging.enable_progress_bar()


def _check_labels(labels: Sequence[str]) -> list[str]:
    labels = [labels] if isinstance(labels, str) else list(labels)
    if len(labels) < 2 or len(set(labels)) != len(labels) or not all(isinstance(x, str) and x for x in labels):
        raise ValueError(f"labels must be two or more distinct, non-empty names (one per class; with one label "
                         f"Hugging Face fits a regression); got {labels!r}")
    return labels


class HFTextClassifier(nn.Module):
    """A Hugging Face sequence classifier as a course model: token ids ``(B, T)`` in, logits ``(B, C)`` out.

    It holds ``model`` (the ``transformers`` model: ``print(clf.model)`` shows its layers),
    ``tokenizer``, ``labels`` (in logit order), ``name`` (hub name or folder), ``standin`` (True
    for a ``tiny_text_checkpoint``: random weights) and ``max_length`` (``encode`` truncates there).
    The attention mask is rebuilt from the ids, so padded batches train like image batches.
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, labels: Sequence[str], name: str, standin: bool,
                 max_length: int) -> None:
        super().__init__()
        if tokenizer.pad_token_id is None:
            raise ValueError(f"{name}: the tokenizer has no padding token, so batches cannot be padded")
        if model.config.num_labels != len(labels):
            raise ValueError(f"{name}: the model has {model.config.num_labels} outputs for {len(labels)} labels")
        self.model, self.tokenizer = model, tokenizer
        self.labels, self.name, self.standin, self.max_length = list(labels), name, standin, max_length

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C)`` of int64 token ids ``(B, T)`` (as ``encode`` gives); padding is masked out."""
        if input_ids.ndim != 2 or input_ids.dtype != torch.long:
            raise ValueError(f"expected int64 token ids (B, T); got {input_ids.dtype} {tuple(input_ids.shape)}")
        attention_mask = input_ids != self.tokenizer.pad_token_id  # (B, T): True on real tokens
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    def encode(self, texts: str | Sequence[str], *, padding: Literal["longest", "max_length"] = "longest"
               ) -> torch.Tensor:
        """Token ids ``(N, T)``: ``[CLS] ... [SEP]``, cut at ``max_length``, padded to the longest or to it."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("encode needs a non-empty list of strings")
        return self.tokenizer(texts, padding=padding, truncation=True, max_length=self.max_length,
                              return_tensors="pt")["input_ids"]

    def describe(self) -> str:
        """One sentence: a real checkpoint or a stand-in, its architecture, parameters and labels."""
        arch = type(self.model).__name__
        size = f"{sum(p.numel() for p in self.parameters()):,} parameters, labels {', '.join(self.labels)}"
        if self.standin:
            return (f"STAND-IN, not a pretrained model: {self.name} is a tiny, randomly initialised {arch} ({size}) "
                    f"made by tl.tiny_text_checkpoint. It runs the same code as a real checkpoint; its results "
                    f"are never a finding about pretrained transformers.")
        return f"{self.name}: a {arch} from a real checkpoint ({size}; max_length {self.max_length})."

    def __repr__(self) -> str:
        return self.describe()





def _local_folder(name_or_folder: str | os.PathLike) -> Path | None:
    """The checkpoint folder ``name_or_folder`` names, or None for a hub name; a missing folder raises."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id
    path = Path(name_or_folder).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise HFCheckpointUnavailableError(f"{path} holds no Hugging Face checkpoint (no config.json). Give a "
                                               f"folder written by save_pretrained or tl.tiny_text_checkpoint.")
        return path
    text = str(name_or_folder)
    if not isinstance(name_or_folder, os.PathLike) and not path.exists() and not text.startswith((".", "/", "~")):
        with contextlib.suppress(HFValidationError):
            validate_repo_id(text)
            return None  # a hub name ("distilbert-base-uncased", "distilbert/distilbert-base-uncased")
    siblings = [p.name for p in path.parent.iterdir() if p.is_dir()] if path.parent.is_dir() else []
    near = difflib.get_close_matches(path.name, siblings, n=1)
    raise HFCheckpointUnavailableError(
        f"{text!r} is no checkpoint folder here{f' (did you mean {near[0]!r}?)' if near else ''} and no valid hub "
        f"name. Make a folder with tl.tiny_text_checkpoint(folder, texts, labels=...), or give a hub name such "
        f"as 'distilbert-base-uncased'.")


def _check_head(config: Any, labels: list[str], name: str) -> None:
    """Raise if the checkpoint's head was trained for other classes (an untrained head is named LABEL_0, ...)."""
    trained = [config.id2label[i] for i in range(config.num_labels)]
    if trained != [f"LABEL_{i}" for i in range(config.num_labels)] and trained != labels:
        raise ValueError(f"{name}'s classification head was trained for the labels {trained}; you asked for {labels}. "
                         f"Nothing was loaded: ask for those labels, in that order, or start from a checkpoint "
                         f"without a trained head (such as 'distilbert-base-uncased').")


def hf_text_classifier(name_or_folder: str | os.PathLike, *, labels: Sequence[str], download: bool | None = None,
                       max_length: int | None = None, cache_dir: str | os.PathLike | None = None
                       ) -> HFTextClassifier:
    """``AutoTokenizer`` + ``AutoModelForSequenceClassification.from_pretrained``, as a course model.

    A folder (``save_pretrained``'s or ``tiny_text_checkpoint``'s) is read from disk; a hub name
    (``"distilbert-base-uncased"``) from the Hugging Face cache (``cache_dir``, default
    ``$HF_HOME/hub``), else downloaded if ``download`` (``None``: unless ``TLCOURSE_DOWNLOAD=0``).
    Without a download nothing is requested from the network. A checkpoint without a trained
    head gets a new, random one for ``labels`` (the class names, in logit order); the library's
    load report lists its weights. ``max_length`` (default: the model's limit) is where
    ``encode`` truncates.

    Raises:
        HFCheckpointUnavailableError: no such folder, or the name is not cached and cannot be downloaded now.
        ValueError: the checkpoint's head was trained for other labels, or ``max_length`` exceeds the model's.

    Example:
        >>> import tempfile
        >>> hf_text_classifier("distilbert-base-uncased", labels=["neg", "pos"], download=False,
        ...                    cache_dir=tempfile.mkdtemp())  # an empty cache: nothing to load offline
        Traceback (most recent call last):
        ...
        tlcourse.hf_text.HFCheckpointUnavailableError: 'distilbert-base-uncased' is not in the Hugging Face cache ...
    """
    labels = _check_labels(labels)
    name, folder = str(name_or_folder), _local_folder(name_or_folder)
    allowed = folder is None and (downloads_allowed() if download is None else download)
    source, tf = str(folder or name), _transformers()
    hub: dict[str, Any] = {"local_files_only": not allowed, "cache_dir": None if cache_dir is None else str(cache_dir)}
    with contextlib.nullcontext() if allowed else _offline():
        try:
            config = tf.AutoConfig.from_pretrained(source, **hub)
            _check_head(config, labels, name)
            tokenizer = tf.AutoTokenizer.from_pretrained(source, **hub)
            limit = min(tokenizer.model_max_length, getattr(config, "max_position_embeddings", 10**9))
            if max_length is not None and not 3 <= max_length <= limit:
                raise ValueError(f"max_length must be between 3 and {name}'s limit of {limit} tokens; got {max_length}")
            model = tf.AutoModelForSequenceClassification.from_pretrained(
                source, id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)}, **hub)
        except OSError as err:
            from huggingface_hub import constants
            if folder is not None:
                raise HFCheckpointUnavailableError(f"Cannot load the checkpoint in {folder}: {err}") from err
            if not allowed:
                cause = "download=False" if download is False else \
                    f"downloads are off ({DOWNLOAD_ENV}={os.environ.get(DOWNLOAD_ENV, '').strip()})"
                raise HFCheckpointUnavailableError(
                    f"{name!r} is not in the Hugging Face cache ({cache_dir or constants.HF_HUB_CACHE}) and {cause}, "
                    f"so nothing was requested from the network{' (nor is it a folder here)' if '/' in name else ''}"
                    f". To use the real checkpoint: connect to the "
                    f"internet and set {DOWNLOAD_ENV}=1 (or unset it); {_OFFLINE_RECIPE}.") from None
            raise HFCheckpointUnavailableError(f"Could not download {name!r} from the Hugging Face Hub ({err}). "
                                               f"Check the name and the connection; {_OFFLINE_RECIPE}.") from err
    standin = (folder is not None and (folder / STANDIN_MARKER).is_file()) or hasattr(config, "tlcourse_standin")
    return HFTextClassifier(model, tokenizer, labels=labels, name=name, standin=standin,
                            max_length=max_length or limit)


def hf_layer_names(clf: HFTextClassifier) -> list[list[str] | str]:
    """Module names of ``clf``'s layers from input to output, for ``tl.layerwise_lr_groups`` and friends.

    DistilBERT-like (``transformer.layer``) and BERT-like (``encoder.layer``: BERT, RoBERTa, ELECTRA)
    models: the embeddings, each block, other modules of the body (BERT's pooler), then the head as
    one entry: all modules outside the body (DistilBERT's ``pre_classifier`` and ``classifier``,
    both new for a checkpoint without a trained head). See the module's example.
    """
    model, prefix = clf.model, clf.model.base_model_prefix
    body = getattr(model, prefix, None)
    stack = next((s for s in ("transformer", "encoder") if hasattr(getattr(body, s, None), "layer")), None)
    if stack is None or not hasattr(body, "embeddings"):
        raise ValueError(f"hf_layer_names knows DistilBERT-like and BERT-like models; {type(model).__name__} is "
                         f"neither. Name its layers yourself, from input to output (print(clf.model) shows them).")
    weighted = lambda m: next(m.parameters(), None) is not None  # dropout layers have no weights
    names: list[list[str] | str] = [f"model.{prefix}.embeddings"]
    names += [f"model.{prefix}.{stack}.layer.{i}" for i in range(len(getattr(body, stack).layer))]
    names += [f"model.{prefix}.{n}" for n, m in body.named_children() if n not in ("embeddings", stack) and weighted(m)]
    return names + [[f"model.{n}" for n, m in model.named_children() if n != prefix and weighted(m)]]


def text_batches(clf: HFTextClassifier, texts: Sequence[str], labels: Sequence[str | int], *, batch_size: int,
                 shuffle: bool = False, seed: int = 0) -> TensorBatches:
    """``(ids, y)`` batches for ``tl.fine_tune`` / ``tl.evaluate``: all texts encoded once, padded to the longest.

    ``labels``: one class per text, a name from ``clf.labels`` or its index; ``seed`` fixes the
    shuffled orders (epoch ``e`` shuffles with ``seed + e``, as every ``tl.TensorBatches``).

    Example:
        >>> import tempfile
        >>> clf = tl.hf_text_classifier(tl.tiny_text_checkpoint(Path(tempfile.mkdtemp()) / "t", ["good", "bad"],
        ...                                                     labels=["neg", "pos"]), labels=["neg", "pos"])
        >>> [y.tolist() for _, y in text_batches(clf, ["good", "bad", "good"], ["pos", "neg", 1], batch_size=2)]
        [[1, 0], [1]]
    """
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")

    def class_index(v: str | int) -> int:  # a name, or an int / numpy / tensor integer in range
        if isinstance(v, str) and v in clf.labels:
            return clf.labels.index(v)
        if not isinstance(v, (str, bool)) and hasattr(v, "__index__") and 0 <= int(v) < len(clf.labels):
            return int(v)
        raise ValueError(unknown_choice("label", v, clf.labels))

    y = torch.tensor([class_index(v) for v in labels], dtype=torch.long)
    return TensorBatches(clf.encode(texts), y, batch_size=batch_size, shuffle=shuffle, seed=seed)
