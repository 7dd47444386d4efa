"""What a model costs to run: milliseconds per image, measured the way benchmarks measure it, and bytes.

``inference_ms`` runs a few untimed warm-up passes first (the first calls pay for memory
allocation and for choosing kernels), then times ``repeats`` forward passes over the same
batch and takes the **median** (a pass that the operating system interrupted does not move
it, as it would move a mean), divided by the batch size. On CUDA the GPU runs
asynchronously, so each timed pass ends with ``torch.cuda.synchronize``: without it the
clock would stop when the work was *queued*, not done. The model runs in eval mode under
``torch.inference_mode()``, as it would when deployed.

Times depend on the machine and what else runs on it: compare models measured on the same
device, with the same batch, in the same session. ``model_table`` does that for several models
at once, beside their accuracy, parameter count and saved size (``saved_kb``).

Example:
    >>> import torch, tlcourse as tl
    >>> ms = tl.inference_ms(tl.LeNet(), torch.zeros(8, 1, 28, 28), device="cpu", repeats=3, warmup=1)
    >>> ms > 0
    True
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Mapping

import pandas as pd
import torch
from torch import nn

from .distillation import parameter_count
from .train import accuracy_on

__all__ = ["inference_ms", "saved_kb", "model_table"]

_clock = time.perf_counter  # what times a pass; the tests put a fake clock here


def inference_ms(model: nn.Module, x: torch.Tensor, *, device: torch.device | str, repeats: int = 20,
                 warmup: int = 3) -> float:
    """The median time of one forward pass over the batch ``x``, per image, in milliseconds.

    Args:
        model: the network (it is put in eval mode; its training mode is restored afterwards).
        x: ``(B, ...)`` one batch of inputs; moved to ``device`` before any timing.
        device: where ``model`` lives and the passes run.
        repeats: timed passes; the median is kept.
        warmup: untimed passes before them.

    Raises:
        ValueError: ``repeats`` below 1, ``warmup`` below 0, or an empty batch.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1 (the median of the timed passes); got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be 0 or more untimed passes; got {warmup}")
    if len(x) == 0:
        raise ValueError("x holds no images: pass a batch of at least one")
    device = torch.device(device)
    x = x.to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # wait for the queued kernels: time the work, not its queueing

    was_training = model.training
    model.eval()
    seconds = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        for _ in range(repeats):
            start = _clock()
            model(x)
            sync()
            seconds.append(_clock() - start)
    model.train(was_training)
    return 1000 * statistics.median(seconds) / len(x)


def saved_kb(model: nn.Module) -> float:
    """The size of the model's ``state_dict`` as ``torch.save`` writes it, in kB (1,000 bytes).

    Example:
        >>> saved_kb(nn.Linear(1000, 100)) > 400  # 100,100 float32 numbers: 400.4 kB and a header
        True
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return len(buffer.getvalue()) / 1000


def model_table(models: Mapping[str, nn.Module], x: torch.Tensor, y: torch.Tensor, *, device: torch.device | str,
                batch: int = 256, repeats: int = 100, warmup: int = 10) -> pd.DataFrame:
    """One row per model: accuracy on ``(x, y)``, parameters, saved kB and ms per image, all on ``device``.

    Time is measured for one image (the latency a single request sees) and for the first
    ``batch`` inputs (the cost per image when requests are batched), with ``inference_ms``.
    """
    def ms(model: nn.Module, inputs: torch.Tensor) -> float:
        return inference_ms(model, inputs, device=device, repeats=repeats, warmup=warmup)

    rows = {name: {"test accuracy": accuracy_on(model, x, y, device), "parameters": parameter_count(model),
                   "saved kB": saved_kb(model), "ms per image (batch 1)": ms(model, x[:1]),
                   f"ms per image (batch {batch})": ms(model, x[:batch])}
            for name, model in models.items()}
    return pd.DataFrame(rows).T.astype({"parameters": int})
