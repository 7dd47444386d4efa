"""Int8 weights: PyTorch's dynamic quantisation of a model's linear layers, measured before and after.

``quantise_linear_layers`` stores every ``nn.Linear``'s weights as 8-bit integers with one scale
per matrix and quantises the activations on the fly (``torch.ao.quantization.quantize_dynamic``);
convolutions stay float32, and the int8 kernels run on the CPU. ``quantisation_table`` measures
a model before and after with ``tl.model_table`` (accuracy, saved size, milliseconds per image).
A PyTorch build without it raises ``QuantisationUnavailable``, and the table keeps the float32 row.

Example:
    >>> import torch, tlcourse as tl
    >>> tl.quantise_linear_layers(tl.LeNet())(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import copy
import warnings

import pandas as pd
import torch
from torch import nn

from .compression import CompressionSettings, DistillMaterial
from .inference_time import model_table

__all__ = ["QuantisationUnavailable", "quantise_linear_layers", "quantisation_table"]


class QuantisationUnavailable(RuntimeError):
    """This PyTorch build cannot quantise a model dynamically (no ``torch.ao.quantization`` or no int8 engine)."""


def _int8_engines() -> set[str]:
    """The int8 back ends this PyTorch build has for the CPU (fbgemm, x86, qnnpack, ...)."""
    return set(torch.backends.quantized.supported_engines) - {"none"}


def quantise_linear_layers(model: nn.Module) -> nn.Module:
    """A CPU copy of ``model`` whose ``nn.Linear`` layers hold int8 weights (PyTorch's dynamic quantisation).

    The weights are stored as 8-bit integers with one scale each; activations are quantised
    on the fly at each call. Convolutions stay float32. The quantised kernels run on the CPU.

    Raises:
        QuantisationUnavailable: this PyTorch has no ``torch.ao.quantization.quantize_dynamic``
            or no int8 engine; the message says what to do.
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError:
        raise QuantisationUnavailable(f"this PyTorch ({torch.__version__}) has no torch.ao.quantization."
                                      "quantize_dynamic: the int8 rows are skipped (PyTorch's torchao package "
                                      "offers the same on newer versions)") from None
    if not _int8_engines():
        raise QuantisationUnavailable(f"this PyTorch build ({torch.__version__}) has no int8 engine for the CPU: "
                                      "the int8 rows are skipped")
    with warnings.catch_warnings():
        # PyTorch announces torch.ao's move to torchao; the API works on the pinned version, and the
        # notice would print under the learner's cell
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def quantisation_table(model: nn.Module, material: DistillMaterial, *, settings: CompressionSettings) -> pd.DataFrame:
    """``model`` before and after ``quantise_linear_layers``: test accuracy, saved size, ms per image, on the CPU.

    Where this PyTorch cannot quantise, the table holds the float32 row alone and the reason is printed.
    """
    float32 = copy.deepcopy(model).cpu().eval()
    models = {"float32": float32}
    try:
        models["int8 linear layers"] = quantise_linear_layers(float32)
    except QuantisationUnavailable as reason:
        print(f"No int8 row: {reason}.")
    table = model_table(models, material.test_x, material.test_y, device="cpu", **settings.timing())
    return table.drop(columns="parameters")  # an int8 layer's packed weights are no nn.Parameter to count
