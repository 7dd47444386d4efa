"""Chapter 4's exercises: what a transfer copies, what to skip, what to freeze, how to adapt conv1.

Each judge repeats the learner's setting on fresh networks built from the chapter's
sources (``source28``, ``source32``) and measures the result: the report of
``transfer_weights``, the tensors one SGD step changes, the responses of an adapted
first layer. Nothing of the notebook's is modified, and the random state is left as it
was.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[f"4.{i}"].kind for i in range(1, 5)]
    ['predict', 'change', 'change', 'change']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..freezing import freeze, trainable_parameters
from ..models import LeNet
from ..transfer import TransferReport, transfer_weights
from .compare import Verdict, few
from .core import exercise, need

__all__: list[str] = []  # judges are registered by exercise number


def _fresh(in_channels: int, image_size: int) -> LeNet:
    """A new LeNet (judge_answer puts the notebook's random-number state back afterwards)."""
    return LeNet(in_channels=in_channels, image_size=image_size)


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"


@exercise("4.1", answer="counts_grey", stars=1, kind="predict",
          mistake='counts_grey = {"copied": 5, "adapted": 1, "skipped": 2}')
def _counts_grey(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    source32 = need(ns, "source32")
    truth = transfer_weights(source32, _fresh(1, 28), adapt_first_conv="mean", skip="fc2").counts
    if not isinstance(answer, Mapping) or set(answer) != set(truth):
        return Verdict(False, "Give a dict with the keys 'copied', 'adapted' and 'skipped', like a report's counts.")
    if not all(isinstance(answer[k], int) for k in truth):
        return Verdict(False, "Each count is a whole number of tensors.")
    given = {k: answer[k] for k in truth}
    if given == truth:
        return Verdict(True, "Your prediction matches the report: conv1's filters are averaged down to one "
                             "channel, fc1.weight does not fit (28×28 images give fc1 fewer inputs than 32×32 ones), "
                             "and skip='fc2' leaves out both of fc2's tensors.")
    if sum(given.values()) != sum(truth.values()):
        return Verdict(False, f"Your counts add up to {sum(given.values())}, but the report has one row per tensor of "
                              "the target's state_dict: a weight and a bias for each of its four layers.")
    if given["adapted"] < truth["adapted"]:
        return Verdict(False, "With adapt_first_conv='mean', a first-layer weight whose shape differs only in its "
                              "input channels is adapted, not skipped.")
    if given["copied"] > truth["copied"]:
        return Verdict(False, "Not every tensor with a matching name fits: fc1 reads the flattened output of "
                              "conv2, whose size depends on the image size.")
    return Verdict(False, "The report disagrees with your prediction. Go through the target's tensors one by one: "
                          "which shapes depend on the input channels, which on the image size, which on neither, "
                          "and what skip='fc2' removes.")


@exercise("4.2", answer="skip_b", stars=1, kind="change", mistake='skip_b = "fc2"')
def _skip_b(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    source28 = need(ns, "source28")
    try:
        report = transfer_weights(source28, _fresh(3, 32), adapt_first_conv="repeat", skip=answer)
    except (TypeError, ValueError) as e:  # a typo in a name (UnknownNameError), or not a name at all
        return Verdict(False, f"transfer_weights refused your skip: {_error(e)}")
    head = ("fc1.", "fc2.")
    leaked = [n for n in report.copied + report.adapted if n.startswith(head)]
    lost = [n for n in report.skipped if not n.startswith(head)]
    if leaked:
        return Verdict(False, f"Measured: the report shows {few(leaked)} taken from the source, so that layer would "
                              "start half source, half random. Skip whole layers, not only the tensors that do "
                              "not fit.")
    if lost:
        return Verdict(False, f"Measured: you skipped {few(lost)} too. Those tensors fit (or are adapted), so "
                              "skipping them throws away what the source learned.")
    counts = ", ".join(f"{n} {action}" for action, n in report.counts.items())
    return Verdict(True, f"Measured: {counts}. conv1 is adapted, conv1.bias and conv2 are copied, and "
                         "fc1 and fc2 both keep their random start: the classifier is one fresh block to train.")


def _one_step(model: LeNet, images: torch.Tensor, labels: torch.Tensor) -> list[str]:
    """The state_dict keys one SGD step (lr 0.1, 64 images, as in the chapter) changes."""
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(trainable_parameters(model), lr=0.1)
    F.cross_entropy(model(images[:64].float() / 255), labels[:64]).backward()
    optimizer.step()
    return [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]


@exercise("4.3", answer="frozen", stars=1, kind="change", mistake='frozen = ["conv1", "conv2"]')
def _frozen(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    source32, images, labels = need(ns, "source32", "images", "labels")
    model = _fresh(3, 32)
    transfer_weights(source32, model, skip="fc2")
    try:
        freeze(model, answer)
    except (TypeError, ValueError) as e:  # a typo in a name (UnknownNameError), or not a name at all
        return Verdict(False, f"tl.freeze refused your list: {_error(e)}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        return Verdict(False, "You froze everything: the optimiser would have nothing to change.")
    changed = _one_step(model, images, labels)
    names = list(model.state_dict())
    unchanged = [n for n in names if n not in changed]
    if unchanged == ["conv1.weight", "conv1.bias"]:
        total = sum(p.numel() for p in model.parameters())
        return Verdict(True, f"Measured: one SGD step changed {few(changed, 6)} and left conv1 exactly as it was; "
                             f"{trainable:,} of {total:,} parameters trained.")
    if any(n.startswith("conv1.") for n in changed):
        if not any(n.startswith(("fc1.", "fc2.")) for n in changed):
            return Verdict(False, "Measured: the step changed conv1 and not the classifier. tl.freeze takes the "
                                  "layers to keep fixed, not the ones to train.")
        return Verdict(False, "Measured: the step changed conv1. Fine-tuning the top keeps the most generic "
                              "features as the source learned them: which layer holds those?")
    return Verdict(False, f"Measured: the step left {few(unchanged, 6)} unchanged. Fine-tuning the top trains "
                          "more than that: compare the three choices listed under 'Which layers to train'.")


def _first_layer_gap(source32: LeNet, grey_net: LeNet, digits: torch.Tensor) -> tuple[float, bool]:
    """Largest gap between the grey net's conv1 on grey digits and source32's on them as R = G = B; within rounding?"""
    grey = digits[:8, :1].double() / 255  # (8, 1, 32, 32)
    w_s, b_s = (t.detach().cpu().double() for t in (source32.conv1.weight, source32.conv1.bias))
    w_t, b_t = (t.detach().cpu().double() for t in (grey_net.conv1.weight, grey_net.conv1.bias))
    gap = (F.conv2d(grey.repeat(1, 3, 1, 1), w_s, b_s) - F.conv2d(grey, w_t, b_t)).abs()
    # float32 stores the summed filter to within a few units of 2**-24 (relative) of Σ|W|
    allowed = 4 * 2.0**-24 * F.conv2d(grey, w_s.abs().sum(1, keepdim=True)) + 1e-12
    return float(gap.max()), bool((gap <= allowed).all())


@exercise("4.4", answer="grey_mode", stars=2, kind="change", mistake='grey_mode = "mean"')
def _grey_mode(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    source32, digits = need(ns, "source32", "digits")
    grey_net = _fresh(1, 32)
    try:
        report: TransferReport = transfer_weights(source32, grey_net, adapt_first_conv=answer, skip="fc2")
    except (TypeError, ValueError) as e:  # not a mode transfer_weights understands
        return Verdict(False, f"transfer_weights refused your mode: {_error(e)}")
    if "conv1.weight" not in report.adapted:
        reason = next(r.reason for r in report.rows if r.name == "conv1.weight")
        return Verdict(False, f"Measured: conv1.weight was skipped ({reason}), so the grey network's first layer "
                              "keeps its random start. Pick a mode that maps three channels to one.")
    gap, within = _first_layer_gap(source32, grey_net, digits)
    if within:
        return Verdict(True, f"Measured: on 8 grey digits the grey network's conv1 responses differ from "
                             f"source32's on the same digits as R = G = B by at most {gap:.1e}, float32 rounding: "
                             "when the three channels are equal, a filter's three colour slices add up.")
    return Verdict(False, f"Measured: the grey network's conv1 responses differ from source32's on the same digits "
                          f"as R = G = B by up to {gap:.2f}. On such an image every colour slice of a filter sees the "
                          "same pixels, and the source adds up what the three slices give.")
