"""Checks a learner runs on an exercise answer: a friendly pass, or a hint, never the solution.

Each exercise cell starts with a placeholder (``answer = None``); the check cell after it
calls a ``check_*`` function. The result displays as a green or amber box.

* Unanswered (``None``): the check says so and what to do, without failing the cell,
  so a notebook with the solutions removed (a student copy) still runs top to bottom.
* In the course's own tests, ``TLCOURSE_CHECKS=strict`` turns every failed or
  unanswered check into an ``AssertionError``, so a wrong solution cannot pass CI.

Generic checks (``check_equal``, ``check_close``) compare a value with one the notebook
computes. The chapter checks (``check_cross_entropy``, ``check_interpolation``, ...) run
the learner's function or inspect their network, and recognise the usual mistakes
(a sum instead of a mean, a forgotten log-softmax, a frozen head, a reversed λ) so
the hint names the mistake rather than the answer.

Example:
    >>> r = check_equal("0.1", [1, 2], [1, 2], hint="count per class")
    >>> r.passed
    True
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import env_choice

__all__ = [
    "CHECKS_ENV",
    "CheckResult",
    "check_result",
    "check_equal",
    "check_close",
    "TRANSFER_SETTINGS",
    "check_taxonomy",
    "check_transfer",
    "check_freeze_head",
    "check_cross_entropy",
    "check_binary_cross_entropy",
    "check_interpolation",
]

CHECKS_ENV = "TLCOURSE_CHECKS"


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: ``passed`` (or ``None`` when unanswered) and a message."""

    exercise: str  # the exercise's number, e.g. "1.2"
    passed: bool | None  # True, False, or None when there is no answer yet
    message: str  # praise, a hint, or what to do

    def __bool__(self) -> bool:
        return bool(self.passed)

    def _status(self) -> str:
        return {True: "Correct", False: "Not yet", None: "No answer yet"}[self.passed]

    def __repr__(self) -> str:
        return f"Exercise {self.exercise}: {self._status()}. {self.message}"

    def _repr_html_(self) -> str:
        colour = {True: ("#166534", "#f0fdf4"), False: ("#9a3412", "#fff7ed"), None: ("#475569", "#f8fafc")}[self.passed]
        return (f'<div style="border-left:4px solid {colour[0]};background:{colour[1]};color:{colour[0]};'
                f'padding:0.4em 0.8em;margin:0.3em 0"><strong>Exercise {html.escape(self.exercise)}: '
                f"{self._status()}.</strong> {html.escape(self.message)}</div>")


def check_result(exercise: str, passed: bool | None, message: str) -> CheckResult:
    """Build a result; under ``TLCOURSE_CHECKS=strict`` anything but a pass raises.

    Every ``check_*`` function ends with this, so strictness lives in one place.

    Example:
        >>> check_result("9.9", True, "Well done.").passed
        True
    """
    result = CheckResult(exercise, passed, message)
    if passed is not True and env_choice(CHECKS_ENV, choices=("strict", "lenient")) == "strict":
        raise AssertionError(repr(result))
    return result


_UNANSWERED = "Replace the None in the exercise cell with your answer, run it, then run this check again."


def _difference(answer: Any, expected: Any, where: str = "") -> str | None:
    """``None`` if ``answer`` equals ``expected`` exactly; else what differs ("" when only the values do).

    Tensors and NumPy arrays compare by type, shape, dtype and every element; dicts by
    their keys and then value by value; lists and tuples element by element; anything
    else with ``==``.
    """
    at = f" at {where}" if where else ""
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        kind = torch.Tensor if isinstance(expected, torch.Tensor) else np.ndarray
        if not isinstance(answer, kind):
            return f"Expected {'a tensor' if kind is torch.Tensor else 'a NumPy array'}{at}, got {type(answer).__name__}."
        if tuple(answer.shape) != tuple(expected.shape):
            return f"Shape {tuple(answer.shape)}{at}, expected {tuple(expected.shape)}."
        if answer.dtype != expected.dtype:
            return f"dtype {answer.dtype}{at}, expected {expected.dtype}."
        same = (torch.equal(answer.detach().cpu(), expected.detach().cpu()) if kind is torch.Tensor
                else np.array_equal(answer, expected))
        return None if same else ""
    if isinstance(expected, Mapping):
        if not isinstance(answer, Mapping):
            return f"Expected a dict{at}, got {type(answer).__name__}."
        missing, extra = [k for k in expected if k not in answer], [k for k in answer if k not in expected]
        if missing or extra:
            return (f"The keys{at} differ" + (f"; missing: {_few([repr(k) for k in missing])}" if missing else "")
                    + (f"; unexpected: {_few([repr(k) for k in extra])}" if extra else "") + ".")
        return next((d for k in expected if (d := _difference(answer[k], expected[k], f"{where}[{k!r}]")) is not None),
                    None)
    if isinstance(expected, (list, tuple)):
        if not isinstance(answer, (list, tuple)) or isinstance(answer, tuple) != isinstance(expected, tuple):
            return f"Expected a {type(expected).__name__}{at}, got {type(answer).__name__}."
        if len(answer) != len(expected):
            return f"{len(answer)} items{at}, expected {len(expected)}."
        return next((d for i, (a, e) in enumerate(zip(answer, expected))
                     if (d := _difference(a, e, f"{where}[{i}]")) is not None), None)
    try:
        return None if bool(answer == expected) else ""
    except (TypeError, ValueError, RuntimeError):  # == gave many truth values (an array, a tensor)
        return f"Expected a {type(expected).__name__}{at}, got {type(answer).__name__}."


def check_equal(exercise: str, answer: Any, expected: Any, *, hint: str) -> CheckResult:
    """Compare an answer with the expected value exactly.

    Tensors and NumPy arrays must match in type, shape, dtype and every element; dicts
    and lists are compared item by item (so a dict of tensors works); other values
    with ``==``.

    Args:
        exercise: the exercise's number.
        answer: the learner's value; ``None`` means not answered yet.
        expected: the right value, computed by the notebook (never typed in).
        hint: what to look at again when the answer is wrong.

    Example:
        >>> check_equal("0.2", torch.zeros(2), torch.ones(2), hint="look again").passed
        False
        >>> check_equal("0.2", {"w": torch.ones(2)}, {"w": torch.ones(2)}, hint="look again").passed
        True
    """
    if answer is None:
        return check_result(exercise, None, _UNANSWERED)
    difference = _difference(answer, expected)
    if difference is None:
        return check_result(exercise, True, "Well done.")
    return check_result(exercise, False, f"{difference} {hint}" if difference else hint)


def _as_number_tensor(value: Any) -> torch.Tensor:
    """``value`` as a float64 tensor, or complex128 when it holds complex numbers (never dropping a part)."""
    t = value.detach() if isinstance(value, torch.Tensor) else value
    probe = t if isinstance(t, torch.Tensor) else torch.as_tensor(np.asarray(t))
    return torch.as_tensor(t, dtype=torch.complex128 if probe.is_complex() else torch.float64).cpu()


def check_close(exercise: str, answer: Any, expected: Any, *, hint: str,
                rtol: float = 1e-4, atol: float = 1e-6) -> CheckResult:
    """Compare a number, list of numbers or tensor with the expected one up to floating-point rounding.

    Use it where the learner's computation may differ from the reference in the last
    digits (a softmax written by hand, a sum in another order). Complex values are
    compared as complex numbers, both parts: a real answer to a complex value is wrong
    unless the imaginary part is (close to) zero.

    Args:
        exercise: the exercise's number.
        answer: the learner's float, list or tensor; ``None`` means not answered yet.
        expected: the right value, computed by the notebook.
        hint: what to look at again when the answer is wrong.
        rtol, atol: tolerances, as in ``torch.allclose``.

    Example:
        >>> check_close("0.3", torch.tensor([0.1 + 0.2]), torch.tensor([0.3]), hint="add").passed
        True
        >>> check_close("6.9", 0.1 + 0.2, 0.3, hint="add").passed
        True
        >>> check_close("6.9", torch.tensor([1 + 2j]), torch.tensor([1 - 2j]), hint="conjugate?").passed
        False
    """
    if answer is None:
        return check_result(exercise, None, _UNANSWERED)
    try:
        a = _as_number_tensor(answer)
    except (TypeError, ValueError, RuntimeError):
        return check_result(exercise, False, f"Expected a number or a tensor, got {type(answer).__name__}. {hint}")
    e = _as_number_tensor(expected)
    if a.shape != e.shape:
        return check_result(exercise, False, f"Shape {tuple(a.shape)}, expected {tuple(e.shape)}. {hint}")
    if a.is_complex() or e.is_complex():
        a, e = a.to(torch.complex128), e.to(torch.complex128)
    ok = torch.allclose(a, e, rtol=rtol, atol=atol)
    return check_result(exercise, True, "Well done.") if ok else check_result(exercise, False, hint)


# --- Chapter 1: kinds of transfer, copying weights, freezing ---

# Exercise 1.1's scenarios (the notebook states them): the setting of each, and what to reconsider.
TRANSFER_SETTINGS = ("inductive", "transductive", "unsupervised")
_TAXONOMY: dict[str, tuple[str, str]] = {
    "a": ("inductive", "the new task (dog breeds) is not the source's, and it comes with labelled examples."),
    "b": ("transductive", "the task (the ten digits) stays the same, and the new domain has no labels."),
    "c": ("unsupervised", "no labels are used anywhere, neither in the source nor in the target."),
    "d": ("inductive", "the target task differs from the source's, and the X-rays come with labels."),
}


def check_taxonomy(answers: Mapping[str, str] | None, *, exercise: str = "1.1") -> CheckResult:
    """Check the setting (inductive, transductive or unsupervised) given to each scenario of exercise 1.1.

    Args:
        answers: ``{"a": "inductive", "b": ..., "c": ..., "d": ...}``; ``None`` if unanswered.
        exercise: the exercise's number.

    Example:
        >>> check_taxonomy(None).passed is None  # unanswered
        True
    """
    if answers is None:
        return check_result(exercise, None, _UNANSWERED)
    if not isinstance(answers, Mapping):
        return check_result(exercise, False, f"Expected a dict such as {{'a': 'inductive', ...}}, got {type(answers).__name__}.")
    missing = [k for k in _TAXONOMY if answers.get(k) in (None, "")]
    if missing:
        return check_result(exercise, False, f"Answer every scenario: {', '.join(missing)} missing.")
    given = {k: str(answers[k]).strip().lower() for k in _TAXONOMY}
    unknown = [k for k, v in given.items() if v not in TRANSFER_SETTINGS]
    if unknown:
        return check_result(exercise, False, f"Use one of {', '.join(TRANSFER_SETTINGS)} for each scenario "
                                             f"({', '.join(f'{k}: {given[k]!r}' for k in unknown)} is not one).")
    wrong = [k for k, (right, _) in _TAXONOMY.items() if given[k] != right]
    if wrong:
        hints = " ".join(f"({k}) Look again: {_TAXONOMY[k][1]}" for k in wrong)
        return check_result(exercise, False, f"{len(_TAXONOMY) - len(wrong)} of {len(_TAXONOMY)} right. {hints}")
    return check_result(exercise, True, "Well done: all four settings are right.")


def _head_keys(keys: list[str], head: str) -> list[str]:
    return [k for k in keys if k == head or k.startswith(head + ".")]


def _few(names: list[str], n: int = 4) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def check_transfer(model: nn.Module | None, source: nn.Module, *, head: str = "fc2",
                   exercise: str = "1.2") -> CheckResult:
    """Check that ``model`` holds a copy of every tensor of ``source`` except a fresh ``head``.

    Args:
        model: the learner's target network; ``None`` if unanswered.
        source: the network the weights come from.
        head: module name of the classifier that must not be copied.
        exercise: the exercise's number.

    Example:
        >>> import tlcourse as tl
        >>> src, dst = tl.LeNet(), tl.LeNet()
        >>> _ = dst.load_state_dict({k: v for k, v in src.state_dict().items() if not k.startswith("fc2.")}, strict=False)
        >>> check_transfer(dst, src).passed
        True
    """
    if model is None:
        return check_result(exercise, None, _UNANSWERED)
    if not isinstance(model, nn.Module):
        return check_result(exercise, False, f"Expected a network (an nn.Module), got {type(model).__name__}.")
    if model is source:
        return check_result(exercise, False, "This is the source network itself, not a copy: fine-tuning it would "
                                             "overwrite the source. Build a new network and copy weights into it.")
    src, dst = source.state_dict(), model.state_dict()
    differ = sorted(set(src) ^ set(dst)) or [k for k in src if src[k].shape != dst[k].shape]
    if differ:
        return check_result(exercise, False, f"The network has other tensors than the source ({_few(differ)}): "
                                             "build the same architecture.")
    heads = _head_keys(list(src), head)
    if not heads:
        return check_result(exercise, False, f"No tensor is named {head}.*: which module is the classifier?")
    shared = [k for k in src if dst[k].data_ptr() == src[k].data_ptr()]
    if shared:
        return check_result(exercise, False, f"{_few(shared)} share memory with the source: training the copy "
                                             "would change the source too. Copy the values into the new network's own tensors.")
    body = [k for k in src if k not in heads]
    not_copied = [k for k in body if not torch.equal(dst[k].cpu(), src[k].cpu())]
    head_copied = all(torch.equal(dst[k].cpu(), src[k].cpu()) for k in heads)
    if not_copied and len(not_copied) == len(body):
        return check_result(exercise, False, "None of the body's tensors equal the source's: nothing was copied "
                                             "(did you copy into another network than the one you return?).")
    if not_copied:
        return check_result(exercise, False, f"These tensors differ from the source's: {_few(not_copied)}. "
                                             f"Copy every tensor outside {head}.")
    if head_copied:
        return check_result(exercise, False, f"The head ({head}) was copied too: it scores the source's classes. "
                                             "The target's classes need a head with fresh, random weights.")
    return check_result(exercise, True, f"Well done: {len(body)} tensors copied, {head} left fresh.")


def check_freeze_head(model: nn.Module | None, *, head: str = "fc2", exercise: str = "1.3") -> CheckResult:
    """Check that only the parameters under ``head`` still require gradients.

    Args:
        model: the learner's network; ``None`` if unanswered.
        head: module name of the part that must stay trainable.
        exercise: the exercise's number.

    Example:
        >>> import tlcourse as tl
        >>> m = tl.LeNet(); _ = tl.freeze_all_but(m, "fc2")
        >>> check_freeze_head(m).passed
        True
    """
    if model is None:
        return check_result(exercise, None, _UNANSWERED)
    if not isinstance(model, nn.Module):
        return check_result(exercise, False, f"Expected a network (an nn.Module), got {type(model).__name__}.")
    params = dict(model.named_parameters())
    heads = _head_keys(list(params), head)
    if not heads:
        tops = ", ".join(n for n, _ in model.named_children())
        return check_result(exercise, False, f"No parameter is named {head}.*; the top-level modules are: {tops}.")
    body = [n for n in params if n not in heads]
    head_frozen = [n for n in heads if not params[n].requires_grad]
    body_training = [n for n in body if params[n].requires_grad]
    if head_frozen and not body_training:
        return check_result(exercise, False, "Everything is frozen, the head too: nothing would learn. "
                                             f"The head ({head}) must keep requires_grad=True.")
    if head_frozen:
        return check_result(exercise, False, f"The head is frozen ({_few(head_frozen)}): it is the part that must "
                                             "learn the new classes, so it must stay trainable.")
    if len(body_training) == len(body):
        return check_result(exercise, False, "Nothing is frozen: every parameter of the body still requires "
                                             "gradients. Switch them off for everything outside the head.")
    if body_training:
        return check_result(exercise, False, f"Part of the body still trains: {_few(body_training)}.")
    n_head = sum(params[n].numel() for n in heads)
    n_all = sum(p.numel() for p in params.values())
    return check_result(exercise, True, f"Well done: only {head} trains ({n_head:,} of {n_all:,} parameters).")


# --- Chapter 2: losses written by hand, weight interpolation ---

def _close(a: float, b: float, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return math.isfinite(a) and abs(a - b) <= atol + rtol * abs(b)


def _run(fn: Callable, *args: Any) -> tuple[Any, str | None]:
    """Call the learner's function on copies of ``args``; (result, None) or (None, what went wrong)."""
    copies = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        out = fn(*copies)
    except Exception as e:  # the learner's code: any error becomes a hint
        return None, f"Your function raised {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    if any(isinstance(a, torch.Tensor) and not torch.equal(a, c) for a, c in zip(args, copies)):
        return None, "Your function changed its input tensors in place; compute new tensors instead."
    return out, None


def _scalar(out: Any, per_item_shape: tuple[int, ...], what: str) -> tuple[float | None, str | None]:
    """The loss as a float, or a hint when it is not one number."""
    if not isinstance(out, torch.Tensor):
        if isinstance(out, (int, float)):
            return float(out), None
        return None, f"Return the loss as a tensor with one number, not {type(out).__name__}."
    if tuple(out.shape) == per_item_shape and out.numel() > 1:
        return None, f"You return one loss per {what} (shape {tuple(out.shape)}); reduce them to their mean."
    if out.numel() != 1:
        return None, f"Return a single number (shape ()), not a tensor of shape {tuple(out.shape)}."
    return float(out.detach().double()), None


def _ce_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    cases = []
    for n, c in ((8, 10), (5, 3), (1, 4)):
        cases.append((2 * torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g)))
    big = 100 * torch.randn(6, 10, generator=g) + 1000  # exp() overflows, softmax underflows to 0
    cases.append((big, torch.randint(0, 10, (6,), generator=g)))
    return cases


def check_cross_entropy(fn: Callable[[torch.Tensor, torch.Tensor], Any] | None, *,
                        exercise: str = "2.2") -> CheckResult:
    """Check a hand-written multi-class cross-entropy ``fn(logits, targets)`` against ``F.cross_entropy``.

    ``logits`` is ``(N, C)`` float, ``targets`` ``(N,)`` class indices; the answer must be
    the mean over the batch and stay finite for logits near 1000. Common slips get their
    own hint: a sum instead of a mean, raw logits or probabilities where
    log-probabilities belong, the wrong sign, the softmax over the wrong axis, a sigmoid
    per class, overflow.

    Args:
        fn: the learner's function; ``None`` if unanswered.
        exercise: the exercise's number.

    Example:
        >>> check_cross_entropy(lambda z, y: F.cross_entropy(z, y)).passed
        True
    """
    if fn is None:
        return check_result(exercise, None, _UNANSWERED)
    if not callable(fn):
        return check_result(exercise, False, f"Expected a function fn(logits, targets), got {type(fn).__name__}.")
    cases = _ce_cases()
    for i, (z, y) in enumerate(cases):
        n, c = z.shape
        out, err = _run(fn, z, y)
        if err is None:
            val, err = _scalar(out, (n,), "example")
        if err is not None:
            return check_result(exercise, False, err)
        zd, onehot = z.double(), F.one_hot(y, c).double()  # (N, C), (N, C)
        ref = float(F.cross_entropy(zd, y))
        if _close(val, ref, atol=1e-4):
            continue
        if i == len(cases) - 1:  # only the large logits fail
            if not math.isfinite(val):
                return check_result(exercise, False, f"Right for ordinary logits, but for logits near 1000 you get "
                                                     f"{val}: exp() overflows. Use the identity log Σ exp(z) = m + "
                                                     "log Σ exp(z − m), with m the largest logit of the row.")
            return check_result(exercise, False, f"Right for ordinary logits, but for logits near 1000 you get "
                                                 f"{val:.4f} instead of {ref:.4f}: precision is lost somewhere.")
        mistakes = [
            (ref * n, "That is the sum over the batch; cross-entropy (like F.cross_entropy) is the mean: divide by N."),
            (-ref, "Check the sign: the loss is the *negative* log-likelihood, so it is never below zero."),
            (ref / c, "You averaged over the classes too: sum over the classes, average over the examples."),
            (-float((zd * onehot).sum(1).mean()),
             "You used the raw logits where log-probabilities belong: apply log-softmax (the logits minus the "
             "log of the sum of their exponentials) first."),
            (-float((zd.softmax(1) * onehot).sum(1).mean()),
             "You used the probabilities where their logarithm belongs: take the log of the softmax."),
            (-float((zd.log_softmax(0) * onehot).sum(1).mean()),
             "The softmax runs over the wrong axis: normalise over the classes (dim=1), not over the batch."),
            (float(F.binary_cross_entropy_with_logits(zd, onehot, reduction="sum")) / n,
             "That is one-vs-rest binary cross-entropy (a sigmoid per class), a different loss: use one softmax "
             "over all the classes."),
            (float(F.binary_cross_entropy_with_logits(zd, onehot)),
             "That is one-vs-rest binary cross-entropy (a sigmoid per class), a different loss: use one softmax "
             "over all the classes."),
            (-float(zd.log_softmax(1).mean()),
             "You averaged the log-probabilities of all classes; only the true class's log-probability counts "
             "(use the targets to pick it)."),
        ]
        for value, hint in mistakes:
            if _close(val, value):
                return check_result(exercise, False, hint)
        return check_result(exercise, False, f"On a batch of {n} examples with {c} classes your function gives "
                                             f"{val:.4f}, but the cross-entropy is {ref:.4f}.")
    return check_result(exercise, True, f"Well done: your cross-entropy matches F.cross_entropy on {len(cases)} "
                                        "batches, logits near 1000 included.")


def _bce_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    binary = 2 * torch.randn(8, generator=g)
    multi = 2 * torch.randn(6, 4, generator=g)  # multi-label: 4 yes/no outputs per example
    large = torch.tensor([-100.0, -40.0, 35.0, 100.0, 60.0, -70.0])  # float32: σ(35) and σ(100) are exactly 1
    return [(binary, (torch.rand(8, generator=g) < 0.5).float()),
            (multi, (torch.rand(6, 4, generator=g) < 0.5).float()),
            (large, torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0]))]


def check_binary_cross_entropy(fn: Callable[[torch.Tensor, torch.Tensor], Any] | None, *,
                               exercise: str = "2.3") -> CheckResult:
    """Check a hand-written binary cross-entropy on logits ``fn(logits, targets)``.

    The reference is ``F.binary_cross_entropy_with_logits``: targets of 0/1 with the
    same shape as the logits, the mean over every element, finite for logits of ±100.

    Args:
        fn: the learner's function; ``None`` if unanswered.
        exercise: the exercise's number.

    Example:
        >>> check_binary_cross_entropy(F.binary_cross_entropy_with_logits).passed
        True
    """
    if fn is None:
        return check_result(exercise, None, _UNANSWERED)
    if not callable(fn):
        return check_result(exercise, False, f"Expected a function fn(logits, targets), got {type(fn).__name__}.")
    cases = _bce_cases()
    for i, (z, t) in enumerate(cases):
        out, err = _run(fn, z, t)
        if err is None:
            val, err = _scalar(out, tuple(z.shape), "element")
        if err is not None:
            return check_result(exercise, False, err)
        zd, td = z.double(), t.double()
        ref = float(F.binary_cross_entropy_with_logits(zd, td))
        if _close(val, ref, atol=1e-4):
            continue
        if i == len(cases) - 1:
            if not math.isfinite(val):
                return check_result(exercise, False, f"Right for ordinary logits, but for logits of ±100 you get {val}: "
                                                     "in float32 σ(100) is exactly 1, so log(1 − σ(z)) is −inf. Write "
                                                     "log σ(z) and log(1 − σ(z)) in terms of z, with no exp of a "
                                                     "large positive number.")
            return check_result(exercise, False, f"Right for ordinary logits, but for logits of ±100 you get "
                                                 f"{val:.4f} instead of {ref:.4f}.")
        if math.isnan(val):
            return check_result(exercise, False, "You get nan: a log of a negative number? Logits are not "
                                                 "probabilities; pass them through the sigmoid first.")
        n = z.shape[0]
        mistakes = [
            (ref * z.numel(), "That is the sum; like F.binary_cross_entropy_with_logits, take the mean over every element."),
            (ref * z.numel() / n, "You averaged over the examples only: take the mean over every element "
                                  "(examples and outputs), as PyTorch does."),
            (-ref, "Check the sign: the loss is a *negative* log-likelihood, so it is never below zero."),
        ]
        if z.ndim == 2:
            mistakes.append((float(-(td * zd.log_softmax(1)).sum() / z.numel()),
                             "A softmax makes the outputs compete; in binary (and multi-label) cross-entropy each "
                             "output is its own yes/no question: use the sigmoid."))
            mistakes.append((float(-(td * zd.log_softmax(1)).sum(1).mean()),
                             "A softmax makes the outputs compete; in binary (and multi-label) cross-entropy each "
                             "output is its own yes/no question: use the sigmoid."))
        for value, hint in mistakes:
            if _close(val, value):
                return check_result(exercise, False, hint)
        return check_result(exercise, False, f"On logits of shape {tuple(z.shape)} your function gives {val:.4f}, "
                                             f"but the binary cross-entropy is {ref:.4f}. Both terms count: "
                                             "t·log σ(z) and (1 − t)·log(1 − σ(z)).")
    return check_result(exercise, True, "Well done: your binary cross-entropy matches "
                                        "F.binary_cross_entropy_with_logits, logits of ±100 included.")


def _interp_inputs() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    shapes = {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (3, 4), "fc.bias": (3,)}
    a = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    b = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    return a, b


def check_interpolation(fn: Callable[[Mapping, Mapping, float], Any] | None, *,
                        exercise: str = "2.4") -> CheckResult:
    """Check ``fn(sd_a, sd_b, lam)``, which must return ``{k: lam·sd_a[k] + (1 − lam)·sd_b[k]}``.

    With ``sd_a = θ_S`` and ``sd_b = θ_T'`` this is the course's ``θ_T = λ·θ_S + (1−λ)·θ_T'``:
    λ = 1 gives ``sd_a`` back, λ = 0 gives ``sd_b``. The inputs must not change.

    Args:
        fn: the learner's function; ``None`` if unanswered.
        exercise: the exercise's number.

    Example:
        >>> check_interpolation(lambda a, b, lam: {k: lam * a[k] + (1 - lam) * b[k] for k in a}).passed
        True
    """
    if fn is None:
        return check_result(exercise, None, _UNANSWERED)
    if not callable(fn):
        return check_result(exercise, False, f"Expected a function fn(sd_a, sd_b, lam), got {type(fn).__name__}.")
    a, b = _interp_inputs()
    for lam in (0.3, 0.0, 1.0, 0.8):
        a_in, b_in = {k: v.clone() for k, v in a.items()}, {k: v.clone() for k, v in b.items()}
        try:
            out = fn(a_in, b_in, lam)
        except Exception as e:  # the learner's code: any error becomes a hint
            return check_result(exercise, False, f"With lam={lam} your function raised {type(e).__name__}: "
                                                 f"{str(e).splitlines()[0][:200] if str(e) else ''}")
        if any(not torch.equal(a_in[k], a[k]) for k in a) or any(not torch.equal(b_in[k], b[k]) for k in b):
            return check_result(exercise, False, "Your function changed sd_a or sd_b in place: later blends would "
                                                 "start from damaged weights. Build new tensors.")
        if out is None:
            return check_result(exercise, False, "Your function returned None: return the new state dict.")
        if not isinstance(out, Mapping):
            return check_result(exercise, False, f"Return a dict of tensors (a state dict), not {type(out).__name__}.")
        if set(out) != set(a):
            missing, extra = sorted(set(a) - set(out)), sorted(set(out) - set(a))
            return check_result(exercise, False, "The keys differ from the inputs'"
                                + (f"; missing: {_few(missing)}" if missing else "")
                                + (f"; unexpected: {_few(extra)}" if extra else "") + ".")
        bad_type = [k for k in a if not isinstance(out[k], torch.Tensor) or out[k].shape != a[k].shape]
        if bad_type:
            return check_result(exercise, False, f"Each value must be a tensor of the input's shape; look at {_few(bad_type)}.")
        expect = {k: lam * a[k] + (1 - lam) * b[k] for k in a}
        wrong = [k for k in a if not torch.allclose(out[k].detach().float(), expect[k], atol=1e-6)]
        if not wrong:
            continue
        rev = {k: (1 - lam) * a[k] + lam * b[k] for k in a}
        if all(torch.allclose(out[k].float(), rev[k], atol=1e-6) for k in a):
            return check_result(exercise, False, "λ is reversed: λ weights the first state dict (θ_S), so λ = 1 must "
                                                 "give sd_a back and λ = 0 give sd_b.")
        if all(torch.allclose(out[k].float(), (a[k] + b[k]) / 2, atol=1e-6) for k in a):
            return check_result(exercise, False, "Your blend ignores λ: it always returns the plain average.")
        for name, ref in (("sd_a", a), ("sd_b", b)):
            if all(torch.equal(out[k].float(), ref[k]) for k in a):
                return check_result(exercise, False, f"With lam={lam} you return {name} unchanged: blend every tensor.")
        if len(wrong) < len(a):
            return check_result(exercise, False, f"Some tensors are blended right, but not {_few(wrong)}: "
                                                 "treat every key the same way.")
        return check_result(exercise, False, f"With lam={lam} the result is not λ·sd_a + (1 − λ)·sd_b "
                                             f"(look at {wrong[0]}).")
    return check_result(exercise, True, "Well done: λ = 0 gives sd_b, λ = 1 gives sd_a, and between them "
                                        "every tensor lies on the straight line.")
