"""``TrainState``: a torch model and its optimizer as one flat checkpoint, and back."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TrainState"]

_OPT_STATE = "optimizer.state."
_OPT_GROUP = "optimizer.param_groups."


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "asnumpy"):
        return np.asarray(value.asnumpy())
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


class TrainState:
    """A torch model plus its optimizer, saved as one flat ``{name: tensor}`` checkpoint.

    Names: the model's ``state_dict`` keys; ``optimizer.state.<param name>.<key>`` for the
    per-parameter optimizer state (e.g. ``exp_avg``); ``optimizer.param_groups.<i>.<key>`` for the
    numeric hyper-parameters (``lr``, ``betas``, ...).
    """

    def __init__(self, model: Any, optimizer: Any = None) -> None:
        self.model = model
        self.optimizer = optimizer

    def _param_names(self) -> list[str]:
        """Parameter name for each optimizer index (optimizer state_dict numbering)."""
        by_id = {id(p): name for name, p in self.model.named_parameters()}
        names: list[str] = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                names.append(by_id.get(id(p), f"param{len(names)}"))
        return names

    def checkpoint_state(self) -> dict[str, Any]:
        """The save object: live model tensors, then the optimizer state."""
        import torch

        out: dict[str, Any] = dict(self.model.state_dict())
        if self.optimizer is None:
            return out
        sd = self.optimizer.state_dict()
        names = self._param_names()
        for index, state in sd["state"].items():
            for key, value in state.items():
                if isinstance(value, torch.Tensor):
                    out[f"{_OPT_STATE}{names[index]}.{key}"] = value.detach()
                elif isinstance(value, (int, float, bool)):
                    out[f"{_OPT_STATE}{names[index]}.{key}"] = torch.tensor(value)
        for g, group in enumerate(sd["param_groups"]):
            for key, value in group.items():
                if key == "params":
                    continue
                if isinstance(value, bool):
                    out[f"{_OPT_GROUP}{g}.{key}"] = torch.tensor(value)
                elif isinstance(value, (int, float)):
                    out[f"{_OPT_GROUP}{g}.{key}"] = torch.tensor(value, dtype=torch.float64)
                elif isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
                    out[f"{_OPT_GROUP}{g}.{key}"] = torch.tensor(value, dtype=torch.float64)
        return out

    def restore(self, param_dict: dict[str, Any], strict_load: bool = False) -> tuple[list, list]:
        """Load ``load_checkpoint``'s result into the model and the optimizer.

        Returns ``load_param_into_net``'s ``(param_not_load, ckpt_not_load)`` for the model part.
        """
        import torch

        from mindckpt._api import load_param_into_net

        model_keys = set(self.model.state_dict())
        model_part = {k: v for k, v in param_dict.items() if k in model_keys}
        result = load_param_into_net(self.model, model_part, strict_load=strict_load)
        if self.optimizer is None:
            return result
        sd = self.optimizer.state_dict()
        names = self._param_names()
        state: dict[int, dict[str, Any]] = {}
        for index, name in enumerate(names):
            prefix = f"{_OPT_STATE}{name}."
            entries = {k[len(prefix) :]: v for k, v in param_dict.items() if k.startswith(prefix)}
            if entries:
                state[index] = {
                    k: torch.from_numpy(_to_numpy(v).copy()) for k, v in entries.items()
                }
        groups = []
        for g, group in enumerate(sd["param_groups"]):
            new = dict(group)
            for key, old in group.items():
                name = f"{_OPT_GROUP}{g}.{key}"
                if key == "params" or name not in param_dict:
                    continue
                arr = _to_numpy(param_dict[name])
                if isinstance(old, bool):
                    new[key] = bool(arr)
                elif isinstance(old, int):
                    new[key] = int(arr)
                elif isinstance(old, float):
                    new[key] = float(arr)
                elif isinstance(old, tuple):
                    new[key] = tuple(float(x) for x in arr.reshape(-1))
            groups.append(new)
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        return result
