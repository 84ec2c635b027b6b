"""PyTorch Lightning ``CheckpointIO`` plugin: Lightning checkpoints as MindSpore ``.ckpt`` files.

::

    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import ModelCheckpoint
    from mindckpt.integrations.lightning import MindCheckpointIO

    trainer = Trainer(plugins=[MindCheckpointIO(crc_check=True, async_save="thread")],
                      callbacks=[ModelCheckpoint(dirpath="ckpt", save_top_k=2, monitor="loss",
                                                 save_last=True)])
    trainer.fit(model)                                   # saves ckpt/epoch=...ckpt, last.ckpt
    trainer.fit(model, ckpt_path="ckpt/last.ckpt")       # resumes

Layout of a file: the LightningModule's ``state_dict`` entries under their own names (so
``mindckpt.load_checkpoint`` + ``load_param_into_net``, or MindSpore itself, read the weights
directly), then everything else of Lightning's checkpoint dict (``epoch``, ``global_step``,
``loops``, ``callbacks``, ``optimizer_states``, ``lr_schedulers``, ``hyper_parameters``, ...)
flattened under ``lightning.`` by :func:`mindckpt.state.flatten_state`: typed entries and a
schema string, never pickle.  Loading returns the same dict, types included (mappings come back
as plain ``dict``; tensors on the CPU unless ``map_location`` names a device).

``async_save`` snapshots the tensors into the plugin's reused host buffer and writes in the
background (:class:`mindckpt.async_writer.AsyncWriter`, one per plugin); ``load_checkpoint``,
``remove_checkpoint`` and ``teardown`` finish the save in flight first and raise its error.
``hyper_parameters`` must hold only dicts, lists, tuples, tensors, arrays, numbers, strings
and None (``save_hyperparameters`` of other objects is refused with a ``TypeError`` naming the
entry: nothing is pickled).

``lightning`` is an optional extra: ``pip install "mindckpt[lightning]"``.
"""

from __future__ import annotations

import os
from typing import Any

try:
    from lightning.fabric.plugins import CheckpointIO
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "mindckpt.integrations.lightning needs PyTorch Lightning: pip install "
        "'mindckpt[lightning]' (or pip install lightning)."
    ) from exc

from mindckpt import _api
from mindckpt.adapters.torch import is_torch_tensor, numpy_to_torch
from mindckpt.async_writer import AsyncWriter
from mindckpt.errors import FormatError
from mindckpt.manager import resolve_directory
from mindckpt.state import flatten_state, unflatten_state

__all__ = ["MindCheckpointIO", "PREFIX"]

#: Name prefix of the non-weight part of Lightning's checkpoint dict.
PREFIX = "lightning"


def _to_torch(value: Any) -> Any:
    if is_torch_tensor(value):
        return value
    import numpy as np

    arr = value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)
    return numpy_to_torch(np.array(arr, copy=True))


def _mapper(map_location: Any) -> Any:
    """A function tensor -> tensor for ``map_location`` (None: keep on the CPU)."""
    if map_location is None:
        return None
    import torch

    if isinstance(map_location, (str, torch.device)):
        device = torch.device(map_location)
        return lambda t: t.to(device)
    if isinstance(map_location, dict):
        table = {str(k): v for k, v in map_location.items()}
        if "cpu" not in table:
            return None
        return lambda t: t.to(torch.device(table["cpu"]))
    if callable(map_location):  # torch.load's (storage, location) convention
        def call(t: Any) -> Any:
            out = map_location(t, "cpu")
            return out if is_torch_tensor(out) else t

        return call
    raise TypeError(
        f"MindCheckpointIO.load_checkpoint: map_location must be None, a device, a str, a dict "
        f"or a callable, not {type(map_location).__name__}."
    )


def _map_tensors(obj: Any, fn: Any) -> Any:
    if is_torch_tensor(obj):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_tensors(v, fn) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_map_tensors(v, fn) for v in obj)
    return obj


class MindCheckpointIO(CheckpointIO):
    """Save and load Lightning checkpoints as MindSpore ``.ckpt`` files (see the module doc).

    Args:
        crc_check: append MindSpore's CRC trailer, and check it on load.
        enc_key: encrypt with this key (``bytes``; AES-GCM/AES-CBC: 16/24/32 bytes, SM4-CBC: 16).
        enc_mode: ``"AES-GCM"`` (default), ``"AES-CBC"`` or ``"SM4-CBC"``.
        async_save: ``False``, ``True``/``"thread"`` or ``"process"``.
        format: ``"ckpt"`` (Lightning names its files ``*.ckpt``); other formats are refused.
    """

    def __init__(
        self,
        *,
        crc_check: bool = False,
        enc_key: bytes | None = None,
        enc_mode: str = "AES-GCM",
        async_save: bool | str = False,
        format: str = "ckpt",  # noqa: A002 - MindSpore's keyword
    ) -> None:
        if format != "ckpt":
            raise NotImplementedError(
                f"MindCheckpointIO(format={format!r}): Lightning names checkpoint files *.ckpt; "
                "only format='ckpt' is supported (convert afterwards with "
                "mindckpt.ckpt_to_safetensors)."
            )
        _api.check_cipher(enc_key, enc_mode, crc_check)  # refuse bad combinations up front
        self.crc_check = crc_check
        self.enc_key = enc_key
        self.enc_mode = enc_mode
        self.async_save = async_save
        self.writer = AsyncWriter()

    # ------------------------------------------------------------------ CheckpointIO
    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` (atomically; async with ``async_save``)."""
        if storage_options is not None and not isinstance(storage_options, dict):
            raise TypeError(
                "MindCheckpointIO.save_checkpoint: storage_options must be a dict of fsspec "
                f"options for a URL path, not {type(storage_options).__name__}."
            )
        path = os.fspath(path)
        if not str(path).endswith(".ckpt"):
            raise ValueError(
                f"MindCheckpointIO.save_checkpoint: {path} must end with '.ckpt' (MindSpore's "
                "format); name the file *.ckpt."
            )
        store, key = resolve_directory(os.path.dirname(str(path)) or ".", storage_options)
        store.makedirs(key)
        flat = self._flatten(checkpoint)
        kwargs: dict[str, Any] = {"crc_check": self.crc_check, "format": "ckpt"}
        if storage_options:
            kwargs["storage_options"] = storage_options
        job = _api.plan_save(flat, path, True, self.async_save, None, self.enc_key,
                             self.enc_mode, None, **kwargs)
        _api.run_save(job, self.writer)

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        """Read a file written by :meth:`save_checkpoint` back into Lightning's dict.

        ``weights_only`` is accepted for Lightning's signature: nothing is ever unpickled, so
        every load is as safe as ``weights_only=True``.
        """
        self.writer.wait()
        path = os.fspath(path)
        kwargs: dict[str, Any] = {"crc_check": self.crc_check}
        if self.enc_key is not None:
            kwargs.update(dec_key=self.enc_key, dec_mode=self.enc_mode)
        params = _api.load_checkpoint(path, **kwargs)
        nested = unflatten_state(params)
        rest = nested.pop(PREFIX, None)
        if not isinstance(rest, dict):
            raise FormatError(
                f"{path} is a MindSpore checkpoint but not one MindCheckpointIO wrote (no "
                f"'{PREFIX}.__schema__' entry describing a dict); load it with "
                "mindckpt.load_checkpoint."
            )
        out = dict(rest)
        out["state_dict"] = {k: _to_torch(v) for k, v in nested.items() if not isinstance(v, str)}
        fn = _mapper(map_location)
        return _map_tensors(out, fn) if fn is not None else out

    def remove_checkpoint(self, path: Any) -> None:
        """Delete ``path`` (after the save in flight, which may be writing it, has finished)."""
        self.writer.wait()
        path = os.fspath(path)
        store, key = _api.resolve(path)
        if store.exists(key):
            store.remove(key)

    def teardown(self) -> None:
        """Finish the save in flight (raising its error) and free the buffer."""
        try:
            self.writer.wait()
        finally:
            self.writer.close()
            self.writer = AsyncWriter()  # the Trainer may save again after a teardown

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _flatten(checkpoint: dict[str, Any]) -> dict[str, Any]:
        weights = dict(checkpoint.get("state_dict") or {})
        clash = next((k for k in weights if k == PREFIX or k.startswith(PREFIX + ".")), None)
        if clash is not None:
            raise ValueError(
                f"MindCheckpointIO: the model's state_dict has an entry {clash!r}, which collides "
                f"with the '{PREFIX}.' entries of the trainer state; rename that module."
            )
        rest = {k: v for k, v in checkpoint.items() if k != "state_dict"}
        flat: dict[str, Any] = {k: v.detach() if is_torch_tensor(v) else v
                                for k, v in weights.items()}
        flat.update(flatten_state(rest, PREFIX))
        return flat
