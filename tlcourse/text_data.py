"""Real text offline: quotations by topic from the ``fortune`` program's database.

Debian's ``fortunes`` package (BSD licence) installs about 15,000 quotations, jokes and
verses in files named by topic: ``science``, ``computers``, ``politics``, ``songs-poems``,
... with entries separated by lines holding ``%``. The chapter on text uses them twice:

* a **labelled task**: which of four topics (``TOPICS``) a quotation was filed under;
* an **unlabelled corpus**: the quotations of every other topic, for pretraining a
  language model (no labels used). Topics that may offend (``LEFT_OUT``) are used for neither.

A quotation filed under two task topics has no single label and is left out of the task; one
filed under a task topic and a corpus topic is left out of the corpus, so no quotation of the
task (its test set included) is ever seen in pretraining.

Example:
    >>> import tlcourse as tl
    >>> tl.TOPICS
    ('computers', 'politics', 'science', 'songs-poems')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import DataUnavailableError
from .splits import per_class_subset

__all__ = ["FORTUNE_FOLDERS", "TOPICS", "LEFT_OUT", "TextTask", "fortune_folder", "read_fortunes",
           "fortune_topics", "topic_task", "unlabelled_corpus"]

FORTUNES_ENV = "TLCOURSE_FORTUNES"
# Where the fortune files are installed: Debian/Ubuntu (Colab), Fedora, Homebrew on Apple silicon / Intel.
FORTUNE_FOLDERS = (Path("/usr/share/games/fortunes"), Path("/usr/share/fortune"),
                   Path("/opt/homebrew/share/games/fortunes"), Path("/usr/local/share/games/fortunes"))
TOPICS = ("computers", "politics", "science", "songs-poems")  # the labelled task's classes
# Used for nothing: topics whose jokes can offend, and ones that are pictures rather than text.
LEFT_OUT = ("ethnic", "men-women", "drugs", "ascii-art", "art", "translate-me")
_INSTALL = ("Install the fortune database: `sudo apt-get install fortunes` (Debian, Ubuntu, Colab: prefix a "
            "notebook cell with !), `brew install fortune` (macOS) or `sudo dnf install fortune-mod` (Fedora); "
            f"or set {FORTUNES_ENV} to a folder of fortune files.")


def fortune_folder() -> Path:
    """The folder of fortune files: ``$TLCOURSE_FORTUNES``, else the first of ``FORTUNE_FOLDERS`` that has them.

    Raises:
        DataUnavailableError: none is installed; the message says how to install them.
    """
    env = os.environ.get(FORTUNES_ENV, "").strip()
    candidates = [Path(env).expanduser()] if env else list(FORTUNE_FOLDERS)
    for folder in candidates:
        if all((folder / t).is_file() for t in TOPICS):
            return folder
    where = f"{FORTUNES_ENV}={env} holds" if env else f"none of {', '.join(map(str, FORTUNE_FOLDERS))} holds"
    raise DataUnavailableError(f"No fortune files found: {where} the topics {', '.join(TOPICS)}. {_INSTALL}")


def fortune_topics(folder: Path | None = None) -> list[str]:
    """Every topic file in ``folder`` (names without a suffix, i.e. not the ``.dat`` indexes), sorted."""
    folder = folder or fortune_folder()
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.suffix)


def _clean(entry: str) -> str:
    """One entry as plain text: overstruck characters (``_\\bA``, ``A\\bA``) reduced to one, spaces trimmed."""
    entry = re.sub(r".\x08", "", entry)
    return "\n".join(line.rstrip() for line in entry.strip().splitlines())


def read_fortunes(topic: str, *, folder: Path | None = None) -> list[str]:
    """The entries of one topic file, in file order, cleaned; empty entries dropped.

    Raises:
        ValueError: ``topic`` is not a file there (the message lists the topics).
    """
    folder = folder or fortune_folder()
    path = folder / topic
    if not path.is_file() or path.suffix:
        from .names import unknown_choice
        raise ValueError(unknown_choice("fortune topic", topic, fortune_topics(folder)))
    raw = path.read_bytes().decode("utf-8", errors="replace")
    return [e for e in (_clean(x) for x in re.split(r"\n%\n", raw)) if e and e != "%"]


@dataclass(frozen=True)
class TextTask:
    """A labelled text task with a fixed test set: texts and int labels per split, and the class names.

    ``pool`` is everything a label budget is drawn from; ``test`` is touched once, for the
    final numbers. Nothing in the chapter is tuned, so no validation split is carved.
    """

    classes: tuple[str, ...]
    pool_texts: tuple[str, ...]
    pool_labels: torch.Tensor  # int64 (N,)
    test_texts: tuple[str, ...]
    test_labels: torch.Tensor

    def budget(self, per_class: int | None, *, seed: int) -> torch.Tensor:
        """Pool indices of ``per_class`` labelled examples of every class (seeded); ``None``: the whole pool."""
        if per_class is None:
            return torch.arange(len(self.pool_texts))
        return per_class_subset(self.pool_labels, per_class, seed=seed)

    @property
    def smallest_class(self) -> int:
        """Examples in the pool's smallest class: the largest budget every class can fill."""
        return int(torch.bincount(self.pool_labels).min())

    def __repr__(self) -> str:
        counts = torch.bincount(self.pool_labels, minlength=len(self.classes)).tolist()
        per = ", ".join(f"{c} {n}" for c, n in zip(self.classes, counts))
        return (f"TextTask: {len(self.classes)} topics; pool {len(self.pool_texts):,} quotations ({per}); "
                f"test {len(self.test_texts):,} ({len(self.test_texts) // len(self.classes)} per topic)")


def _task_entries(topics: tuple[str, ...], folder: Path) -> dict[str, list[str]]:
    """Each topic's entries, with entries filed under two task topics, and repeats, dropped."""
    entries = {t: list(dict.fromkeys(read_fortunes(t, folder=folder))) for t in topics}
    seen: dict[str, int] = {}
    for t in topics:
        for e in entries[t]:
            seen[e] = seen.get(e, 0) + 1
    return {t: [e for e in entries[t] if seen[e] == 1] for t in topics}


def topic_task(topics: tuple[str, ...] = TOPICS, *, test_per_class: int = 100, seed: int = 0,
               pool_limit: int | None = None, folder: Path | None = None) -> TextTask:
    """The labelled task: which topic a quotation comes from; ``test_per_class`` of each topic held out.

    Args:
        topics: the classes, in label order (at least two).
        test_per_class: held-out test quotations per topic (the same ones for every seed).
        seed: which quotations are held out.
        pool_limit: keep at most this many pool quotations per topic (small profiles); None = all.
        folder: the fortune files (default ``fortune_folder()``).

    Example:
        >>> task = topic_task(test_per_class=50)  # doctest: +SKIP
        >>> len(task.test_texts)                  # doctest: +SKIP
        200
    """
    if len(topics) < 2 or len(set(topics)) != len(topics):
        raise ValueError(f"topics must name at least two different topics; got {topics}")
    folder = folder or fortune_folder()
    entries = _task_entries(tuple(topics), folder)
    g = torch.Generator().manual_seed(seed)
    pool, pool_y, test, test_y = [], [], [], []
    for label, t in enumerate(topics):
        order = torch.randperm(len(entries[t]), generator=g).tolist()
        if len(order) <= test_per_class:
            raise ValueError(f"topic {t!r} has {len(order)} quotations: too few to hold out {test_per_class}")
        held, rest = order[:test_per_class], order[test_per_class:][:pool_limit]
        test += [entries[t][i] for i in held]
        pool += [entries[t][i] for i in rest]
        test_y += [label] * len(held)
        pool_y += [label] * len(rest)
    return TextTask(tuple(topics), tuple(pool), torch.tensor(pool_y), tuple(test), torch.tensor(test_y))


def unlabelled_corpus(task: TextTask | None = None, *, folder: Path | None = None) -> list[str]:
    """Every quotation of the topics that are neither the task's (default ``TOPICS``) nor ``LEFT_OUT``.

    A quotation that is also filed under a task topic is left out, so the task's test
    quotations are never in the corpus.

    No labels: this is the text a language model is pretrained on. In the order of the
    sorted topic files, repeats dropped.
    """
    folder = folder or fortune_folder()
    classes = task.classes if task is not None else TOPICS
    held = {e for t in classes for e in read_fortunes(t, folder=folder)}
    texts = []
    for t in fortune_topics(folder):
        if t in classes or t in LEFT_OUT:
            continue
        texts += read_fortunes(t, folder=folder)
    return [e for e in dict.fromkeys(texts) if e not in held]
