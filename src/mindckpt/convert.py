"""``ckpt_to_safetensors`` and ``safetensors_to_ckpt``: MindSpore 2.10's converters.

Same arguments, checks, messages and output names as MindSpore. A
conversion is a load followed by a save, so the output is written atomically and the input is
never changed. Differences: a ``str`` entry cannot go into safetensors, and the error says so
and names the entry; no progress bar is printed.
"""

from __future__ import annotations

import os
import posixpath
import re
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from ._api import load_checkpoint, save_checkpoint
from .storage.urls import is_url

__all__ = ["ckpt_to_safetensors", "safetensors_to_ckpt"]


def _convert_one(src: str, dst_dir: str, src_fmt: str, dst_fmt: str, name_map: dict | None) -> str:
    params = load_checkpoint(src, format=src_fmt)
    if name_map:
        params = {name_map.get(k, k): v for k, v in params.items()}
    base = posixpath.basename(src) if is_url(src) else os.path.basename(src)
    name = base.replace(f".{src_fmt}", f".{dst_fmt}")
    out = posixpath.join(dst_dir, name) if is_url(dst_dir) else os.path.join(dst_dir, name)
    save_checkpoint(params, out, format=dst_fmt)
    return out


def _convert(
    func: str,
    src_fmt: str,
    dst_fmt: str,
    file_path: Any,
    save_path: Any,
    name_map: Any,
    file_name_regex: Any,
    processes_num: int,
) -> None:
    if is_url(file_path):  # one object; a URL "directory" of rank_* folders is not listed
        if not file_path.endswith(f".{src_fmt}"):
            raise ValueError(f"For {func}, the input file must be a .{src_fmt} file, but got "
                             f"{file_path}")
        if save_path is not None and posixpath.splitext(save_path)[1]:
            raise ValueError(f"For {func}, the save_path must be a directory, but got "
                             f"'{save_path}'")
        _convert_one(file_path, save_path or file_path.rsplit("/", 1)[0], src_fmt, dst_fmt,
                     name_map if isinstance(name_map, dict) else None)
        return
    if not (os.path.isdir(file_path) or os.path.isfile(file_path)):
        raise ValueError(f"For {func}, the input path must be a valid path or file, but got {file_path}")
    if save_path is not None and os.path.splitext(save_path)[1]:
        raise ValueError(f"For {func}, the save_path must be a directory, but got '{save_path}'")
    if name_map is not None and not isinstance(name_map, dict):
        raise ValueError(
            f"For {func}, the type of 'name_map' must be a directory, but got '{type(name_map)}'"
        )
    if os.path.isfile(file_path):
        if not file_path.endswith(f".{src_fmt}"):
            raise ValueError(f"For {func}, the input file must be a .{src_fmt} file, but got {file_path}")
        if file_name_regex is not None and not re.findall(file_name_regex, file_path):
            raise ValueError(f"For {func}, the input file does not match the regular expression.")
        dst_dir = save_path if save_path is not None else os.path.dirname(os.path.abspath(file_path))
        os.makedirs(dst_dir, exist_ok=True)
        _convert_one(file_path, dst_dir, src_fmt, dst_fmt, name_map)
        return
    rank_dirs = sorted(
        d for d in os.listdir(file_path)
        if d.startswith("rank") and os.path.isdir(os.path.join(file_path, d))
    )
    if not rank_dirs:
        raise ValueError(f"For '{func}', no directories starting with 'rank' found in {file_path}.")
    jobs = []
    for rank in rank_dirs:
        src_dir = os.path.join(file_path, rank)
        dst_dir = os.path.join(save_path, rank) if save_path is not None else src_dir
        for name in sorted(os.listdir(src_dir)):
            src = os.path.join(src_dir, name)
            if not (name.endswith(f".{src_fmt}") and os.path.isfile(src)):
                continue
            if file_name_regex is not None and not re.search(file_name_regex, name):
                continue
            os.makedirs(dst_dir, exist_ok=True)
            jobs.append((src, dst_dir, src_fmt, dst_fmt, name_map))
    if processes_num > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(processes_num) as pool:
            for fut in [pool.submit(_convert_one, *job) for job in jobs]:
                fut.result()
    else:
        for job in jobs:
            _convert_one(*job)


def ckpt_to_safetensors(
    file_path: str,
    save_path: str | None = None,
    name_map: dict | None = None,
    file_name_regex: str | None = None,
    processes_num: int = 1,
) -> None:
    """Convert a ``.ckpt`` file, or the ``rank*`` sub-directories of a directory, to safetensors."""
    _convert("ckpt_to_safetensors", "ckpt", "safetensors", file_path, save_path, name_map,
             file_name_regex, processes_num)


def safetensors_to_ckpt(
    file_path: str,
    save_path: str | None = None,
    name_map: dict | None = None,
    file_name_regex: str | None = None,
    processes_num: int = 1,
) -> None:
    """Convert a ``.safetensors`` file, or the ``rank*`` sub-directories of a directory, to .ckpt."""
    _convert("safetensors_to_ckpt", "safetensors", "ckpt", file_path, save_path, name_map,
             file_name_regex, processes_num)
