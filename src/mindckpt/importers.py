"""Reading checkpoints written by other tools: ``torch.save`` files and Hugging Face shards.

* :func:`read_torch_file`: a ``torch.save`` file (``.pt``, ``.pth``, ``.bin``), loaded with
  ``torch.load(weights_only=True)`` only: tensors, containers and plain scalars come back,
  anything else (arbitrary pickled objects) is refused by torch's restricted unpickler, so
  nothing in the file can run code.  Nested containers are flattened to dotted names
  (``{"model": {"fc.weight": t}, "epoch": 3}`` -> ``model.fc.weight``, ``epoch``).
* :func:`read_hf_index` / :func:`iter_hf_checkpoint`: a Hugging Face sharded checkpoint,
  ``model.safetensors.index.json`` (or ``pytorch_model.bin.index.json``) and its shards: every
  name of the ``weight_map`` is read from its shard, and the index must agree with the shards.

Both give :class:`ImportedEntry` objects (name, value, note), which
:func:`mindckpt.tools.convert_checkpoint` writes as ``.ckpt`` or safetensors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .collect import scalar_array
from .errors import CheckpointNotFoundError, FormatError
from .pipeline import format_from_name

__all__ = [
    "ImportedEntry",
    "HFIndex",
    "HF_INDEX_NAMES",
    "is_torch_file",
    "find_hf_index",
    "read_torch_file",
    "read_hf_index",
    "iter_hf_checkpoint",
]

HF_INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".tar")
_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTO = b"\x80"


@dataclass
class ImportedEntry:
    """One value read from a foreign checkpoint.

    ``value`` is a numpy array or a ``str``; ``None`` when the entry cannot be kept, with
    ``note`` saying why (the converter reports it).
    """

    name: str
    value: np.ndarray | str | None
    note: str = ""


def is_torch_file(path: str) -> bool:
    """Whether ``path`` looks like a ``torch.save`` file (zip archive or legacy pickle)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    if head == _ZIP_MAGIC:
        return path.endswith(TORCH_SUFFIXES) or _zip_has_data_pkl(path)
    return head[:1] == _PICKLE_PROTO and path.endswith(TORCH_SUFFIXES)


def _zip_has_data_pkl(path: str) -> bool:
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("/data.pkl") or n == "data.pkl" for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def _flatten(prefix: str, obj: Any, out: list[ImportedEntry]) -> None:
    from .adapters.torch import is_torch_tensor, torch_to_numpy

    if is_torch_tensor(obj):
        if obj.is_sparse or str(getattr(obj, "layout", "torch.strided")) != "torch.strided":
            out.append(ImportedEntry(prefix, None, f"sparse tensor ({obj.layout}) skipped"))
            return
        if obj.is_quantized:
            out.append(ImportedEntry(prefix, None, "quantized tensor skipped"))
            return
        try:
            arr = torch_to_numpy(obj)
        except (TypeError, RuntimeError) as e:  # dtypes numpy cannot hold (complex32 ...)
            out.append(ImportedEntry(prefix, None, f"dtype {obj.dtype} skipped ({e})"))
            return
        out.append(ImportedEntry(prefix, np.ascontiguousarray(arr)))
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _flatten(f"{prefix}.{i}" if prefix else str(i), v, out)
        return
    if isinstance(obj, str):
        out.append(ImportedEntry(prefix, obj))
        return
    if isinstance(obj, (bool, int, float, np.bool_)):
        try:
            out.append(ImportedEntry(prefix, scalar_array(obj, prefix)))
        except (ValueError, TypeError, OverflowError) as e:
            out.append(ImportedEntry(prefix, None, f"scalar {obj!r} skipped ({e})"))
        return
    if obj is None:
        out.append(ImportedEntry(prefix, None, "None skipped"))
        return
    out.append(ImportedEntry(prefix, None, f"{type(obj).__name__} skipped"))


def read_torch_file(path: str) -> list[ImportedEntry]:
    """The entries of a ``torch.save`` file, loaded with ``weights_only=True`` (see the module
    doc); tensors of zip-format files are memory-mapped, not read into memory twice.

    Raises:
        CheckpointNotFoundError: no such file.
        ImportError: torch is not installed (``pip install 'mindckpt[torch]'``).
        FormatError: the file is not a ``torch.save`` file, or holds objects that
            ``weights_only=True`` refuses (the message names them).
    """
    if not os.path.isfile(path):
        raise CheckpointNotFoundError(f"The torch.save file {path} does not exist.")
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            f"Reading the torch.save file {path} needs torch: pip install 'mindckpt[torch]'."
        ) from e
    kwargs: dict[str, Any] = {"map_location": "cpu", "weights_only": True}
    with open(path, "rb") as f:
        if f.read(4) == _ZIP_MAGIC:
            kwargs["mmap"] = True
    try:
        obj = torch.load(path, **kwargs)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError, EOFError ...
        raise FormatError(
            f"Cannot read {path} as a torch.save file with weights_only=True: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}. mindckpt never "
            "unpickles arbitrary objects; save the state_dict (tensors only) instead."
        ) from e
    out: list[ImportedEntry] = []
    try:
        _flatten("", obj, out)
    except RecursionError:
        raise FormatError(f"{path}: containers nested too deeply to flatten into names.") from None
    if not out:
        raise FormatError(f"{path} holds no tensors (torch.load gave {type(obj).__name__}).")
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise FormatError(f"{path}: the name '{dup}' occurs twice once nested containers are "
                          "flattened to dotted names; rename one of them before converting.")
    return out


@dataclass
class HFIndex:
    """A Hugging Face shard index: ``weight_map`` (name -> shard file name), the shards in
    first-use order, the index ``metadata`` and the directory that holds the shards."""

    path: str
    directory: str
    weight_map: dict[str, str]
    shards: list[str]
    metadata: dict[str, Any]


def find_hf_index(path: str) -> str | None:
    """The index file of a sharded checkpoint: ``path`` itself when it is one, or the index
    inside directory ``path``; ``None`` otherwise."""
    if os.path.isdir(path):
        for name in HF_INDEX_NAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return candidate
        return None
    if path.endswith(".index.json") and os.path.isfile(path):
        return path
    return None


def read_hf_index(path: str) -> HFIndex:
    """Parse and check a shard index (``model.safetensors.index.json``).

    Raises:
        CheckpointNotFoundError: the index or a shard it names does not exist.
        FormatError: the index is not JSON of the form ``{"weight_map": {name: file}}``, or a
            shard name leaves the index's directory.
    """
    index_path = find_hf_index(path) or path
    if not os.path.isfile(index_path):
        raise CheckpointNotFoundError(
            f"{path} is not a sharded checkpoint: no {' or '.join(HF_INDEX_NAMES)} found.")
    try:
        with open(index_path, encoding="utf-8") as f:
            raw = json.load(f)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"{index_path} is not valid JSON ({e}).") from None
    wm = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(wm, dict) or not wm or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in wm.items()):
        raise FormatError(f"{index_path}: expected {{\"weight_map\": {{name: shard file}}}} with "
                          "at least one entry.")
    directory = os.path.dirname(os.path.abspath(index_path))
    shards: list[str] = []
    for shard in wm.values():
        if os.path.isabs(shard) or os.path.normpath(shard).startswith(".."):
            raise FormatError(f"{index_path}: shard '{shard}' is outside the index's directory.")
        if shard not in shards:
            shards.append(shard)
    for shard in shards:
        if not os.path.isfile(os.path.join(directory, shard)):
            raise CheckpointNotFoundError(f"{index_path} names the shard {shard}, which does "
                                          f"not exist in {directory}.")
    meta = raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    return HFIndex(index_path, directory, dict(wm), shards, meta)


def iter_hf_checkpoint(index: HFIndex) -> Iterator[ImportedEntry]:
    """Every entry of a sharded checkpoint, shard by shard (one shard open at a time), in the
    order the shards store them.

    Raises:
        FormatError: a name of the index is missing from its shard, or a shard holds a name
            the index maps to another shard.
    """
    from .handle import open_checkpoint

    for shard in index.shards:
        path = os.path.join(index.directory, shard)
        wanted = {n for n, s in index.weight_map.items() if s == shard}
        if format_from_name(shard) == "safetensors":
            with open_checkpoint(path, format="safetensors") as f:
                have = set(f.keys())
                missing = sorted(wanted - have)
                if missing:
                    raise FormatError(f"{index.path} maps '{missing[0]}' to {shard}, but that "
                                      f"shard has no such tensor ({len(missing)} missing).")
                for name in f.keys():
                    if name not in wanted:
                        raise FormatError(
                            f"{shard} holds '{name}', which {index.path} maps to "
                            f"{index.weight_map.get(name, 'no shard')}; the index and the "
                            "shards disagree.")
                    yield ImportedEntry(name, f.get_tensor(name))
        else:
            entries = read_torch_file(path)
            have = {e.name for e in entries}
            missing = sorted(wanted - have)
            if missing:
                raise FormatError(f"{index.path} maps '{missing[0]}' to {shard}, but that shard "
                                  f"has no such tensor ({len(missing)} missing).")
            for e in entries:
                if e.name in wanted:
                    yield e
