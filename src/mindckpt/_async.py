"""Deprecated alias of :mod:`mindckpt.async_writer` (the module's old name)."""

from mindckpt.async_writer import (  # noqa: F401
    ASYNC_THREAD_NAME,
    AsyncWriter,
    async_ckpt_thread_status,
    default_writer,
    submit,
    thread_status,
    wait,
)

__all__ = [
    "ASYNC_THREAD_NAME",
    "AsyncWriter",
    "async_ckpt_thread_status",
    "default_writer",
    "submit",
    "thread_status",
    "wait",
]
