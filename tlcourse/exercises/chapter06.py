"""Chapter 6's exercises: what partial fine-tuning and gradual unfreezing train, which layer moves, what to freeze.

Each judge computes its reference from the chapter's objects (``trained``, ``source_body``,
``runs``, and the helpers ``from_source`` and ``budget``) or from ``tl.LeNetBN`` itself.
The change-the-code exercise trains with the learner's setting and the chapter's recipe,
and reports the accuracy it measured next to the chapter's.

Example:
    >>> from tlcourse.exercises.core import EXERCISES
    >>> [EXERCISES[n].kind for n in ("6.1", "6.2", "6.3", "6.4")]
    ['compute', 'compute', 'predict', 'change']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..adapt import fine_tune, unfreezing_stages
from ..comparison import compare_arms
from ..freezing import freeze
from ..models import LeNetBN
from ..regularise import distance_from
from ..train import evaluate
from .compare import Verdict, as_whole
from .core import ChapterObjectMissing, exercise, need

__all__: list[str] = []  # judges are registered by exercise number

COPIED = ("conv1", "conv2", "fc1")  # the layers the chapter copies from the source; fc2 is the new head
BN_LAYERS = [["conv1", "bn1"], ["conv2", "bn2"], "fc1", "fc2"]  # exercise 6.2's layers of a tl.LeNetBN
# the freezings the chapter measured (a tuple of frozen copied layers), and what to say about each
MEASURED = {
    (): "Nothing frozen is full fine-tuning, measured in section 1. Freeze conv1 and let the rest train.",
    ("conv1", "conv2"): "That is partial fine-tuning as the chapter ran it. Keep conv1 frozen and take conv2 out "
                        "of the list, so that it trains too.",
    ("conv1", "conv2", "fc1"): "All three copied layers frozen is feature extraction, measured in section 1. "
                               "Freeze conv1 only, so that conv2 and fc1 train.",
}


def _names(answer: Any) -> list[str] | None:
    """A list, tuple or set of strings as a list (one string as a list of one), else ``None``."""
    if isinstance(answer, str):
        return [answer]
    if isinstance(answer, (list, tuple, set)) and all(isinstance(a, str) for a in answer):
        return list(answer)
    return None


def _layer_moved(net: torch.nn.Module, anchor: Mapping[str, torch.Tensor],
                 layers: Sequence[str] = COPIED) -> dict[str, float]:
    """How far each layer of ``net`` moved from ``anchor``, relative to its size (``tl.distance_from`` per layer).

    Example:
        >>> import tlcourse as tl
        >>> net = tl.LeNet(); anchor = tl.parameter_snapshot(net, exclude="fc2")
        >>> _layer_moved(net, anchor)
        {'conv1': 0.0, 'conv2': 0.0, 'fc1': 0.0}
    """
    return {layer: distance_from(net, {n: w for n, w in anchor.items() if n.startswith(layer + ".")})
            for layer in layers}


def _mean_accuracy(runs: Sequence[Mapping[str, Any]], method: str) -> float:
    """The mean test accuracy of ``method`` over its runs in the chapter's ``runs``."""
    values = [r["accuracy"] for r in runs if r["method"] == method]
    if not values:
        raise ChapterObjectMissing(f"runs holds no run of {method!r}: run the chapter's cells above first "
                                   "(Run > Run All Above Selected Cell).")
    return sum(values) / len(values)


@exercise("6.1", answer="trained_names", stars=1, kind="compute",
          mistake='trained_names = ["fc2.weight", "fc2.bias"]')
def _trained_names(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    trained, run = need(ns, "trained", "run")
    net = trained["partial fine-tuning", run.seed]
    truth = {name for name, p in net.named_parameters() if p.requires_grad}
    names = _names(answer)
    if names is None:
        return Verdict(False, f"Give a list of parameter names (strings), not {type(answer).__name__}.")
    if set(names) == truth and len(names) == len(truth):
        return Verdict(True, "Well done: freezing the two convolutions leaves the weights and biases of fc1 and "
                             "the head to train.")
    if set(names) <= set(COPIED) | {"fc2"}:
        return Verdict(False, "Those are module names; named_parameters() names each tensor: its module, a dot, "
                              "then weight or bias.")
    if any(n.startswith(("conv1.", "conv2.")) for n in names):
        return Verdict(False, "The recipe freezes both convolutions (tl.freeze), so none of their tensors trains.")
    if set(names) < truth and all(n.startswith("fc2.") for n in names):
        return Verdict(False, "That is what the linear probe (feature extraction) trains: the head alone. "
                              "Partial fine-tuning freezes fewer layers.")
    if set(names) < truth:
        return Verdict(False, "Some trainable tensors are missing: every trained module has a weight and a bias, "
                              "and the new head trains in every recipe.")
    return Verdict(False, "Build the recipe's network (from_source, then freeze conv1 and conv2) and keep the "
                          "names from named_parameters() whose p.requires_grad is True.")


@exercise("6.2", answer="stage3_trainable", stars=2, kind="compute",
          mistake="stage3_trainable = 510 + 16_050 + 5_020  # fc2, fc1 and conv2")
def _stage3_trainable(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    net = LeNetBN()
    # elements trainable after each stage, i.e. after 1, 2, 3, 4 calls of next()
    counts = [sum(p.numel() for p in net.parameters() if p.requires_grad) for _ in unfreezing_stages(net, BN_LAYERS)]
    truth = counts[2]
    value = as_whole(answer)
    if value is None:
        return Verdict(False, f"Give one whole number, not {type(answer).__name__}.")
    if value == truth:
        return Verdict(True, "Well done: fc2, then fc1, then conv2 together with its BatchNorm.")
    if value == truth - sum(p.numel() for p in net.bn2.parameters()):
        return Verdict(False, "The third stage unfreezes a layer made of two modules here, conv2 and its "
                              "BatchNorm bn2, and bn2's γ and β count too. (The printout in section 3 is of a "
                              "LeNet without BatchNorm.)")
    if value in (counts[0], counts[1], counts[3]):
        return Verdict(False, "That is the count after another number of stages. Each next() unfreezes one more "
                              "layer from the top, and the first call gives the head alone.")
    if value == 8:
        return Verdict(False, "That counts tensors; count their elements (p.numel()).")
    return Verdict(False, "Apply three stages (three next() calls) to a tl.LeNetBN and add p.numel() over the "
                          "parameters that require gradients.")


@exercise("6.3", answer="moves_most", stars=2, kind="predict",
          mistake='_moved = layer_moved(trained["full fine-tuning", run.seed])\n'
                  "moves_most = min(_moved, key=_moved.get)")
def _moves_most(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    trained, run, source_body = need(ns, "trained", "run", "source_body")
    moved = _layer_moved(trained["full fine-tuning", run.seed], source_body)
    truth = max(moved, key=moved.get)
    if answer not in COPIED:
        return Verdict(False, f"Name one of the copied layers: {', '.join(repr(c) for c in COPIED)}.")
    if answer == truth:
        return Verdict(True, "Your prediction matches the measurement. With one learning rate for all, Adam "
                             "moves every weight by steps of about the same size, so the layer with the "
                             "smallest weights moves farthest relative to its size.")
    return Verdict(False, "The cell below your prediction measured otherwise. Full fine-tuning gives every layer "
                          "the same learning rate, and Adam's steps are about that size for every weight, "
                          "whatever its gradient; now compare the typical size of each layer's weights.")


@exercise("6.4", answer="still_frozen", stars=2, kind="change", mistake='still_frozen = ["conv1", "conv2"]')
def _still_frozen(answer: Any, ns: Mapping[str, Any]) -> Verdict:
    run, runs, from_source, budget, epochs, lr, test_loader = need(
        ns, "run", "runs", "from_source", "budget", "EPOCHS", "LR", "test_loader")
    names = _names(answer)
    if names is None:
        return Verdict(False, f'Give a list of layer names, such as ["conv2"], not {type(answer).__name__}.')
    if "fc2" in names:
        return Verdict(False, "fc2 is the new head: frozen, it keeps its random weights and the network cannot "
                              "learn the new classes. Freeze copied layers only.")
    if any(n not in COPIED for n in names):
        return Verdict(False, f"Name copied layers only, among {', '.join(repr(c) for c in COPIED)}.")
    frozen = tuple(c for c in COPIED if c in names)
    if frozen in MEASURED:
        return Verdict(False, MEASURED[frozen])
    partial, full = _mean_accuracy(runs, "partial fine-tuning"), _mean_accuracy(runs, "full fine-tuning")
    arm = f"{' and '.join(frozen)} frozen"
    rows = []
    for seed in run.profile.seeds:
        net = from_source(seed)  # a new network: the chapter's own stay as they are
        freeze(net, list(frozen))
        fine_tune(net, budget(seed), epochs=epochs, lr=lr, device=run.device)
        accuracy = evaluate(net, test_loader, run.device)["accuracy"]
        rows.append({"method": arm, "seed": seed, "accuracy": accuracy})
    mine = sum(r["accuracy"] for r in rows) / len(rows)
    paired = compare_arms(list(runs) + rows, arm, "partial fine-tuning")  # the chapter's runs are not extended
    per_seed = ", ".join(f"{100 * r['accuracy']:.1f}%" for r in rows)
    return Verdict(True, f"Measured with {arm}, the rest trained by the chapter's recipe: test accuracy "
                         f"{per_seed} (seeds {list(run.profile.seeds)}), mean {100 * mine:.1f}%, against "
                         f"{100 * partial:.1f}% for partial fine-tuning and {100 * full:.1f}% for full "
                         f"fine-tuning. Paired by seed: {paired}")
