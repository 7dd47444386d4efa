"""Chapter 10's exercises: pieces of a word, the share of unknown pieces, skipping stage 2, the wrong tokenizer.

Each judge computes its reference from the chapter's objects (``tok``, ``material``,
``pretrained``, ``target_lm``, ``inputs``, ``runs``, ``settings``, ``mismatch``); the hints
point at the idea, never at the number.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("10.1", "10.2", "10.3", "10.4")]
    ['predict', 'compute', 'change', 'predict']
    >>> _share_of_unknown([[1, 5], [1, 1, 7, 8]])
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from ..comparison import compare_arms
from ..text_budgets import budget_label, run_text_arm, text_inputs
from ..text_lm import TrainedLM
from ..text_tokens import UNK
from .compare import LEVEL, Verdict, as_real, as_whole, by_gap, close, judge_prediction
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number

WORD = "photosynthesis"  # the word of exercise 10.1


@exercise("10.1", answer="pieces_guess", stars=1, kind="predict", mistake="pieces_guess = 1")
def _pieces_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    tok = need(ns, "tok")
    pieces = tok.encode(WORD, add_special_tokens=False).tokens
    guess = as_whole(answer)
    if guess is None or guess < 1:
        return Verdict(False, "Write a whole number of pieces, at least 1.")
    if guess == len(pieces):
        return Verdict(True, "Your prediction matches the cell above. A rare word is spelled out from frequent "
                             "fragments; a common one stays whole.")
    if guess == 1:
        return Verdict(False, "The cell above disagrees: a byte-pair tokenizer keeps a word whole only when it was "
                              "frequent in the text the tokenizer was built on. Count the pieces it printed.")
    return Verdict(False, "The cell above disagrees with your prediction: count the pieces it printed (the ▁ mark "
                          "belongs to the first piece).")


def _share_of_unknown(texts_ids: Sequence[Sequence[int]]) -> float:
    """The fraction of all tokens that are ``UNK``."""
    return sum(list(ids).count(UNK) for ids in texts_ids) / sum(len(ids) for ids in texts_ids)


@exercise("10.2", answer="unk_share", stars=2, kind="compute", mistake="""\
test_vocab_ids = [vocab.encode(ids) for ids in material.test_ids]
unk_share = sum(ids.count(tl.UNK) / len(ids) for ids in test_vocab_ids) / len(test_vocab_ids)""")
def _unk_share(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    material = need(ns, "material")
    ids = [material.vocab.encode(i) for i in material.test_ids]
    truth = _share_of_unknown(ids)
    if as_real(answer) is None:
        return Verdict(False, f"Give a fraction between 0 and 1, not {type(answer).__name__}.")
    value = as_real(answer)
    if close(value, truth, hint="").passed:
        return Verdict(True, "Well done: that is one minus the vocabulary's coverage of the test quotations.")
    per_text = sum(i.count(UNK) / len(i) for i in ids if i) / sum(1 for i in ids if i)
    if close(value, per_text, hint="").passed:
        return Verdict(False, "You averaged each quotation's own share, so a two-word quip weighs as much as a "
                              "long poem. Count <unk> tokens over all quotations, divide by all tokens.")
    if close(value, 1 - truth, hint="").passed:
        return Verdict(False, "That is the share of tokens the vocabulary *holds*; the question asks for the share "
                              "it calls <unk>.")
    if close(value, 100 * truth, hint="").passed:
        return Verdict(False, "Give a fraction between 0 and 1, not a percentage.")
    return Verdict(False, "Count the tokens equal to tl.UNK over all test quotations and divide by the number of "
                          "tokens over all test quotations.")


def _as_language_model(answer: Any) -> torch.nn.Module | None:
    if isinstance(answer, TrainedLM):
        return answer.model
    return answer if isinstance(answer, torch.nn.Module) and hasattr(answer, "encoder") else None


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@exercise("10.3", answer="start_from", stars=2, kind="change", mistake="start_from = target_lm")
def _start_from(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    pretrained, target_lm, material, settings, runs, run = need(ns, "pretrained", "target_lm", "material",
                                                                "settings", "runs", "run")
    model = _as_language_model(answer)
    if model is None:
        return Verdict(False, "Give a language model: a TrainedLM such as the one the stage-1 cell returned, or its "
                              ".model.")
    if _same_weights(model, target_lm.model):
        return Verdict(False, "That is the stage-2 model, the one the chapter's fine-tuned arm already started "
                              "from. The exercise asks for the model trained on the unlabelled corpus only.")
    if not _same_weights(model, pretrained.model):
        return Verdict(False, "That is neither of the chapter's language models. Stage 1's is the one trained on "
                              "the unlabelled corpus, before it read the target's text.")
    budget = settings.budgets[min(1, len(settings.budgets) - 1)]
    inputs = text_inputs(material, settings, model, device=run.device)
    mine = pd.DataFrame([run_text_arm("fine-tuned", inputs, budget=budget, seed=s) for s in settings.seeds])
    mine["method"] = "stage 1 only"
    theirs = runs[(runs["method"] == "fine-tuned") & (runs["budget"] == budget_label(budget))]
    both = pd.concat([mine, theirs.assign(method="stages 1 and 2")])
    comparison = compare_arms(both, "stages 1 and 2", "stage 1 only")
    return Verdict(True, f"Measured at {budget_label(budget)} labelled quotations per topic, seeds "
                         f"{list(settings.seeds)}: fine-tuned from stage 1 only {100 * mine['accuracy'].mean():.1f}%, "
                         f"from stage 2 {100 * theirs['accuracy'].mean():.1f}%. {comparison.sentence()}")


@exercise("10.4", answer="mismatch_guess", stars=2, kind="predict", mistake='mismatch_guess = "higher"')
def _mismatch_guess(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    mismatch, runs, settings = need(ns, "mismatch", "runs", "settings")
    right = runs[(runs["method"] == "frozen embeddings") & (runs["budget"] == budget_label(settings.budgets[-1]))]
    gap = 100 * (pd.DataFrame(mismatch)["accuracy"].mean() - right["accuracy"].mean())
    return judge_prediction(
        answer, LEVEL, by_gap(gap, within=3),
        ask='Write one of "higher", "about the same" or "lower" as your prediction.',
        right="Your prediction matches the cell above. An embedding row means something only under the tokenizer "
              "it was trained with; with another tokenizer's ids every token gets an unrelated piece's vector, and "
              "nothing raises an error.",
        wrong="The cell above disagrees with your prediction: compare its two accuracies. What does row i of "
              "WordLlama's matrix hold when i is the small vocabulary's number for a piece?")
