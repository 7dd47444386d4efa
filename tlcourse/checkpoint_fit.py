"""Does a checkpoint fit? What differs between saved weights or optimizer state and the ones here.

``load_checkpoint`` (``tlcourse.checkpoints``) asks these before it changes anything:
``model_problems`` lists missing, unexpected and differently shaped weights;
``optimizer_problems`` another optimizer type, other parameter groups, or per-parameter
buffers of the wrong shape. An empty list means the file fits.

Example:
    >>> import tlcourse as tl
    >>> model_problems(tl.LeNet().state_dict(), tl.LeNet(image_size=32))
    ['other shapes: fc1.weight (file (50, 320), model (50, 500))']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__: list[str] = []  # the helpers serve checkpoints.load_checkpoint

# Optimizer buffers that have their parameter's shape (SGD, Adam(W), RMSprop, Adagrad, NAdam, RAdam).
_PARAM_SHAPED = {"momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum"}


def _listed(names: list[str], limit: int = 8) -> str:
    """``a, b, c`` or ``a, b, ... and 5 more``."""
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def model_problems(saved: dict[str, Any], model: nn.Module) -> list[str]:
    """How the saved weights differ from ``model``'s: missing, unexpected and differently shaped keys."""
    mine = model.state_dict()
    missing = [k for k in mine if k not in saved]
    unexpected = [k for k in saved if k not in mine]
    shapes = [f"{k} (file {tuple(saved[k].shape)}, model {tuple(v.shape)})" for k, v in mine.items()
              if isinstance(v, torch.Tensor) and isinstance(saved.get(k), torch.Tensor) and saved[k].shape != v.shape]
    found = [("missing from the file", missing), ("unexpected in the file", unexpected), ("other shapes", shapes)]
    return [f"{what}: {_listed(keys)}" for what, keys in found if keys]


def optimizer_problems(saved: dict[str, Any], saved_type: str | None, optimizer: torch.optim.Optimizer,
                        model: nn.Module) -> list[str]:
    """How the saved optimizer state differs from ``optimizer``: its type, groups, or per-parameter buffers."""
    mine = type(optimizer).__name__
    if saved_type is not None and saved_type != mine:
        return [f"the file holds {saved_type} state, this is {mine}"]
    groups, state = saved.get("param_groups", []), saved.get("state", {})
    if len(groups) != len(optimizer.param_groups):
        return [f"parameter groups: {len(groups)} in the file, {len(optimizer.param_groups)} here"]
    problems, params = [], {}
    for i, (group, here) in enumerate(zip(groups, optimizer.param_groups)):
        if len(group["params"]) != len(here["params"]):
            problems.append(f"group {i}'s parameters: {len(group['params'])} in the file, {len(here['params'])} here")
        unused = sorted(set(group) - set(here))
        if saved_type is None and unused:  # a file saved before the type was recorded
            problems.append(f"group {i} has settings {unused} that {mine} does not use (another optimizer type)")
        params.update(zip(group["params"], here["params"]))
    if problems:
        return problems
    names = {id(p): n for n, p in model.named_parameters()}
    for index, buffers in state.items():
        if index not in params:
            problems.append(f"state for parameter {index}, which no group lists")
            continue
        param = params[index]
        name = names.get(id(param), f"parameter {index}")
        current = optimizer.state.get(param)
        if current and set(current) != set(buffers):
            problems.append(f"{name} has buffers {sorted(buffers)} in the file, {sorted(current)} here")
        problems += [f"{key} of {name} (file {tuple(v.shape)}, parameter {tuple(param.shape)})"
                     for key, v in buffers.items()
                     if key in _PARAM_SHAPED and isinstance(v, torch.Tensor) and v.shape != param.shape]
    return problems
