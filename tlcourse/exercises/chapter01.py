"""Checks of chapter 1's exercises: the learner's answers and networks, never the solution shown.

``check_taxonomy`` (which transfer setting each scenario is), ``check_transfer`` (the
source's weights copied into the target, the head left fresh) and ``check_freeze_head``
(only the head trains) each return a ``CheckResult`` whose hint names the mistake.

Example:
    >>> judge_taxonomy({"a": "inductive"}).passed
    False
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .compare import Verdict, few as _few

__all__: list[str] = []  # judges are registered by exercise number (tlcourse.exercises)


# --- Chapter 1: kinds of transfer, copying weights, freezing ---

# Exercise 1.1's scenarios (the notebook states them): the setting of each, and what to reconsider.
TRANSFER_SETTINGS = ("inductive", "transductive", "unsupervised")
_TAXONOMY: dict[str, tuple[str, str]] = {
    "a": ("inductive", "the new task (dog breeds) is not the source's, and it comes with labelled examples."),
    "b": ("transductive", "the task (the ten digits) stays the same, and the new domain has no labels."),
    "c": ("unsupervised", "no labels are used anywhere, neither in the source nor in the target."),
    "d": ("inductive", "the target task differs from the source's, and the X-rays come with labels."),
}


def judge_taxonomy(answers: Mapping[str, str] | None) -> Verdict:
    """Check the setting (inductive, transductive or unsupervised) given to each scenario of exercise 1.1.

    Args:
        answers: ``{"a": "inductive", "b": ..., "c": ..., "d": ...}``; ``None`` if unanswered.

    Example:
    """
    if not isinstance(answers, Mapping):
        return Verdict(False, f"Expected a dict such as {{'a': 'inductive', ...}}, got {type(answers).__name__}.")
    missing = [k for k in _TAXONOMY if answers.get(k) in (None, "")]
    if missing:
        return Verdict(False, f"Answer every scenario: {', '.join(missing)} missing.")
    given = {k: str(answers[k]).strip().lower() for k in _TAXONOMY}
    unknown = [k for k, v in given.items() if v not in TRANSFER_SETTINGS]
    if unknown:
        return Verdict(False, f"Use one of {', '.join(TRANSFER_SETTINGS)} for each scenario "
                                             f"({', '.join(f'{k}: {given[k]!r}' for k in unknown)} is not one).")
    wrong = [k for k, (right, _) in _TAXONOMY.items() if given[k] != right]
    if wrong:
        hints = " ".join(f"({k}) Look again: {_TAXONOMY[k][1]}" for k in wrong)
        return Verdict(False, f"{len(_TAXONOMY) - len(wrong)} of {len(_TAXONOMY)} right. {hints}")
    return Verdict(True, "Well done: all four settings are right.")


def _head_keys(keys: list[str], head: str) -> list[str]:
    return [k for k in keys if k == head or k.startswith(head + ".")]


def judge_transfer(model: nn.Module | None, source: nn.Module, *, head: str = "fc2") -> Verdict:
    """Check that ``model`` holds a copy of every tensor of ``source`` except a fresh ``head``.

    Args:
        model: the learner's target network; ``None`` if unanswered.
        source: the network the weights come from.
        head: module name of the classifier that must not be copied.

    Example:
        >>> import tlcourse as tl
        >>> src, dst = tl.LeNet(), tl.LeNet()
        >>> _ = dst.load_state_dict({k: v for k, v in src.state_dict().items() if not k.startswith("fc2.")}, strict=False)
        >>> judge_transfer(dst, src).passed
        True
    """
    if not isinstance(model, nn.Module):
        return Verdict(False, f"Expected a network (an nn.Module), got {type(model).__name__}.")
    if model is source:
        return Verdict(False, "This is the source network itself, not a copy: fine-tuning it would "
                                             "overwrite the source. Build a new network and copy weights into it.")
    src, dst = source.state_dict(), model.state_dict()
    differ = sorted(set(src) ^ set(dst)) or [k for k in src if src[k].shape != dst[k].shape]
    if differ:
        return Verdict(False, f"The network has other tensors than the source ({_few(differ)}): "
                                             "build the same architecture.")
    heads = _head_keys(list(src), head)
    if not heads:
        return Verdict(False, f"No tensor is named {head}.*: which module is the classifier?")
    shared = [k for k in src if dst[k].data_ptr() == src[k].data_ptr()]
    if shared:
        return Verdict(False, f"{_few(shared)} share memory with the source: training the copy "
                                             "would change the source too. Copy the values into the new network's own tensors.")
    body = [k for k in src if k not in heads]
    not_copied = [k for k in body if not torch.equal(dst[k].cpu(), src[k].cpu())]
    head_copied = all(torch.equal(dst[k].cpu(), src[k].cpu()) for k in heads)
    if not_copied and len(not_copied) == len(body):
        return Verdict(False, "None of the body's tensors equal the source's: nothing was copied "
                                             "(did you copy into another network than the one you return?).")
    if not_copied:
        return Verdict(False, f"These tensors differ from the source's: {_few(not_copied)}. "
                                             f"Copy every tensor outside {head}.")
    if head_copied:
        return Verdict(False, f"The head ({head}) was copied too: it scores the source's classes. "
                                             "The target's classes need a head with fresh, random weights.")
    return Verdict(True, f"Well done: {len(body)} tensors copied, {head} left fresh.")


def judge_freeze_head(model: nn.Module | None, *, head: str = "fc2") -> Verdict:
    """Check that only the parameters under ``head`` still require gradients.

    Args:
        model: the learner's network; ``None`` if unanswered.
        head: module name of the part that must stay trainable.

    Example:
        >>> import tlcourse as tl
        >>> m = tl.LeNet(); _ = tl.freeze_all_but(m, "fc2")
        >>> judge_freeze_head(m).passed
        True
    """
    if not isinstance(model, nn.Module):
        return Verdict(False, f"Expected a network (an nn.Module), got {type(model).__name__}.")
    params = dict(model.named_parameters())
    heads = _head_keys(list(params), head)
    if not heads:
        tops = ", ".join(n for n, _ in model.named_children())
        return Verdict(False, f"No parameter is named {head}.*; the top-level modules are: {tops}.")
    body = [n for n in params if n not in heads]
    head_frozen = [n for n in heads if not params[n].requires_grad]
    body_training = [n for n in body if params[n].requires_grad]
    if head_frozen and not body_training:
        return Verdict(False, "Everything is frozen, the head too: nothing would learn. "
                                             f"The head ({head}) must keep requires_grad=True.")
    if head_frozen:
        return Verdict(False, f"The head is frozen ({_few(head_frozen)}): it is the part that must "
                                             "learn the new classes, so it must stay trainable.")
    if len(body_training) == len(body):
        return Verdict(False, "Nothing is frozen: every parameter of the body still requires "
                                             "gradients. Switch them off for everything outside the head.")
    if body_training:
        return Verdict(False, f"Part of the body still trains: {_few(body_training)}.")
    n_head = sum(params[n].numel() for n in heads)
    n_all = sum(p.numel() for p in params.values())
    return Verdict(True, f"Well done: only {head} trains ({n_head:,} of {n_all:,} parameters).")
