"""Chapter 2's exercises: the loss of a uniform guess, three functions written by hand, one loss to train with.

2.1 compares a predicted loss with the one computed on the chapter's batch;
``judge_cross_entropy`` (2.2) and ``judge_binary_cross_entropy`` (2.3) run a hand-written
loss against PyTorch's on several inputs (large logits included); ``judge_interpolation``
(2.4) a hand-written weight interpolation; 2.5 fine-tunes a copy of the source with the
learner's one-vs-rest loss and measures it. Each recognises the usual mistakes (a sum
instead of a mean, a forgotten log-softmax, a reversed λ) and names them in the hint.

Example:
    >>> judge_cross_entropy(lambda z, y: F.cross_entropy(z, y)).passed
    True
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[f"2.{i}"].kind for i in range(1, 6)]
    ['predict', 'write', 'write', 'write', 'change']
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..models import LeNet
from ..train import evaluate
from .compare import Verdict, as_real, few as _few
from .core import exercise, need

__all__ = ["judge_cross_entropy", "judge_binary_cross_entropy", "judge_interpolation"]


def _close(a: float, b: float, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    return math.isfinite(a) and abs(a - b) <= atol + rtol * abs(b)


@exercise("2.1", answer="uniform_loss", stars=1, kind="predict", mistake="uniform_loss = 0.1")
def _uniform_loss(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    y = need(ns, "yb_tgt")
    truth = float(F.cross_entropy(torch.zeros(len(y), 10, device=y.device), y))
    value = as_real(answer)
    if value is None:
        return Verdict(False, f"Give one number (a float), not {type(answer).__name__}.")
    if abs(value - truth) <= 0.01:
        return Verdict(True, "Your prediction matches the loss computed above: every image's true class gets "
                             "probability 1/10, so every image's loss is −log(1/10), whatever its label, and "
                             "so is their mean.")
    mistakes = [
        (0.1, "That is the probability a uniform guess gives the true class; the loss is minus its logarithm."),
        (-truth, "Check the sign: the loss is the *negative* log-likelihood, so it is never below zero."),
        (1.0, "PyTorch's losses use the natural logarithm (ln), not the logarithm to base 10."),
        (truth / math.log(2), "PyTorch's losses use the natural logarithm (ln), not the logarithm to base 2."),
        (truth * len(y), "That is the sum over the batch; the cross-entropy is the mean over the images."),
        (truth * 10, "Only the true class's term counts: the one-hot label multiplies the other nine by 0."),
        (0.0, "A uniform guess is not a perfect one: the loss is 0 only when the true class gets probability 1."),
    ]
    for wrong, hint in mistakes:
        if abs(value - wrong) <= 0.01:
            return Verdict(False, hint)
    return Verdict(False, "The cell above disagrees with your prediction. Ten equal logits give each class "
                          "probability 1/10; the loss of one image is −log of its true class's probability, "
                          "and the batch's loss is the mean.")


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
    cases = [(2 * torch.randn(n, c, generator=g), torch.randint(0, c, (n,), generator=g))
             for n, c in ((8, 10), (5, 3), (1, 4))]
    big = 100 * torch.randn(6, 10, generator=g) + 1000  # exp() overflows, softmax underflows to 0
    return cases + [(big, torch.randint(0, 10, (6,), generator=g))]


@exercise("2.2", answer="my_cross_entropy", stars=2, kind="write", mistake="my_cross_entropy = cross_entropy_by_hand")
def judge_cross_entropy(fn: Any, ns: Mapping[str, Any] | None = None) -> Verdict:
    """Check a hand-written multi-class cross-entropy ``fn(logits, targets)`` against ``F.cross_entropy``.

    ``logits`` is ``(N, C)`` float, ``targets`` ``(N,)`` class indices; the answer must be
    the mean over the batch and stay finite for logits near 1000. Common slips get their
    own hint: a sum instead of a mean, raw logits or probabilities where
    log-probabilities belong, the wrong sign, the softmax over the wrong axis, a sigmoid
    per class, overflow.

    Args:
        fn: the learner's function.
        ns: the notebook's namespace (not needed: the test cases are stored here).

    Example:
        >>> judge_cross_entropy(lambda z, y: F.cross_entropy(z, y)).passed
        True
    """
    if not callable(fn):
        return Verdict(False, f"Expected a function fn(logits, targets), got {type(fn).__name__}.")
    cases = _ce_cases()
    for i, (z, y) in enumerate(cases):
        n, c = z.shape
        out, err = _run(fn, z, y)
        if err is None:
            val, err = _scalar(out, (n,), "example")
        if err is not None:
            return Verdict(False, err)
        zd, onehot = z.double(), F.one_hot(y, c).double()  # (N, C), (N, C)
        ref = float(F.cross_entropy(zd, y))
        if _close(val, ref, atol=1e-4):
            continue
        if i == len(cases) - 1:  # only the large logits fail
            if not math.isfinite(val):
                return Verdict(False, f"Right for ordinary logits, but for logits near 1000 you get {val}: exp() "
                                      "overflows. Use the identity log Σ exp(z) = m + log Σ exp(z − m), with m the "
                                      "largest logit of the row.")
            return Verdict(False, f"Right for ordinary logits, but for logits near 1000 you get {val:.4f} instead "
                                  f"of {ref:.4f}: precision is lost somewhere.")
        ovr = ("That is one-vs-rest binary cross-entropy (a sigmoid per class), a different loss: use one softmax "
               "over all the classes.")
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
            (float(F.binary_cross_entropy_with_logits(zd, onehot, reduction="sum")) / n, ovr),
            (float(F.binary_cross_entropy_with_logits(zd, onehot)), ovr),
            (-float(zd.log_softmax(1).mean()),
             "You averaged the log-probabilities of all classes; only the true class's log-probability counts "
             "(use the targets to pick it)."),
        ]
        for value, hint in mistakes:
            if _close(val, value):
                return Verdict(False, hint)
        return Verdict(False, f"On a batch of {n} examples with {c} classes your function gives {val:.4f}, but "
                              f"the cross-entropy is {ref:.4f}.")
    return Verdict(True, f"Well done: your cross-entropy matches F.cross_entropy on {len(cases)} batches, logits "
                         "near 1000 included.")


def _bce_cases() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    binary = 2 * torch.randn(8, generator=g)
    multi = 2 * torch.randn(6, 4, generator=g)  # multi-label: 4 yes/no outputs per example
    large = torch.tensor([-100.0, -40.0, 35.0, 100.0, 60.0, -70.0])  # float32: σ(35) and σ(100) are exactly 1
    return [(binary, (torch.rand(8, generator=g) < 0.5).float()),
            (multi, (torch.rand(6, 4, generator=g) < 0.5).float()),
            (large, torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 1.0]))]


@exercise("2.3", answer="my_binary_cross_entropy", stars=2, kind="write",
          mistake="my_binary_cross_entropy = lambda z, t: -(t * torch.sigmoid(z).log() "
                  "+ (1 - t) * (1 - torch.sigmoid(z)).log()).mean()")
def judge_binary_cross_entropy(fn: Any, ns: Mapping[str, Any] | None = None) -> Verdict:
    """Check a hand-written binary cross-entropy on logits ``fn(logits, targets)``.

    The reference is ``F.binary_cross_entropy_with_logits``: targets of 0/1 with the
    same shape as the logits, the mean over every element, finite for logits of ±100.

    Args:
        fn: the learner's function.
        ns: the notebook's namespace (not needed: the test cases are stored here).

    Example:
        >>> judge_binary_cross_entropy(F.binary_cross_entropy_with_logits).passed
        True
    """
    if not callable(fn):
        return Verdict(False, f"Expected a function fn(logits, targets), got {type(fn).__name__}.")
    cases = _bce_cases()
    for i, (z, t) in enumerate(cases):
        out, err = _run(fn, z, t)
        if err is None:
            val, err = _scalar(out, tuple(z.shape), "element")
        if err is not None:
            return Verdict(False, err)
        zd, td = z.double(), t.double()
        ref = float(F.binary_cross_entropy_with_logits(zd, td))
        if _close(val, ref, atol=1e-4):
            continue
        if i == len(cases) - 1:
            if not math.isfinite(val):
                return Verdict(False, f"Right for ordinary logits, but for logits of ±100 you get {val}: in float32 "
                                      "σ(100) is exactly 1, so log(1 − σ(z)) is −inf. Write log σ(z) and "
                                      "log(1 − σ(z)) in terms of z, with no exp of a large positive number.")
            return Verdict(False, f"Right for ordinary logits, but for logits of ±100 you get {val:.4f} instead "
                                  f"of {ref:.4f}.")
        if math.isnan(val):
            return Verdict(False, "You get nan: a log of a negative number? Logits are not probabilities; pass "
                                  "them through the sigmoid first.")
        n = z.shape[0]
        mistakes = [
            (ref * z.numel(), "That is the sum; like F.binary_cross_entropy_with_logits, take the mean over every "
                              "element."),
            (ref * z.numel() / n, "You averaged over the examples only: take the mean over every element "
                                  "(examples and outputs), as PyTorch does."),
            (-ref, "Check the sign: the loss is a *negative* log-likelihood, so it is never below zero."),
        ]
        if z.ndim == 2:
            softmax = ("A softmax makes the outputs compete; in binary (and multi-label) cross-entropy each output "
                       "is its own yes/no question: use the sigmoid.")
            mistakes += [(float(-(td * zd.log_softmax(1)).sum() / z.numel()), softmax),
                         (float(-(td * zd.log_softmax(1)).sum(1).mean()), softmax)]
        for value, hint in mistakes:
            if _close(val, value):
                return Verdict(False, hint)
        return Verdict(False, f"On logits of shape {tuple(z.shape)} your function gives {val:.4f}, but the binary "
                              f"cross-entropy is {ref:.4f}. Both terms count: t·log σ(z) and "
                              "(1 − t)·log(1 − σ(z)).")
    return Verdict(True, "Well done: your binary cross-entropy matches F.binary_cross_entropy_with_logits, logits "
                         "of ±100 included.")


def _interp_inputs() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    shapes = {"conv.weight": (4, 1, 3, 3), "conv.bias": (4,), "fc.weight": (3, 4), "fc.bias": (3,)}
    a = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    return a, {k: torch.randn(s, generator=g) for k, s in shapes.items()}


@exercise("2.4", answer="my_interpolate", stars=1, kind="write",
          mistake="my_interpolate = lambda sd_a, sd_b, lam: {k: (1 - lam) * sd_a[k] + lam * sd_b[k] for k in sd_a}")
def judge_interpolation(fn: Any, ns: Mapping[str, Any] | None = None) -> Verdict:
    """Check ``fn(sd_a, sd_b, lam)``, which must return ``{k: lam·sd_a[k] + (1 − lam)·sd_b[k]}``.

    With ``sd_a = θ_S`` and ``sd_b = θ_T'`` this is the course's ``θ_T = λ·θ_S + (1−λ)·θ_T'``:
    λ = 1 gives ``sd_a`` back, λ = 0 gives ``sd_b``. The inputs must not change.

    Args:
        fn: the learner's function.
        ns: the notebook's namespace (not needed: the test cases are stored here).

    Example:
        >>> judge_interpolation(lambda a, b, lam: {k: lam * a[k] + (1 - lam) * b[k] for k in a}).passed
        True
    """
    if not callable(fn):
        return Verdict(False, f"Expected a function fn(sd_a, sd_b, lam), got {type(fn).__name__}.")
    a, b = _interp_inputs()
    for lam in (0.3, 0.0, 1.0, 0.8):
        a_in, b_in = {k: v.clone() for k, v in a.items()}, {k: v.clone() for k, v in b.items()}
        try:
            out = fn(a_in, b_in, lam)
        except Exception as e:  # the learner's code: any error becomes a hint
            return Verdict(False, f"With lam={lam} your function raised {type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:200] if str(e) else ''}")
        if any(not torch.equal(a_in[k], a[k]) for k in a) or any(not torch.equal(b_in[k], b[k]) for k in b):
            return Verdict(False, "Your function changed sd_a or sd_b in place: later blends would start from "
                                  "damaged weights. Build new tensors.")
        if out is None:
            return Verdict(False, "Your function returned None: return the new state dict.")
        if not isinstance(out, Mapping):
            return Verdict(False, f"Return a dict of tensors (a state dict), not {type(out).__name__}.")
        if set(out) != set(a):
            missing, extra = sorted(set(a) - set(out)), sorted(set(out) - set(a))
            return Verdict(False, "The keys differ from the inputs'"
                           + (f"; missing: {_few(missing)}" if missing else "")
                           + (f"; unexpected: {_few(extra)}" if extra else "") + ".")
        bad_type = [k for k in a if not isinstance(out[k], torch.Tensor) or out[k].shape != a[k].shape]
        if bad_type:
            return Verdict(False, f"Each value must be a tensor of the input's shape; look at {_few(bad_type)}.")
        expect = {k: lam * a[k] + (1 - lam) * b[k] for k in a}
        wrong = [k for k in a if not torch.allclose(out[k].detach().float(), expect[k], atol=1e-6)]
        if not wrong:
            continue
        rev = {k: (1 - lam) * a[k] + lam * b[k] for k in a}
        if all(torch.allclose(out[k].float(), rev[k], atol=1e-6) for k in a):
            return Verdict(False, "λ is reversed: λ weights the first state dict (θ_S), so λ = 1 must give sd_a "
                                  "back and λ = 0 give sd_b.")
        if all(torch.allclose(out[k].float(), (a[k] + b[k]) / 2, atol=1e-6) for k in a):
            return Verdict(False, "Your blend ignores λ: it always returns the plain average.")
        for name, ref in (("sd_a", a), ("sd_b", b)):
            if all(torch.equal(out[k].float(), ref[k]) for k in a):
                return Verdict(False, f"With lam={lam} you return {name} unchanged: blend every tensor.")
        if len(wrong) < len(a):
            return Verdict(False, f"Some tensors are blended right, but not {_few(wrong)}: treat every key the "
                                  "same way.")
        return Verdict(False, f"With lam={lam} the result is not λ·sd_a + (1 − λ)·sd_b (look at {wrong[0]}).")
    return Verdict(True, "Well done: λ = 0 gives sd_b, λ = 1 gives sd_a, and between them every tensor lies on "
                         "the straight line.")


@exercise("2.5", answer="ovr_loss", stars=2, kind="change", mistake="ovr_loss = F.cross_entropy")
def _ovr_training(fn: Any, ns: Mapping[str, Any]) -> Verdict:
    source, target, run, k, budget_loader, epochs_for, train, test_loader, xb = need(
        ns, "source", "target", "run", "k", "budget_loader", "epochs_for", "train", "tgt_test_loader", "xb_tgt")
    if not callable(fn):
        return Verdict(False, f"Expected a function fn(logits, targets), got {type(fn).__name__}.")
    g = torch.Generator().manual_seed(3)
    z, y = 2 * torch.randn(8, 10, generator=g), torch.randint(0, 10, (8,), generator=g)
    out, err = _run(fn, z, y)
    if err is None:
        val, err = _scalar(out, (8,), "example")
    if err is not None:
        return Verdict(False, err)
    ovr = float(F.binary_cross_entropy_with_logits(z.double(), F.one_hot(y, 10).double()))
    if _close(val, float(F.cross_entropy(z.double(), y))):
        return Verdict(False, "That is the softmax cross-entropy the target was already trained with. One-vs-rest "
                              "asks ten yes/no questions: a sigmoid per class, against the one-hot label.")
    if _close(val, 80 * ovr):
        return Verdict(False, "That is the sum over every (image, class) pair; take the mean, as "
                              "F.binary_cross_entropy_with_logits does by default.")
    if not (_close(val, ovr) or _close(val, 10 * ovr)):  # the mean over B × 10, or the sum over classes
        return Verdict(False, "Your function is not the one-vs-rest binary cross-entropy of the cell under "
                              "'Where binary cross-entropy belongs': the logits against one-hot targets (as floats), "
                              "a sigmoid per class.")
    model = LeNet().to(run.device)  # judge_answer restores the notebook's random state afterwards
    model.load_state_dict(source.state_dict())  # the same start as the target: every tensor of θ_S
    loader = budget_loader(k, run.seed)
    train(model, loader, epochs_for(loader, run.profile.target_epochs), loss_fn=fn)
    accuracy, baseline = (evaluate(m, test_loader, run.device)["accuracy"] for m in (model, target))
    model.eval()
    with torch.no_grad():
        sums = torch.sigmoid(model(xb.to(run.device))).sum(1)  # (B,): a softmax would give 1 for each
    return Verdict(True, f"Measured, on this one run: fine-tuned with one-vs-rest binary cross-entropy from the "
                         f"same start, on the same {k} images per class, the copy reaches {accuracy:.1%} test "
                         f"accuracy, against {baseline:.1%} for the target trained with cross-entropy. Its ten "
                         f"sigmoid outputs add up to between {sums.min():.2f} and {sums.max():.2f} on the images "
                         "of the test batch: nothing makes them add up to 1.")
