"""Everything mindckpt knows about torch, in one place.

Detection works on the type's module name, so nothing here imports torch until a torch object
is actually met: mindckpt runs without torch installed.

* :func:`is_torch_tensor`, :func:`is_torch_module`, :func:`is_device_tensor`: detection;
* :func:`torch_to_numpy`: a host tensor as a numpy *view* (bfloat16 through an int16 view,
  since numpy has no bfloat16 of its own; ``ml_dtypes.bfloat16`` is the numpy dtype);
* :func:`numpy_to_torch`: the reverse, a view again;
* :func:`copy_into`: put an array into an existing tensor's memory (one copy, any device);
* device staging for async snapshots: :func:`pin_host`, :func:`unpin_host` (page-lock a host
  buffer for CUDA), :func:`copy_device_to_host` (an asynchronous device -> host copy into a
  buffer slot) and :func:`synchronize` (wait for those copies).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

__all__ = [
    "is_torch_tensor",
    "is_torch_module",
    "is_device_tensor",
    "torch_to_numpy",
    "numpy_to_torch",
    "copy_into",
    "pin_host",
    "unpin_host",
    "copy_device_to_host",
    "synchronize",
]


def is_torch_tensor(x: Any) -> bool:
    t = type(x)
    return t.__module__.startswith("torch") and t.__name__ in ("Tensor", "Parameter")


def is_torch_module(obj: Any) -> bool:
    for klass in type(obj).__mro__:
        if klass.__module__ == "torch.nn.modules.module" and klass.__name__ == "Module":
            return True
    return False


def is_device_tensor(x: Any) -> bool:
    """A torch tensor that lives off the host (CUDA, ...)."""
    return is_torch_tensor(x) and x.device.type != "cpu"


def torch_to_numpy(x: Any) -> np.ndarray:
    """A numpy array for a torch tensor: a view for CPU tensors (bfloat16 via an int16 view)."""
    import torch

    x = x.detach()
    if x.device.type != "cpu":
        x = x.cpu()
    if x.dtype == torch.bfloat16:
        return x.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return x.numpy()


def numpy_to_torch(arr: np.ndarray) -> Any:
    """A CPU torch tensor viewing ``arr`` (copied only if not C-contiguous or not writable)."""
    import torch

    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    if arr.dtype == ml_dtypes.bfloat16:
        return torch.from_numpy(arr.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(arr)


def copy_into(target: Any, arr: np.ndarray) -> None:
    """Copy ``arr`` into torch tensor ``target`` in place (its device, shape and dtype kept)."""
    import torch

    if not arr.flags.writeable:
        # torch.from_numpy warns on read-only arrays (mapped files); it only reads from them
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            src = numpy_to_torch(arr)
    else:
        src = numpy_to_torch(arr)
    with torch.no_grad():
        target.copy_(src.reshape(target.shape))


def pin_host(addr: int, nbytes: int) -> bool:
    """Page-lock ``nbytes`` at ``addr`` for CUDA so device-to-host copies run at full bus speed;
    False (and nothing changed) where that is not possible."""
    try:
        import torch

        err = torch.cuda.cudart().cudaHostRegister(addr, nbytes, 0)
        return int(getattr(err, "value", err)) == 0
    except Exception:  # noqa: BLE001 - pinning is an optimisation only
        return False


def unpin_host(addr: int) -> None:
    try:
        import torch

        torch.cuda.cudart().cudaHostUnregister(addr)
    except Exception:  # noqa: BLE001 - as pin_host
        pass


def copy_device_to_host(value: Any, slot: np.ndarray) -> Any:
    """Start copying device tensor ``value`` into the host byte buffer ``slot`` (its exact
    size); return the device to :func:`synchronize` before ``slot`` is read."""
    import torch

    dst = torch.from_numpy(slot).view(value.dtype).view(value.shape)
    dst.copy_(value, non_blocking=True)
    return value.device


def synchronize(devices: Any) -> None:
    """Wait for the copies started on ``devices``."""
    import torch

    for device in devices:
        torch.cuda.synchronize(device)
