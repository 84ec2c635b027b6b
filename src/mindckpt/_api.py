"""save_checkpoint, load_checkpoint, load_param_into_net: validation and orchestration only.

Arguments are checked in MindSpore 2.10's order with its exception types and messages; the
work is done by ``collect`` (what to save), ``formats`` (bytes), ``codecs`` (encryption) and
``storage`` (where bytes land).
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import tensor as T
from ._validators import check_async_save, check_bool, check_crc_enc, check_isinstance
from .adapters.torch import copy_into, is_torch_module, is_torch_tensor, torch_to_numpy
from .async_writer import AsyncWriter, default_writer
from .collect import collect, validate_append_dict
from .errors import CheckpointNotFoundError
from .formats.ckpt import Entry
from .formats.records import Record
from .formats.safetensors import read_safetensors
from .nn import Cell
from .parallel import _dist as pdist
from .parallel import load as pload
from .parallel import save as psave
from .pipeline import (
    FORMATS,
    Wrap,
    WriteResult,
    check_records,
    format_from_name,
    open_file,
    write_file,
)
from .storage.urls import resolve
from .storage.base import Store
from .storage.local import LOCAL
from .storage.memory import BytesSource
from .tensor import Parameter, Tensor, to_numpy

__all__ = [
    "plan_save",
    "run_save",
    "SaveJob",
    "resolve",
    "save_checkpoint",
    "load_checkpoint",
    "load_checkpoint_async",
    "load_param_into_net",
    "CheckpointNotFoundError",
]

logger = logging.getLogger("mindckpt")

_FLOAT_FAMILY = {"Float16", "Float32", "Float64", "BFloat16"}
_INT_FAMILY = {"Int8", "Int16", "Int32", "Int64", "Int4"}


def _async_mode(async_save: Any) -> str | None:
    """``False`` -> None; ``True``/"thread" -> "thread"; "process" -> "process"."""
    checked = check_async_save(async_save)
    if isinstance(checked, str):
        return checked
    return "thread" if checked else None


def check_cipher(enc_key: bytes | None, enc_mode: str, crc_check: bool) -> None:
    """mindckpt's own checks, before anything is written (MindSpore checks none of these)."""
    if enc_key is None:
        return
    check_crc_enc(crc_check, enc_key, "save_checkpoint")
    from .codecs import crypto

    crypto.check_cipher_args(enc_key, enc_mode)


def _resolve_save_path(ckpt_file_name: Any, fmt: str,
                       storage_options: dict[str, Any] | None = None) -> tuple[Store, str]:
    if isinstance(ckpt_file_name, os.PathLike):
        ckpt_file_name = os.fspath(ckpt_file_name)
    if not isinstance(ckpt_file_name, str):
        raise TypeError(
            f"For 'save_checkpoint', the parameter {ckpt_file_name} for checkpoint file name is "
            f"invalid,'ckpt_file_name' must be string, but got {type(ckpt_file_name)}."
        )
    store, key = resolve(ckpt_file_name, storage_options)
    if store.isdir(key):
        raise IsADirectoryError(
            f"For 'save_checkpoint', the parameter `ckpt_file_name`: {store.describe(key)} is a "
            "directory, it must be a file name."
        )
    if not key.endswith(fmt):
        key = f"{key}.{fmt}"
    return store, key


# --------------------------------------------------------------------------- save


@dataclass
class SaveJob:
    """A validated save: where (``store``, ``key``), what (``records``), how (``write``).

    ``write(records)`` performs the whole synchronous save and returns a
    :class:`~mindckpt.pipeline.WriteResult`; ``mode`` is ``None`` (synchronous), ``"thread"``
    or ``"process"``.
    """

    store: Store
    key: str
    records: list[Record]
    mode: str | None
    write: Callable[[list[Record]], WriteResult]

    @property
    def target(self) -> str:
        return self.store.describe(self.key)


def _write_logged(store: Store, key: str, records: list[Record], **options: Any) -> WriteResult:
    try:
        return write_file(store, key, records, **options)
    except OSError:
        logger.critical(
            "Failed to save the checkpoint file %s. Maybe don't have the permission to write "
            "files, or the disk space is insufficient and so on. The previous file, if any, is "
            "unchanged.", store.describe(key),
        )
        raise
    except BaseException as exc:
        logger.error("Failed to save the checkpoint file %s: %s: %s. The previous file, if any, "
                     "is unchanged.", store.describe(key), type(exc).__name__, exc)
        raise


def plan_save(
    save_obj: Any,
    ckpt_file_name: Any,
    integrated_save: bool = True,
    async_save: bool | str = False,
    append_dict: dict[str, Any] | None = None,
    enc_key: bytes | None = None,
    enc_mode: str = "AES-GCM",
    choice_func: Callable[[str], Any] | None = None,
    crc_check: bool = False,
    format: str = "ckpt",  # noqa: A002 - MindSpore's keyword
    **kwargs: Any,
) -> SaveJob:
    """``save_checkpoint``'s checks (MindSpore's order, types, messages) and collect step."""
    if format not in FORMATS:
        raise ValueError(
            "For 'save_checkpoint', the format must be 'safetensors' or 'ckpt', but got "
            f"{format}."
        )
    if not isinstance(save_obj, (Cell, list, dict)) and not is_torch_module(save_obj):
        raise TypeError(
            "For 'save_checkpoint', the parameter 'save_obj' must be nn.Cell, list or dict, but "
            f"got {type(save_obj)}."
        )
    store, key = _resolve_save_path(ckpt_file_name, format, kwargs.get("storage_options"))
    check_bool(integrated_save)
    mode = _async_mode(async_save)
    validate_append_dict(append_dict)
    check_isinstance("enc_key", enc_key, (type(None), bytes))
    check_isinstance("enc_mode", enc_mode, str)
    check_isinstance("crc_check", crc_check, bool)
    remove_redundancy = kwargs.get("remove_redundancy")
    check_isinstance("remove_redundancy", remove_redundancy, (type(None), bool))
    if format == "safetensors":
        for name, value, default in (
            ("enc_key", enc_key, None),
            ("enc_mode", enc_mode, "AES-GCM"),
            ("map_param_inc", kwargs.get("incremental", False), False),
            ("global_step_num", kwargs.get("global_step_num"), None),
        ):
            if value != default:
                raise ValueError(
                    "For 'save_checkpoint', when format is 'safetensors', the parameter "
                    f"'{name}' must be set to default value '{default}', but got '{value!s}'."
                )
    check_cipher(enc_key, enc_mode, crc_check)
    records = collect(save_obj, choice_func, append_dict, format)
    check_records(records, format, store.describe(key))
    write = functools.partial(
        _write_logged, store, key, fmt=format, crc_check=crc_check, enc_key=enc_key,
        enc_mode=enc_mode, remove_redundancy=remove_redundancy,
        split="rows" if mode else "bytes",
    )
    return SaveJob(store, key, records, mode, write)


def run_save(job: SaveJob, writer: AsyncWriter | None = None) -> WriteResult | None:
    """Run a planned save: synchronously, or on ``writer`` (the default one) when async.

    A synchronous save first waits for the writer's pending save (and raises its error).
    Returns the :class:`~mindckpt.pipeline.WriteResult` of a synchronous save, else None.
    """
    writer = writer or default_writer()
    if job.mode is not None:
        writer.submit(job.records, job.write, target=job.target, mode=job.mode)
        return None
    writer.wait()
    return job.write(job.records)


def save_checkpoint(
    save_obj: Any,
    ckpt_file_name: Any,
    integrated_save: bool = True,
    async_save: bool | str = False,
    append_dict: dict[str, Any] | None = None,
    enc_key: bytes | None = None,
    enc_mode: str = "AES-GCM",
    choice_func: Callable[[str], Any] | None = None,
    crc_check: bool = False,
    format: str = "ckpt",  # noqa: A002 - MindSpore's keyword
    **kwargs: Any,
) -> None:
    """Save ``save_obj`` (Cell, list, dict, torch module or state_dict) to a checkpoint file.

    MindSpore 2.10's signature and checks.  Differences: the old file is replaced only once the
    new one is complete and on disk; zero-size tensors are kept; ``crc_check`` with ``enc_key``
    and bad keys or modes are refused before anything is written; async errors are raised.
    ``ckpt_file_name`` may be an fsspec URL (``storage_options=`` as a keyword).

    Sliced parameters (torch DTensors, or local tensors with ``layouts={name: layout}``) are
    saved over the process group (:func:`mindckpt.parallel.save.save_distributed`):
    ``integrated_save=True`` gathers them into one ordinary checkpoint per writer (every rank,
    or only ``writer_rank=k``); ``integrated_save=False`` writes each rank's slices under
    ``rank_<r>/`` with a strategy file, an index and a commit marker; ``remove_redundancy=True``
    writes replicated data once.

    Args:
        save_obj: an ``nn.Cell``, a list of Parameters or of ``{"name", "data"}`` dicts, a dict
            of name to value (Parameter, Tensor, numpy array, torch tensor, str, int, float,
            bool, or nested training state: dicts/lists of those, flattened by
            :mod:`mindckpt.state`), or a ``torch.nn.Module`` / state_dict.
        ckpt_file_name: the path or URL; ``.ckpt`` / ``.safetensors`` is appended if missing.
        integrated_save: with sliced parameters, gather them into full tensors (default).
        async_save: ``False``, ``True``/``"thread"`` (snapshot into a reused buffer, write in a
            thread) or ``"process"`` (fork); errors are raised at the next save, at
            ``mindckpt.async_writer.wait()`` or at exit.
        append_dict: extra scalar or str entries (``{"epoch_num": 3}``).
        enc_key: a 16/24/32-byte key (16 for SM4-CBC) to encrypt the ``.ckpt``.
        enc_mode: ``"AES-GCM"`` (authenticated; default), ``"AES-CBC"`` or ``"SM4-CBC"``.
        choice_func: ``choice_func(name) -> bool`` keeps the names it accepts.
        crc_check: append MindSpore's CRC trailer (``.ckpt``) or ``crc_num`` (safetensors).
        format: ``"ckpt"`` or ``"safetensors"``.
        **kwargs: MindSpore's ``incremental``, ``remove_redundancy``, ``global_step_num``; and
            mindckpt's ``storage_options`` (fsspec), and for sliced parameters ``layouts``,
            ``writer_rank``, ``group`` (a torch.distributed process group; default: the
            world) and ``durable``.

    Raises:
        TypeError: a ``save_obj``, value or argument of the wrong type (MindSpore's messages);
            a value the format cannot hold (named, before anything is written).
        ValueError: a bad ``format``, key length or mode, or ``crc_check`` with ``enc_key``.
        IsADirectoryError: ``ckpt_file_name`` is a directory.
        StorageError: writing failed (``MissingDirectoryError``, a ``FileNotFoundError``, for a
            missing directory); the previous file is unchanged.
        DurabilityError: the new file is in place but could not be made durable.
        AsyncSaveError: a previous async save failed (raised here, before this save starts).
    """
    if kwargs.get("layouts") is not None or psave.has_dtensors(save_obj):
        # sliced parameters (DTensors, or local tensors with layouts): over the process group
        if kwargs.get("incremental"):
            raise NotImplementedError(
                "For 'save_checkpoint', incremental=True (map_param_inc) is not available for "
                "sliced parameters (DTensors or layouts=); save without it.")
        psave.save_distributed(
            save_obj, ckpt_file_name, integrated_save=integrated_save,
            remove_redundancy=bool(kwargs.get("remove_redundancy")),
            writer_rank=kwargs.get("writer_rank"), async_save=async_save, format=format,
            layouts=kwargs.get("layouts"), append_dict=append_dict, choice_func=choice_func,
            crc_check=crc_check, enc_key=enc_key, enc_mode=enc_mode,
            group=kwargs.get("group"), storage_options=kwargs.get("storage_options"),
            durable=kwargs.get("durable"))
        return
    run_save(plan_save(save_obj, ckpt_file_name, integrated_save, async_save, append_dict,
                       enc_key, enc_mode, choice_func, crc_check, format, **kwargs))


# --------------------------------------------------------------------------- load


def _check_prefix(prefix: Any) -> tuple[str, ...] | None:
    if prefix is None:
        return None
    if isinstance(prefix, str):
        prefix = (prefix,)
    if not isinstance(prefix, (list, tuple)):
        raise TypeError(
            "For 'load_checkpoint', the type of 'specify_prefix' or 'filter_prefix' must be "
            f"string, list[string] or tuple[string], but got {type(prefix)}."
        )
    if not prefix:
        raise ValueError(
            "For 'load_checkpoint', the argument 'specify_prefix' or 'filter_prefix' can't be "
            "empty when 'specify_prefix' or 'filter_prefix' is list or tuple."
        )
    for i, p in enumerate(prefix):
        if not isinstance(p, str):
            raise TypeError(
                "For 'load_checkpoint', when 'specify_prefix' or 'filter_prefix' is list or "
                f"tuple, the element in it must be string, but got {type(p)} at index {i}."
            )
        if p == "":
            raise ValueError(
                "For 'load_checkpoint', the value of 'specify_prefix' or 'filter_prefix' can't "
                "include ''."
            )
    return tuple(prefix)


def _selector(
    path: str,
    specify: tuple[str, ...] | None,
    filt: tuple[str, ...] | None,
    choice_func: Callable[[str], Any] | None,
) -> Callable[[str], bool]:
    if specify is not None or filt is not None:
        def by_prefix(name: str) -> bool:
            if specify is not None and not name.startswith(specify):
                return False
            return not (filt is not None and name.startswith(filt))
        return by_prefix
    if choice_func is None:
        return lambda _name: True

    def by_func(name: str) -> bool:
        try:
            return bool(choice_func(name))
        except Exception as e:
            raise ValueError(
                f"{e}\nFor 'load_checkpoint', failed to load the checkpoint file {path}."
            ) from e
    return by_func


def _check_load_file(
    ckpt_file_name: Any, fmt: str, storage_options: dict[str, Any] | None = None
) -> tuple[Store, str] | io.BytesIO:
    if fmt not in FORMATS:
        raise ValueError(
            "For 'load_checkpoint', the checkpoint file should end with '.ckpt' or "
            "'.safetensors', please input the correct 'format'."
        )
    if isinstance(ckpt_file_name, io.BytesIO):
        if fmt == "ckpt":
            raise TypeError("ckpt don't support BytesIO as input type, please change to safetensors.")
        return ckpt_file_name
    if isinstance(ckpt_file_name, os.PathLike):
        ckpt_file_name = os.fspath(ckpt_file_name)
    if not isinstance(ckpt_file_name, str):
        raise TypeError(
            "For 'load_checkpoint', the argument 'ckpt_file_name' must be string, but got "
            f"{type(ckpt_file_name)}."
        )
    if not ckpt_file_name.endswith(fmt):
        raise ValueError(
            "For 'load_checkpoint', the checkpoint file format must same with 'format', but got "
            f"file_name:'{ckpt_file_name}', format:'{fmt}'"
        )
    store, key = resolve(ckpt_file_name, storage_options)
    if store.isdir(key):
        raise CheckpointNotFoundError(
            f"For 'load_checkpoint', the checkpoint file: {store.describe(key)} is a directory, "
            "not a checkpoint file; pass the path of a file inside it."
        )
    if not store.exists(key):
        raise CheckpointNotFoundError(
            f"For 'load_checkpoint', the checkpoint file: {store.describe(key)} does not exist, "
            "please check whether the 'ckpt_file_name' is correct."
        )
    return store, key


def read_file(
    path: str,
    fmt: str = "ckpt",
    select: Callable[[str], bool] = lambda _n: True,
    *,
    dec_key: bytes | None = None,
    dec_mode: str = "AES-GCM",
    crc_check: bool = False,
    store: Store = LOCAL,
    mmap: bool | None = None,
    strict_integrity: bool = False,
    unknown_fields: str = "error",
    wrap: Wrap | None = None,
) -> dict[str, Any]:
    """Read the selected entries of a checkpoint file (no argument checks); ``wrap`` as in
    :meth:`~mindckpt.pipeline.CheckpointReader.read`."""
    with open_file(store, path, format=fmt, dec_key=dec_key, dec_mode=dec_mode,
                   crc_check=crc_check, strict_integrity=strict_integrity,
                   unknown_fields=unknown_fields) as reader:
        return reader.read(select, mmap=mmap, wrap=wrap, release=True)


def _as_parameters(entries: dict[str, Any]) -> dict[str, Any]:
    make = T.loaded_parameter
    return {name: make(e.array, e.dtype, name) if type(e) is Entry else e
            for name, e in entries.items()}


def load_checkpoint(
    ckpt_file_name: Any,
    net: Any = None,
    strict_load: bool = False,
    filter_prefix: Any = None,
    dec_key: bytes | None = None,
    dec_mode: str = "AES-GCM",
    specify_prefix: Any = None,
    choice_func: Callable[[str], Any] | None = None,
    crc_check: bool = False,
    remove_redundancy: bool = False,
    format: str = "ckpt",  # noqa: A002 - MindSpore's keyword
    *,
    mmap: bool | None = None,
    strict_integrity: bool = False,
    unknown_fields: str = "error",
    storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into ``{name: Parameter | str}``; optionally into ``net`` too.

    Reads with bounded memory: payloads go straight from the file (or the decrypting stream)
    into the returned arrays.  Truncated, inconsistent or tampered files raise ``FormatError``,
    ``ChecksumError`` or ``DecryptionError`` (all ``ValueError``) naming the file and parameter.

    mindckpt's keywords: ``mmap`` (default on, where the file can be mapped) maps the file
    copy-on-write instead of reading it: no payload is copied, writes to the arrays stay
    private, and loading into a network copies each tensor once, straight from the page
    cache; ``mmap=False`` reads into fresh arrays (and holds no file open);
    ``strict_integrity`` refuses encrypted files whose blocks are not bound to their file and
    position (MindSpore-written AES-GCM files and every CBC file, whose blocks could be
    reordered or spliced undetected); ``unknown_fields="skip"`` skips protobuf fields that
    MindSpore never writes (by default they are an error, since a flipped byte turns a tensor
    into one and MindSpore would drop it silently); ``storage_options`` for fsspec URLs.

    Args:
        ckpt_file_name: the path or URL of a ``.ckpt`` or ``.safetensors`` file (its suffix must
            match ``format``), an ``io.BytesIO`` of a safetensors file, or a committed sliced
            checkpoint directory.
        net: a ``Cell`` or torch module to load into (see :func:`load_param_into_net`).
        strict_load: MindSpore's: a dtype difference is an error instead of a conversion.
        filter_prefix: leave out names with these prefixes (deprecated in MindSpore).
        dec_key: the key of an encrypted file.
        dec_mode: its mode (``"AES-GCM"``, ``"AES-CBC"``, ``"SM4-CBC"``).
        specify_prefix: keep only names with these prefixes (deprecated in MindSpore).
        choice_func: ``choice_func(name) -> bool`` keeps the names it accepts.
        crc_check: verify the stored CRC; a file without one is an error.
        remove_redundancy: restore de-duplicated parameters (distributed runs only).
        format: ``"ckpt"`` or ``"safetensors"``.
        mmap: map the file instead of reading it (default: yes, where possible).
        strict_integrity: refuse encrypted files without block binding.
        unknown_fields: ``"error"`` (default) or ``"skip"``.
        storage_options: fsspec options for URLs.

    Returns:
        ``{name: Parameter | str | list}`` in file order (safetensors: sorted by name).

    Raises:
        CheckpointNotFoundError: no such file (a ``ValueError`` and ``FileNotFoundError``).
        FormatError: the file is damaged or not a checkpoint (a ``ValueError``).
        ChecksumError: the CRC does not match, or ``crc_check`` on a file without one.
        DecryptionError: a wrong key or mode, a key for a plain file, or tampered blocks.
        ValueError: nothing selected, or a bad argument value (MindSpore's messages).
        TypeError: an argument of the wrong type (MindSpore's messages).
        RuntimeError: with ``net``: a shape or dtype that does not fit (nothing changed).
    """
    specify = _check_prefix(specify_prefix)
    filt = _check_prefix(filter_prefix)
    check_isinstance("dec_key", dec_key, (type(None), bytes))
    check_isinstance("dec_mode", dec_mode, str)
    check_isinstance("crc_check", crc_check, bool)
    check_isinstance("remove_redundancy", remove_redundancy, bool)
    if format == "safetensors":
        for name, value, default in (("dec_key", dec_key, None), ("dec_mode", dec_mode, "AES-GCM")):
            if value != default:
                raise ValueError(
                    "For 'load_checkpoint', when format is 'safetensors', the parameter "
                    f"'{name}' must be set to default value '{default}', but got '{value!s}'."
                )
    if specify is not None:
        logger.warning("For load_checkpoint, this parameter `specity_prefix` will be deprecated, "
                       "please use `choice_func` instead.")
    if filt is not None:
        logger.warning("For load_checkpoint, this parameter `filter_prefix` will be deprecated, "
                       "please use `choice_func` instead.")
    check_isinstance("mmap", mmap, (type(None), bool))
    check_isinstance("strict_integrity", strict_integrity, bool)
    if unknown_fields not in ("error", "skip"):
        raise ValueError("For 'load_checkpoint', 'unknown_fields' must be 'error' or 'skip', "
                         f"but got {unknown_fields!r}.")
    if isinstance(ckpt_file_name, (str, os.PathLike)) and (
            pload.is_distributed_checkpoint(ckpt_file_name, storage_options)
            or (net is not None and _holds_dtensors(net))):
        return _load_distributed(ckpt_file_name, net, strict_load, choice_func, dec_key,
                                 dec_mode, storage_options)
    target = _check_load_file(ckpt_file_name, format, storage_options)
    entries: dict[str, Any]
    if isinstance(target, io.BytesIO):
        label = str(type(target))
        select = _selector(label, None, None, choice_func)
        entries, _ = read_safetensors(BytesSource(target.getbuffer(), label), label, select,
                                      crc_check=crc_check)
    else:
        store, key = target
        if format == "safetensors":
            specify = filt = None  # MindSpore ignores the prefixes for safetensors
        select = _selector(store.describe(key), specify, filt, choice_func)
        entries = read_file(key, format, select, dec_key=dec_key, dec_mode=dec_mode,
                            crc_check=crc_check, store=store, mmap=mmap,
                            strict_integrity=strict_integrity, unknown_fields=unknown_fields,
                            wrap=T.loaded_parameter)
    if not entries and specify is None and filt is None and choice_func is None:
        raise ValueError(  # MindSpore's message, then what is really the case
            "The loaded parameter dict is empty after filter or specify, please check whether "
            "'filter_prefix' or 'specify_prefix' are set correctly. No filter was given: the "
            f"checkpoint file {ckpt_file_name} holds no entries at all (it was saved from an "
            "empty network or dict)."
        )
    if not entries:
        raise ValueError(
            "The loaded parameter dict is empty after filter or specify, please check whether "
            "'filter_prefix' or 'specify_prefix' are set correctly."
        )
    params = _as_parameters(entries)
    if net is not None:
        load_param_into_net(net, params, strict_load, remove_redundancy)
    return params


def _holds_dtensors(net: Any) -> bool:
    return is_torch_module(net) and psave.has_dtensors(net)


def _load_distributed(path: Any, net: Any, strict_load: bool, choice_func: Any,
                      dec_key: bytes | None, dec_mode: str,
                      storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """A sliced checkpoint directory, or a net of DTensors: each rank reads its own regions.

    With ``net`` the local shards are filled in place and the returned dict holds the loaded
    names' local shards; without it, the full tensors are assembled.
    """
    if net is None:
        full = pload.read_shards(path, {}, dec_key=dec_key, dec_mode=dec_mode,
                                 storage_options=storage_options)
        return {k: Parameter(Tensor(v), name=k) for k, v in full.items()
                if choice_func is None or choice_func(k)}
    result = pload.load_distributed(path, net, strict_load=strict_load, choice_func=choice_func,
                                    dec_key=dec_key, dec_mode=dec_mode,
                                    storage_options=storage_options)
    missing = set(result.param_not_load)
    out: dict[str, Any] = {}
    for name, value in net.state_dict().items():
        if name in missing:
            continue
        local = value.to_local() if hasattr(value, "to_local") else value
        out[name] = Parameter(Tensor(torch_to_numpy(local)), name=name)
    return out


class ParamDictFuture:
    """What ``load_checkpoint_async`` returns: ``result()`` blocks and gives the dict."""

    def __init__(self, executor: ThreadPoolExecutor, future: Any):
        self.executor = executor
        self.param_dict_future = future

    def result(self) -> dict[str, Any]:
        try:
            return self.param_dict_future.result()
        finally:
            self.executor.shutdown(wait=False)


def load_checkpoint_async(
    ckpt_file_name: str,
    net: Any = None,
    strict_load: bool = False,
    filter_prefix: Any = None,
    dec_key: bytes | None = None,
    dec_mode: str = "AES-GCM",
    specify_prefix: Any = None,
    choice_func: Callable[[str], Any] | None = None,
) -> ParamDictFuture:
    """Load in a background thread; the format follows the file's suffix."""
    fmt = format_from_name(str(ckpt_file_name)) or "ckpt"
    executor = ThreadPoolExecutor(max_workers=2)
    future = executor.submit(
        load_checkpoint, ckpt_file_name, net, strict_load, filter_prefix, dec_key, dec_mode,
        specify_prefix, choice_func, format=fmt,
    )
    return ParamDictFuture(executor, future)


# --------------------------------------------------------------------------- load into net


_WRAPPERS = ("DistributedDataParallel", "DataParallel")

#: ``name_map="mindspore_to_torch"``: MindSpore's BatchNorm names to torch's.
MINDSPORE_TO_TORCH = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                      "moving_variance": "running_var"}


def _net_targets(net: Any) -> list[tuple[str, Any]]:
    """(name, target) for every parameter of ``net``, in MindSpore's order.

    torch's DDP/DataParallel wrappers are looked through (their ``module.`` prefix is not part
    of the model's names).  Tensors on the ``meta`` device are refused: they hold no memory, so
    nothing could be loaded into them.
    """
    if isinstance(net, Cell):
        return [(p.name, p) for p in net.get_parameters()]
    while type(net).__name__ in _WRAPPERS and is_torch_module(getattr(net, "module", None)):
        net = net.module
    targets = list(net.state_dict(keep_vars=True).items())
    meta = [name for name, t in targets if getattr(t, "device", None) is not None
            and t.device.type == "meta"]
    if meta:
        raise RuntimeError(
            f"For 'load_param_into_net', {len(meta)} tensors of the network are on the 'meta' "
            f"device (e.g. {', '.join(meta[:3])}), which holds no data, so they cannot be "
            "loaded. Materialize the module first (module.to_empty(device='cpu')), then load."
        )
    return targets


def _rename(parameter_dict: dict[str, Any], name_map: Any,
            net_names: set[str]) -> dict[str, Any]:
    """Apply ``name_map`` (dict, callable, or ``"mindspore_to_torch"``) to the checkpoint names."""
    if name_map is None:
        return parameter_dict
    if name_map == "mindspore_to_torch":
        def mapper(key: str) -> str:
            head, _, leaf = key.rpartition(".")
            new = MINDSPORE_TO_TORCH.get(leaf)
            if new is not None and key not in net_names:
                return f"{head}.{new}" if head else new
            return key
    elif isinstance(name_map, dict):
        def mapper(key: str) -> str:
            return cast(str, name_map.get(key, key))
    elif callable(name_map):
        mapper = name_map
    else:
        raise TypeError("For 'load_param_into_net', 'name_map' must be a dict, a callable or "
                        f"'mindspore_to_torch', but got {type(name_map)}.")
    out: dict[str, Any] = {}
    for key, value in parameter_dict.items():
        new = mapper(key)
        if not isinstance(new, str):
            raise TypeError(f"For 'load_param_into_net', name_map gave {new!r} for '{key}'; "
                            "it must give a str.")
        if new in out:
            raise ValueError(f"For 'load_param_into_net', name_map maps two checkpoint names to "
                             f"'{new}'.")
        out[new] = value
    return out


def _type_of(target: Any) -> T.Type:
    if isinstance(target, Tensor):
        return target.dtype
    t = T.dtype_of_torch(target.dtype)
    if t is None:
        raise TypeError(f"mindckpt cannot load into a torch tensor of dtype {target.dtype}")
    return t


def _value_array(value: Any) -> tuple[np.ndarray, T.Type]:
    if isinstance(value, Tensor):
        return value.asnumpy(), value.dtype
    arr = to_numpy(value)
    t = T.dtype_of_numpy(arr.dtype)
    if t is None:
        raise TypeError(f"unsupported dtype {arr.dtype}")
    return arr, t


def _plan_update(name: str, target: Any, value: Any, strict_load: bool) -> np.ndarray:
    """The array to put into ``target``, converted as MindSpore would; raises RuntimeError."""
    arr, ckpt_t = _value_array(value)
    net_t = _type_of(target)
    net_shape = tuple(target.shape)
    if tuple(arr.shape) != net_shape:
        extra = arr.shape[len(net_shape):]
        if (len(arr.shape) > len(net_shape) and tuple(arr.shape[:len(net_shape)]) == net_shape
                and all(d == 1 for d in extra)):
            arr = arr.reshape(net_shape)  # MindSpore means to squeeze trailing 1-dims
        else:
            logger.critical("Failed to combine the net and the parameters for param %s.", name)
            raise RuntimeError(
                f"For 'load_param_into_net', {name} in the argument 'net' should have the same "
                f"shape as {name} in the argument 'parameter_dict'. But got its shape "
                f"{net_shape} in the argument 'net' and shape {tuple(arr.shape)} in the argument "
                "'parameter_dict'.May you need to check whether the checkpoint you loaded is "
                "correct or the batch size and so on in the 'net' and 'parameter_dict' are same."
            )
    if ckpt_t != net_t:
        same_family = ({ckpt_t.name, net_t.name} <= _FLOAT_FAMILY
                       or {ckpt_t.name, net_t.name} <= _INT_FAMILY)
        if strict_load or not same_family:
            raise RuntimeError(
                f"For 'load_param_into_net', {name} in the argument 'net' should have the same "
                f"type as {name} in the argument 'parameter_dict'. but got its type {net_t} in "
                f"the argument 'net' and type {ckpt_t} in the argument 'parameter_dict'.May you "
                "need to check whether the checkpoint you loaded is correct."
            )
        logger.warning(
            "The type of %s:%s in 'parameter_dict' is different from the type of it in 'net':%s, "
            "then the type convert from %s to %s in the network. May consume additional memory "
            "and time", name, ckpt_t, net_t, ckpt_t, net_t,
        )
        arr = arr.astype(net_t.np_dtype)
    return arr


def _apply(target: Any, arr: np.ndarray, net_type: T.Type) -> None:
    if isinstance(target, Parameter):
        target.set_data(Tensor(arr, dtype=net_type))
        return
    copy_into(target, arr)


def load_param_into_net(
    net: Any,
    parameter_dict: dict[str, Any],
    strict_load: bool = False,
    remove_redundancy: bool = False,
    *,
    name_map: Any = None,
) -> tuple[list[str], list[str]]:
    """Copy ``parameter_dict`` into ``net`` (Cell or torch module); return the names not loaded.

    Returns ``(param_not_load, ckpt_not_load)`` as MindSpore does.  Unlike MindSpore, every
    shape and dtype is checked before anything changes, so a failing call leaves ``net`` as it
    was.

    ``strict_load`` is MindSpore's: with it a dtype difference is an error (without it a value
    is converted within its family, float to float, int to int); missing or extra names are
    never errors, they come back in the two lists.  That is unlike torch's
    ``load_state_dict(strict=True)``, which raises for missing or unexpected keys: check the
    returned lists for that.  When names differ only by a leading prefix (a checkpoint saved
    from a wrapped model), the prefix is removed as MindSpore does, and the names loaded that
    way are not reported in ``ckpt_not_load``.

    ``name_map`` (mindckpt's) renames checkpoint names before matching: a dict
    ``{checkpoint_name: net_name}``, a callable, or ``"mindspore_to_torch"`` (BatchNorm's
    ``gamma/beta/moving_mean/moving_variance`` to ``weight/bias/running_mean/running_var``).
    torch's DDP/DataParallel wrappers are looked through; a module on the ``meta`` device is
    refused (nothing can be loaded into it).

    Args:
        net: a ``Cell`` or ``torch.nn.Module`` (DTensor parameters receive their own shards).
        parameter_dict: ``{name: Parameter | Tensor | numpy array | torch tensor | str}``,
            usually what :func:`load_checkpoint` returned.
        strict_load: a dtype difference is an error instead of a conversion.
        remove_redundancy: restore de-duplicated parameters over the process group.
        name_map: renames checkpoint names before matching (see above).

    Returns:
        ``(param_not_load, ckpt_not_load)``: the network's names that got no value, and the
        dict's names that went nowhere.

    Raises:
        TypeError: ``net`` or ``parameter_dict`` of the wrong type, a bad ``name_map``, or
            ``remove_redundancy`` outside a process group (MindSpore's message).
        RuntimeError: a shape or dtype that does not fit, or a ``meta``-device module; the
            network is unchanged.
    """
    if not isinstance(net, Cell) and not is_torch_module(net):
        raise TypeError(
            "For 'load_param_into_net', the argument 'net' should be a Cell, but got "
            f"{type(net)}."
        )
    if not isinstance(parameter_dict, dict):
        raise TypeError(
            "For 'load_param_into_net', the argument 'parameter_dict' should be a dict, but got "
            f"{type(parameter_dict)}."
        )
    for key, value in parameter_dict.items():
        if not isinstance(key, str) or not (
            isinstance(value, (Tensor, str, list, np.ndarray)) or is_torch_tensor(value)
        ):
            raise TypeError(
                "For 'parameter_dict', the element in the argument 'parameter_dict' should be a "
                f"'str' and 'Parameter' , but got {type(key)} and {type(value)}."
            )
    check_bool(strict_load)
    check_isinstance("remove_redundancy", remove_redundancy, bool)
    if remove_redundancy and pdist.active() and not isinstance(net, Cell):
        return pload.restore_redundancy(net, parameter_dict, strict_load=strict_load)
    if _holds_dtensors(net):
        return pload.assign_shards(net, parameter_dict, strict_load=strict_load)
    if remove_redundancy:
        raise TypeError(
            "The deduplication feature for loading checkpoint can only be used in parallel "
            "scenarios, but got stand_alone."
        )
    targets = _net_targets(net)
    parameter_dict = _rename(parameter_dict, name_map, {n for n, _t in targets})
    plan: list[tuple[Any, np.ndarray, T.Type]] = []
    param_not_load: list[str] = []
    ckpt_not_load = list(parameter_dict)
    consumed: set[str] = set()
    for name, target in targets:
        if name in parameter_dict:
            value = parameter_dict[name]
            if isinstance(value, (str, list)):
                continue
            plan.append((target, _plan_update(name, target, value, strict_load), _type_of(target)))
            consumed.add(name)
        elif not name.startswith("accu_grads"):
            param_not_load.append(name)
    if not strict_load and param_not_load:
        by_name = dict(targets)
        tried: set[str] = set()
        while param_not_load:
            prefix = None
            for missing in param_not_load:
                for key in parameter_dict:
                    if key.endswith(missing):
                        prefix = key[: len(key) - len(missing)]
                        break
                if prefix is not None:
                    break
            if prefix is None or prefix == param_not_load[0] or prefix in tried:
                break
            tried.add(prefix)
            logger.warning("For 'load_param_into_net', remove parameter prefix name: %s, "
                           "continue to load.", prefix)
            for name in list(param_not_load):
                value = parameter_dict.get(prefix + name)
                if value is None or isinstance(value, (str, list)):
                    continue
                target = by_name[name]
                plan.append((target, _plan_update(name, target, value, strict_load),
                             _type_of(target)))
                param_not_load.remove(name)
                consumed.add(prefix + name)
    for target, arr, net_type in plan:
        _apply(target, arr, net_type)
    ckpt_not_load = [k for k in ckpt_not_load if k not in consumed]
    if param_not_load:
        logger.warning(
            "For 'load_param_into_net', %d parameters in the 'net' are not loaded, because they "
            "are not in the 'parameter_dict', please check whether the network structure is "
            "consistent when training and loading checkpoint.", len(param_not_load))
        logger.warning("%s are not loaded.", param_not_load)
    return param_not_load, ckpt_not_load
