"""``open_checkpoint``: a checkpoint opened for scan-then-read, like safetensors' ``safe_open``.

::

    with mindckpt.open_checkpoint("net.ckpt") as f:        # or .safetensors, or an s3:// URL
        f.keys()                                            # names, in file order
        f.index["fc.weight"]                                # IndexEntry: dtype, shape, nbytes
        w = f.get_tensor("fc.weight")                       # reads only that tensor's bytes
        rows = f.get_slice("fc.weight")[10:20]              # reads only those rows
        f.metadata()                                        # safetensors __metadata__

Opening reads headers only (plain ``.ckpt``: the record tags; safetensors: the JSON header);
see :mod:`mindckpt.pipeline` for what a scan of an encrypted file costs.  ``framework="np"``
returns numpy arrays (bfloat16 as ``ml_dtypes.bfloat16``), ``"pt"`` torch tensors, ``"ms"``
:class:`mindckpt.Parameter` objects as ``load_checkpoint`` does.
"""

from __future__ import annotations

import os
from typing import Any, cast

import numpy as np

from . import tensor as T
from .formats.records import Index, IndexEntry
from .storage.urls import resolve
from .pipeline import CheckpointReader, open_file

__all__ = ["open_checkpoint", "CheckpointHandle", "TensorSlice"]

_FRAMEWORKS = ("np", "numpy", "pt", "torch", "ms", "mindspore")


class TensorSlice:
    """``handle.get_slice(name)``: index it (``[a:b]``, ``[:, 3:5]``, ``[2]``) to read a region."""

    def __init__(self, handle: CheckpointHandle, entry: IndexEntry):
        self._handle = handle
        self.entry = entry

    def get_shape(self) -> list[int]:
        return list(self.entry.shape)

    def get_dtype(self) -> str:
        return self.entry.type_name

    def __getitem__(self, item: Any) -> Any:
        shape = self.entry.shape
        items = item if isinstance(item, tuple) else (item,)
        if len(items) > len(shape):
            raise IndexError(f"too many indices for '{self.entry.name}' of shape {shape}")
        box: list[tuple[int, int]] = []
        squeeze: list[int] = []
        for axis, dim in enumerate(shape):
            it = items[axis] if axis < len(items) else slice(None)
            if isinstance(it, (int, np.integer)):
                i = int(it) + (dim if it < 0 else 0)
                if not 0 <= i < dim:
                    raise IndexError(f"index {it} is out of bounds for axis {axis} with size {dim}")
                box.append((i, i + 1))
                squeeze.append(axis)
            elif isinstance(it, slice):
                start, stop, step = it.indices(dim)
                if step != 1:
                    raise ValueError("get_slice supports steps of 1 only; slice the result")
                box.append((start, max(start, stop)))
            else:
                raise TypeError(f"get_slice takes ints and slices, got {type(it).__name__}")
        arr = self._handle._reader.read_region(self.entry.name, tuple(box))
        if squeeze:
            arr = arr.reshape(tuple(n for a, n in enumerate(arr.shape) if a not in squeeze))
        return self._handle._convert(arr, self.entry)


class CheckpointHandle:
    """An open checkpoint (see the module doc).  Close it, or use it as a context manager."""

    def __init__(self, reader: CheckpointReader, framework: str):
        self._reader = reader
        self.framework = framework
        self.path = reader.name
        self.format = reader.format
        self.cipher = reader.cipher
        self.index: Index = reader.index

    def keys(self) -> list[str]:
        return self.index.keys()

    def __iter__(self) -> Any:
        return iter(self.index.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.index

    def __len__(self) -> int:
        return len(self.index)

    def metadata(self) -> dict[str, str]:
        return dict(self.index.metadata)

    def get_tensor(self, name: str) -> Any:
        """The value of entry ``name``: a tensor in the chosen framework, a ``str``, or a list
        (map tensors)."""
        value = self._reader.read_entry(name)
        if isinstance(value, np.ndarray):
            return self._convert(value, self.index[name])
        return value

    def get_slice(self, name: str) -> TensorSlice:
        entry = self._reader._entry(name)
        if entry.kind != "tensor":
            raise TypeError(f"{self.path}: entry '{name}' is a {entry.kind}, not a tensor")
        return TensorSlice(self, entry)

    def _convert(self, arr: np.ndarray, entry: IndexEntry) -> Any:
        if self.framework in ("pt", "torch"):
            from .adapters.torch import numpy_to_torch

            return numpy_to_torch(arr)
        if self.framework in ("ms", "mindspore"):
            return T.Parameter(T.Tensor(arr, dtype=cast(T.Type, entry.dtype)), name=entry.name)
        return arr

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> CheckpointHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"CheckpointHandle({self.path!r}, format={self.format!r}, "
                f"entries={len(self.index)})")


def open_checkpoint(
    path: Any,
    framework: str = "np",
    *,
    format: str | None = None,  # noqa: A002 - MindSpore's keyword
    dec_key: bytes | None = None,
    dec_mode: str | None = None,
    crc_check: bool = False,
    strict_integrity: bool = False,
    unknown_fields: str = "error",
    storage_options: dict[str, Any] | None = None,
) -> CheckpointHandle:
    """Open a ``.ckpt`` or safetensors file (path or URL) for reading entries on demand.

    Args:
        path: a local path or an fsspec URL.
        framework: ``"np"`` (numpy arrays), ``"pt"`` (torch tensors) or ``"ms"`` (Parameters).
        format: ``"ckpt"`` or ``"safetensors"``; by default from the suffix, else the content.
        dec_key, dec_mode: for encrypted ``.ckpt`` files; ``dec_mode=None`` takes the mode the
            file names (AES-GCM, AES-CBC or SM4-CBC).
        crc_check: verify the stored CRC while opening (reads every byte once).
        strict_integrity: refuse encrypted files whose blocks are not bound to their file and
            position (MindSpore-written AES-GCM files, every CBC file).
        unknown_fields: ``"skip"`` skips protobuf fields MindSpore never writes (default
            ``"error"``).
        storage_options: passed to fsspec for URLs.

    Raises:
        CheckpointNotFoundError: no such file.
        FormatError: the file is damaged or not a checkpoint.
        ChecksumError: with ``crc_check``, the stored CRC does not match.
        DecryptionError: the file cannot be decrypted with the key, or was tampered with.
    """
    if framework not in _FRAMEWORKS:
        raise ValueError(f"open_checkpoint: framework must be one of {_FRAMEWORKS}, got "
                         f"{framework!r}")
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError(f"open_checkpoint: path must be a str or os.PathLike, got {type(path)}")
    if format is not None and format not in ("ckpt", "safetensors"):
        raise ValueError(f"open_checkpoint: format must be 'ckpt' or 'safetensors', got {format!r}")
    store, key = resolve(path, storage_options)
    reader = open_file(store, key, format=format, dec_key=dec_key, dec_mode=dec_mode,
                       crc_check=crc_check, strict_integrity=strict_integrity,
                       unknown_fields=unknown_fields)
    try:
        return CheckpointHandle(reader, framework)
    except BaseException:
        reader.close()
        raise
