"""Chapter 1's exercises: kinds of transfer, copying weights by hand, training only the head, paired starts.

``judge_taxonomy`` (which transfer setting each scenario is), ``judge_transfer`` (the
source's weights copied into a new network, the head left fresh) and
``judge_freeze_head`` (only the head trains) take the learner's answer and return a
``Verdict`` whose hint names the mistake; exercises 1.1 to 1.3 call them. Exercise 1.3
then fine-tunes with the learner's frozen layers and reports the measured accuracy, and
1.4 compares a prediction with the chapter's own ``make_model``.

Example:
    >>> judge_taxonomy({"a": "inductive"}).passed
    False
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("1.1", "1.2", "1.3", "1.4")]
    ['compute', 'compute', 'change', 'predict']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .compare import Verdict
from .compare import few as _few
from .core import exercise, need

__all__ = ["TRANSFER_SETTINGS", "judge_freeze_head", "judge_taxonomy", "judge_transfer"]

HEAD = "fc2"  # the classifier of tl.LeNet: scores the source's classes, so it is never copied

# Exercise 1.1's scenarios (the notebook states them): the setting of each, and what to reconsider.
TRANSFER_SETTINGS = ("inductive", "transductive", "unsupervised")
_TAXONOMY: dict[str, tuple[str, str]] = {
    "a": ("inductive", "the new task (dog breeds) is not the source's, and it comes with labelled examples."),
    "b": ("transductive", "the task (the ten digits) stays the same, and the new domain has no labels."),
    "c": ("unsupervised", "no labels are used anywhere, neither in the source nor in the target."),
    "d": ("inductive", "the target task differs from the source's, and the X-rays come with labels."),
}


def judge_taxonomy(answers: Any) -> Verdict:
    """Judge the setting (inductive, transductive or unsupervised) given to each scenario of exercise 1.1.

    Args:
        answers: ``{"a": "inductive", "b": ..., "c": ..., "d": ...}``.

    Example:
        >>> judge_taxonomy({"a": "inductive", "b": "inductive", "c": "unsupervised", "d": "inductive"}).message[:14]
        '3 of 4 right. '
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


def judge_transfer(model: Any, source: nn.Module, *, head: str = HEAD) -> Verdict:
    """Judge whether ``model`` holds a copy of every tensor of ``source`` except a fresh ``head``.

    Args:
        model: the learner's target network.
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


def judge_freeze_head(model: Any, *, head: str = HEAD) -> Verdict:
    """Judge whether only the parameters under ``head`` still require gradients.

    Args:
        model: the learner's network.
        head: module name of the part that must stay trainable.

    Example:
        >>> import tlcourse as tl
        >>> m = tl.LeNet(); _ = tl.freeze_all_but(m, "fc2")
        >>> judge_freeze_head(m).message
        'Well done: only fc2 trains (510 of 21,840 parameters).'
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


@exercise("1.1", answer="settings", stars=1, kind="compute",
          mistake='settings = {"a": "inductive", "b": "inductive", "c": "unsupervised", "d": "inductive"}')
def _settings(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    return judge_taxonomy(answer)


@exercise("1.2", answer="my_target", stars=2, kind="compute",
          mistake="my_target = tl.LeNet().to(run.device)\nmy_target.load_state_dict(source.state_dict())")
def _my_target(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    return judge_transfer(answer, need(ns, "source"))


@exercise("1.3", answer="head_only", stars=2, kind="change",
          mistake='head_only = make_model("transfer, convs frozen", run.seed)')
def _head_only(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    source, run, results, make_model, budget_loader, fine_tune = need(
        ns, "source", "run", "results", "make_model", "budget_loader", "fine_tune")
    for verdict in (judge_freeze_head(answer), judge_transfer(answer, source)):
        if not verdict.passed:
            return verdict
    # Measure the learner's choice on the first run of the budget table: the same images and
    # random head as that run's "transfer", with the learner's requires_grad flags.
    k, seed = run.profile.label_budgets[0], run.profile.seeds[0]
    flags = {name: p.requires_grad for name, p in answer.named_parameters()}
    model = make_model("transfer", seed)  # judge_answer restores the random state afterwards
    for name, p in model.named_parameters():
        p.requires_grad_(flags[name])
    accuracy = fine_tune(model, budget_loader(k, seed))["test accuracy"]
    table = results[(results["labels per class"] == k) & (results["seed"] == seed)].set_index("method")
    reached = [f"{table.loc[m, 'test accuracy']:.1%} ({m})" for m in table.index]
    return Verdict(True, f"{judge_freeze_head(answer).message} Measured at {k} labels per class, seed {seed}: "
                         f"with only the head training, {accuracy:.1%} test accuracy; on the same images the "
                         f"experiment's runs reached {', '.join(reached[:-1])} and {reached[-1]}. One run on one "
                         "seed is an illustration, not a comparison: the experiment's paired intervals do that.")


@exercise("1.4", answer="same_at_start", stars=1, kind="predict", mistake="same_at_start = []")
def _same_at_start(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    make_model, run = need(ns, "make_model", "run")
    scratch, transfer = make_model("scratch", run.seed), make_model("transfer", run.seed)
    a, b = scratch.state_dict(), transfer.state_dict()
    truth = {name for name in a if torch.equal(a[name], b[name])}
    if not isinstance(answer, (list, tuple, set)) or not all(isinstance(n, str) for n in answer):
        return Verdict(False, 'Give a list of tensor names, such as ["conv1.weight"] (the names of '
                              "state_dict()), or [] if you predict that none is the same.")
    given = set(answer)
    unknown = sorted(given - set(a))
    if unknown:
        return Verdict(False, f"{_few(unknown)} {'is' if len(unknown) == 1 else 'are'} not a tensor of tl.LeNet: "
                              "the names are those of state_dict(), such as conv1.weight and conv1.bias.")
    if given == truth:
        return Verdict(True, "Your prediction matches the two networks built above: on each seed, scratch and "
                             "transfer start from the same random numbers and differ only in the copied weights.")
    if not given:
        return Verdict(False, "The networks built above disagree. make_model seeds torch before it builds a "
                              "network, so both methods draw the same random numbers; transfer_weights then "
                              "overwrites some of them. Which does it leave alone?")
    if given - truth:
        return Verdict(False, f"The networks built above disagree about {_few(sorted(given - truth))}: "
                              "in the transfer network, transfer_weights replaced these with the source's "
                              "weights, so they differ from scratch's random ones.")
    return Verdict(False, "The networks built above disagree: some tensors that start the same are missing "
                          "from your list. A layer has more than one tensor (think of its bias).")
