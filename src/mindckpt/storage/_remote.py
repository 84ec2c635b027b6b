"""Shared by the remote backends: every failure becomes a mindckpt error that names the URL and
the cause (missing bucket or object, credentials, refused request, network), and timestamps of
listings become seconds."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

from ..errors import CheckpointError, CheckpointNotFoundError, MissingDirectoryError, StorageError

__all__ = ["cause", "client_error", "wrap", "as_epoch"]


def as_epoch(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def client_error(exc: BaseException) -> tuple[str, int] | None:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def cause(exc: BaseException) -> tuple[str, str]:
    """(kind, text): kind is one of missing, bucket, exists, changed, denied, credentials,
    network, refused, other."""
    name = type(exc).__name__
    ce = client_error(exc)
    if ce is not None:
        code, status = ce
        msg = str(getattr(exc, "response", {}).get("Error", {}).get("Message", "")) or str(exc)
        if code == "NoSuchBucket":
            return "bucket", "the bucket does not exist"
        if code in ("NoSuchKey", "NotFound", "404") or status == 404:
            return "missing", "the object does not exist"
        if code in ("PreconditionFailed", "412") or status == 412:
            return "precondition", "a conditional request was refused (412 Precondition Failed)"
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                    "InvalidToken", "AccessDenied", "AllAccessDisabled") or status == 403:
            return "denied", (f"access was refused ({code or status}: {msg}); check the "
                              "credentials and the bucket's permissions")
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return "network", f"the server failed ({code or status}: {msg}) after retries"
        return "refused", f"the server refused the request ({code or status}: {msg})"
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"):
        return "credentials", ("no usable credentials were found; set AWS_ACCESS_KEY_ID and "
                               "AWS_SECRET_ACCESS_KEY (or a profile), pass storage_options="
                               "{'key': ..., 'secret': ...}, or {'anon': True} for a public "
                               "bucket")
    if (name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                 "ConnectionClosedError", "ServerTimeoutError", "ClientConnectorError",
                 "ServerDisconnectedError", "ClientOSError", "ClientPayloadError")
            or isinstance(exc, (TimeoutError, asyncio.TimeoutError, ConnectionError))):
        return "network", (f"the connection failed or timed out ({name}: {exc}) after retries; "
                           "check the endpoint and the network (timeouts and retries: "
                           "storage_options={'config_kwargs': {...}})")
    if isinstance(exc, FileNotFoundError):
        return "missing", "it does not exist"
    if isinstance(exc, FileExistsError):
        return "exists", "it already exists"
    if isinstance(exc, PermissionError):
        return "denied", f"permission denied ({exc})"
    return "other", f"{name}: {exc}"


def wrap(exc: BaseException, action: str, url: str, *, reading: bool = False) -> BaseException:
    """A mindckpt error for ``exc`` raised while ``action``-ing ``url``."""
    if isinstance(exc, CheckpointError):
        return exc
    kind, text = cause(exc)
    if reading and kind == "missing":
        return CheckpointNotFoundError(f"The checkpoint file {url} does not exist; check the URL.")
    tail = "" if reading else " Nothing was replaced: any previous object under that name is unchanged."
    msg = f"Failed to {action} {url}: {text}.{tail}"
    if kind == "bucket":
        return (CheckpointNotFoundError(msg + " Create the bucket first.") if reading
                else MissingDirectoryError(msg + " Create the bucket first."))
    return StorageError(msg)
