"""Real-MindSpore oracle for live interop tests.

Pure standard library at import time (numpy is imported lazily by the array helpers); MindSpore
is never imported in the test process. Requests run in ``tools/ms_oracle/worker.py`` under a
Python that has MindSpore 2.10 installed, found in this order:

1. ``$MINDCKPT_MS_PYTHON``
2. ``/work/msvenv/bin/python``
3. ``$HOME/.cache/mindckpt/ms-venv/bin/python``

Typical use in a test::

    import ms_oracle as mso

    @pytest.mark.mindspore
    def test_x(tmp_path):
        mso.require_mindspore()
        path = str(tmp_path / "a.ckpt")
        mso.save(path, [mso.entry("w", np.arange(6, dtype=np.float32).reshape(2, 3))],
                 crc_check=True)
        got = mso.load(path, crc_check=True)          # list of entry dicts
        arr = mso.to_numpy(got[0])                    # numpy array (bfloat16 via ml_dtypes)

Requests/replies are JSON; see tools/ms_oracle/worker.py for the full protocol. A persistent
worker process is reused between calls (``call(..., fresh=True)`` runs a one-shot process,
e.g. when Parameter auto-naming counters matter). Each call raises ``OracleError`` if the
worker reports ``ok: false`` (unless ``check=False``).
"""
from __future__ import annotations

import atexit
import base64
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

assert sys.byteorder == "little", "the oracle helpers assume a little-endian host"

REPO = Path(__file__).resolve().parents[2]
WORKER = REPO / "tools" / "ms_oracle" / "worker.py"
DEFAULT_TIMEOUT = 600.0

_available: bool | None = None
_reason = ""
_server = None
_server_lock = threading.Lock()


class OracleError(RuntimeError):
    """The worker answered ok: false (error_type / error / traceback attached) or died."""

    def __init__(self, reply):
        self.reply = reply
        self.error_type = reply.get("error_type")
        self.error = reply.get("error")
        super().__init__(f"{self.error_type}: {self.error}\n{reply.get('traceback', '')}")


# --------------------------------------------------------------------------- discovery

def ms_python() -> str | None:
    """Path of the MindSpore python, or None."""
    env = os.environ.get("MINDCKPT_MS_PYTHON")
    if env:
        return env
    for cand in ("/work/msvenv/bin/python",
                 os.path.join(os.path.expanduser("~"), ".cache", "mindckpt", "ms-venv", "bin",
                              "python")):
        if os.path.exists(cand):
            return cand
    return None


def _env():
    env = dict(os.environ)
    env["GLOG_v"] = "3"
    env.pop("PYTHONPATH", None)  # never leak the library venv / src into the MindSpore python
    env.pop("PYTHONHOME", None)
    return env


def available() -> bool:
    """True iff a MindSpore python exists and ``import mindspore`` works in it (cached)."""
    global _available, _reason
    if _available is None:
        py = ms_python()
        if py is None:
            _available, _reason = False, (
                "no MindSpore python (set MINDCKPT_MS_PYTHON, or create /work/msvenv or "
                "~/.cache/mindckpt/ms-venv with mindspore==2.10.0)")
        else:
            try:
                r = subprocess.run([py, "-c", "import mindspore"], cwd=tempfile.gettempdir(),
                                   env=_env(), capture_output=True, text=True, timeout=300)
                _available = r.returncode == 0
                _reason = "" if _available else (
                    f"{py} -c 'import mindspore' failed: {r.stderr.strip()[-500:]}")
            except (OSError, subprocess.TimeoutExpired) as e:
                _available, _reason = False, f"{py}: {e}"
    return _available


def unavailable_reason() -> str:
    available()
    return _reason


def require_mindspore():
    """pytest.skip(...) unless real MindSpore is usable."""
    import pytest
    if not available():
        if os.environ.get("MINDCKPT_REQUIRE_MINDSPORE") == "1":  # CI installs it: never skip there
            pytest.fail("MindSpore oracle required but unavailable: " + _reason)
        pytest.skip("MindSpore oracle unavailable: " + _reason)


# --------------------------------------------------------------------------- transport

class _Server:
    def __init__(self, py):
        self.cwd = tempfile.mkdtemp(prefix="ms_oracle_")
        self.log_path = os.path.join(self.cwd, "worker-stderr.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [py, str(WORKER), "--serve"], cwd=self.cwd, env=_env(), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._log, text=True, encoding="utf-8",
            bufsize=1)

    def log_tail(self, n=3000):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc.poll() is None

    def ask(self, req, timeout):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        box = {}

        def read():
            box["line"] = self.proc.stdout.readline()

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            self.close(kill=True)
            raise TimeoutError(f"MindSpore oracle did not answer within {timeout} s")
        if not box.get("line"):
            rc = self.proc.poll()
            self.close(kill=True)
            raise OracleError({"error_type": "WorkerDied",
                               "error": f"worker exited (rc={rc}) without a reply; stderr "
                                        f"tail ({self.log_path}):\n{self.log_tail()}"})
        return json.loads(box["line"])

    def close(self, kill=False):
        try:
            if kill:
                self.proc.kill()
            else:
                self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:  # noqa: BLE001
            self.proc.kill()
        self._log.close()


def _shutdown():
    global _server
    if _server is not None:
        _server.close()
        _server = None


atexit.register(_shutdown)


def _oneshot(py, req, timeout):
    with tempfile.TemporaryDirectory(prefix="ms_oracle_") as cwd:
        r = subprocess.run([py, str(WORKER)], input=json.dumps(req), cwd=cwd, env=_env(),
                           capture_output=True, text=True, encoding="utf-8", timeout=timeout)
    if not r.stdout.strip():
        raise OracleError({"error_type": "WorkerDied",
                           "error": f"rc={r.returncode}, stderr tail: {r.stderr[-2000:]}"})
    return json.loads(r.stdout)


def call(req: dict, *, timeout: float = DEFAULT_TIMEOUT, fresh: bool = False,
         check: bool = True) -> dict:
    """Send one request dict to the worker and return its reply dict."""
    global _server
    if not available():
        raise OracleError({"error_type": "Unavailable", "error": _reason})
    py = ms_python()
    if fresh:
        reply = _oneshot(py, req, timeout)
    else:
        with _server_lock:
            if _server is None or not _server.alive():
                _server = _Server(py)
            reply = _server.ask(req, timeout)
    if check and not reply.get("ok"):
        raise OracleError(reply)
    return reply


# --------------------------------------------------------------------------- descriptions

_NP_TO_MS = {
    "float16": "Float16", "float32": "Float32", "float64": "Float64", "bfloat16": "BFloat16",
    "int8": "Int8", "int16": "Int16", "int32": "Int32", "int64": "Int64",
    "uint8": "UInt8", "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64",
    "bool": "Bool",
}
_MS_TO_NP = {v: k for k, v in _NP_TO_MS.items()}


def ms_dtype_name(np_dtype) -> str:
    """numpy dtype (incl. ml_dtypes.bfloat16) -> MindSpore tensor_type name."""
    import numpy as np
    return _NP_TO_MS[np.dtype(np_dtype).name]


def numpy_dtype(ms_name: str):
    """MindSpore tensor_type name -> numpy dtype (BFloat16 -> ml_dtypes.bfloat16)."""
    import numpy as np
    if ms_name == "BFloat16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(_MS_TO_NP[ms_name])


def entry(name: str, array, dtype: str | None = None, *, as_: str | None = None,
          b64: bool = False) -> dict:
    """Entry description from a numpy array (raw C-order little-endian bytes as hex/b64).

    Note: BFloat16 NaN payloads/signs are not preserved by the worker (it builds bfloat16
    tensors via float32 -> bfloat16 casts); every other bit pattern round-trips."""
    import numpy as np
    a = np.asarray(array)
    dt = dtype or ms_dtype_name(a.dtype)
    if a.dtype.byteorder == ">":
        a = a.byteswap().view(a.dtype.newbyteorder("<"))
    raw = np.ascontiguousarray(a).tobytes()
    d = {"name": name, "dtype": dt, "shape": list(a.shape)}
    if b64:
        d["b64"] = base64.b64encode(raw).decode()
    else:
        d["hex"] = raw.hex()
    if as_:
        d["as"] = as_
    return d


def fill_entry(name: str, dtype: str, shape, kind: str = "hash", seed: int = 0,
               **extra) -> dict:
    """Entry whose content the worker generates (tools/ms_oracle/fills.py): big tensors."""
    return {"name": name, "dtype": dtype, "shape": list(shape),
            "fill": {"kind": kind, "seed": seed, **extra}}


def str_entry(name: str, value: str) -> dict:
    return {"name": name, "dtype": "str", "value": value}


def _fills():
    sys.path.insert(0, str(WORKER.parent))
    try:
        import fills
    finally:
        sys.path.remove(str(WORKER.parent))
    return fills


def expected_bytes(desc: dict) -> bytes:
    """Raw bytes an entry description stands for (hex, b64 or fill), computed locally."""
    if "hex" in desc:
        return bytes.fromhex(desc["hex"])
    if "b64" in desc:
        return base64.b64decode(desc["b64"])
    if "fill" in desc:
        return _fills().fill_bytes(desc["dtype"], desc["shape"], desc["fill"]).tobytes()
    raise ValueError("no data in description")


def expected_array(desc: dict):
    """numpy array for an entry description (hex/b64/fill)."""
    import numpy as np
    return np.frombuffer(expected_bytes(desc), dtype=numpy_dtype(desc["dtype"])).reshape(
        desc["shape"])


def to_numpy(reply_entry: dict):
    """numpy array from a load reply entry (requires the inline "hex"); str entries -> str."""
    import numpy as np
    if reply_entry["dtype"] == "str":
        return reply_entry["value"]
    if "hex" not in reply_entry:
        raise ValueError(f"{reply_entry['name']}: not inlined (nbytes={reply_entry['nbytes']});"
                         " compare sha256 or raise inline_limit")
    return np.frombuffer(bytes.fromhex(reply_entry["hex"]),
                         dtype=numpy_dtype(reply_entry["dtype"])).reshape(reply_entry["shape"])


# --------------------------------------------------------------------------- requests

def _kwargs(kw: dict, key_name: str) -> dict:
    out = {}
    for k, v in kw.items():
        if v is None:
            continue
        if k == key_name and isinstance(v, (bytes, bytearray)):
            out[key_name + "_hex"] = bytes(v).hex()
        else:
            out[k] = list(v) if isinstance(v, tuple) else v
    return out


def save(path, entries=None, *, kind: str = "list_dict", save_obj: dict | None = None,
         append_dict: dict | None = None, fresh: bool = False, timeout=DEFAULT_TIMEOUT,
         **kwargs) -> dict:
    """mindspore.save_checkpoint in the worker.

    entries: list of entry descriptions (``entry``/``fill_entry``/``str_entry``); kind:
    "list_dict" ([{"name","data": Tensor}]), "list_param" ([Parameter]), "dict"
    ({name: Parameter | ndarray | Tensor | str}, per entry "as"). ``save_obj`` overrides both,
    e.g. ``{"kind": "cell", "cell": "lenet", "seed": 1}``.
    append_dict: JSON values (int/float/bool/str) or {"float64": x} | {"tensor": entry} |
    {"parameter": entry} | {"generator_seed": n}.
    kwargs: crc_check, enc_key (bytes), enc_mode, format, async_save, integrated_save,
    remove_redundancy, choice_prefix (list of prefixes -> choice_func).
    Returns {"path", "size", "sha256", "mode", "new_files"}."""
    req = {"op": "save", "path": os.path.abspath(str(path)),
           "save_obj": save_obj or {"kind": kind, "entries": entries or []},
           "append_dict": append_dict, "kwargs": _kwargs(kwargs, "enc_key")}
    return call(req, fresh=fresh, timeout=timeout)


def load(path, *, inline_limit: int | None = 8 << 20, fresh: bool = False,
         timeout=DEFAULT_TIMEOUT, **kwargs) -> list:
    """mindspore.load_checkpoint in the worker; returns the list of entry dicts, in dict order:
    {"name", "kind": "Parameter", "dtype", "shape", "nbytes", "sha256", "hex" (if nbytes <=
    inline_limit), "param_name", "requires_grad"} or {"name", "kind": "str", "dtype": "str",
    "value"}. kwargs: dec_key (bytes), dec_mode, crc_check, format, specify_prefix,
    filter_prefix, choice_prefix, strict_load, net ({"cell": "lenet"} ...)."""
    req = {"op": "load", "path": os.path.abspath(str(path)), "inline_limit": inline_limit,
           "kwargs": _kwargs(kwargs, "dec_key")}
    return call(req, fresh=fresh, timeout=timeout)["entries"]


def load_error(path, *, fresh: bool = False, timeout=DEFAULT_TIMEOUT, **kwargs) -> dict:
    """Load expecting failure: {"raised": True, "error_type", "error"} or
    {"raised": False, "keys": [...]}."""
    req = {"op": "load_error", "path": os.path.abspath(str(path)),
           "kwargs": _kwargs(kwargs, "dec_key")}
    return call(req, fresh=fresh, timeout=timeout)


def cell_params(cell: dict, *, inline_limit: int | None = 8 << 20, fresh: bool = False) -> list:
    """parameters_and_names() of a worker built-in cell ({"cell": "lenet", "seed": 1} or
    {"cell": "ordering"}): entry dicts plus "attr_path"."""
    return call({"op": "cell_params", "cell": cell, "inline_limit": inline_limit},
                fresh=fresh)["params"]


def batch(requests: list, *, fresh: bool = False, timeout=DEFAULT_TIMEOUT) -> list:
    """Several raw requests in one round trip; returns the list of replies (not checked)."""
    return call({"op": "batch", "requests": requests}, fresh=fresh, timeout=timeout)["replies"]


def ms_parallel(fn: str, *args, timeout=DEFAULT_TIMEOUT, **kwargs):
    """Call mindspore.parallel.<fn> (or mindspore.<fn>) with plain JSON arguments in the
    worker; returns its JSON-converted result (numpy scalars as {"numpy_scalar", "value"})."""
    return call({"op": "ms_parallel", "fn": fn, "args": list(args), "kwargs": kwargs},
                timeout=timeout)["result"]


def ms_strategy_write(path, layouts: dict, *, current_stage: int = 0, stage: int = 0) -> dict:
    """Write a strategy file with MindSpore's node_strategy_pb2 (see the worker for the
    layout spec: dev_matrix, tensor_maps (list of TensorMap dim lists), param_split_shape,
    field, opt_weight_shard_step, opt_weight_shard_size)."""
    return call({"op": "ms_strategy_write", "path": os.path.abspath(str(path)),
                 "layouts": layouts, "current_stage": current_stage, "stage": stage})


def ms_strategy_read(path) -> dict:
    """mindspore.parallel.build_searched_strategy(path) as plain dicts."""
    return call({"op": "ms_strategy_read", "path": os.path.abspath(str(path))})["layouts"]


def ms_merge_sliced(slices: list, strategy_path=None) -> dict:
    """mindspore.merge_sliced_parameter on entry descriptions; returns the merged entry."""
    return call({"op": "ms_merge_sliced", "slices": slices,
                 "strategy_path": os.path.abspath(str(strategy_path)) if strategy_path else None}
                )["merged"]


def version() -> dict:
    return call({"op": "version"})


# --------------------------------------------------------------------------- file inspection

def _read_varint(f):
    shift = res = 0
    while True:
        b = f.read(1)
        if not b:
            raise EOFError
        c = b[0]
        res |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return res


def scan_records(path, *, body_len: int | None = None) -> list:
    """Stream the protobuf records of a PLAINTEXT .ckpt without loading tensor data.

    Returns [{"name", "dtype", "dims", "content_offset", "nbytes"}] in file order (one per
    Checkpoint.value). ``body_len`` limits the scan (e.g. file size - 17 for a CRC trailer);
    by default a trailing ``crc_num`` trailer is detected and skipped. Independent of mindckpt:
    it is a test oracle for record layout (e.g. >512 MiB slicing)."""
    size = os.path.getsize(path)
    out = []
    with open(path, "rb") as f:
        if body_len is None:
            body_len = size
            if size >= 17:
                f.seek(size - 17)
                if f.read(7) == b"crc_num":
                    body_len = size - 17
                f.seek(0)
        while f.tell() < body_len:
            key = _read_varint(f)
            if key != 0x0A:
                raise ValueError(f"unexpected top-level key {key:#x} at {f.tell() - 1}")
            vlen = _read_varint(f)
            vend = f.tell() + vlen
            rec = {"name": None, "dtype": None, "dims": [], "content_offset": None, "nbytes": 0}
            while f.tell() < vend:
                k = _read_varint(f)
                n = _read_varint(f)
                if k == 0x0A:  # tag
                    rec["name"] = f.read(n).decode("utf-8")
                elif k == 0x12:  # TensorProto
                    tend = f.tell() + n
                    while f.tell() < tend:
                        k2 = _read_varint(f)
                        if k2 == 0x08:
                            rec["dims"].append(_read_varint(f))
                            continue
                        n2 = _read_varint(f)
                        if k2 == 0x12:
                            rec["dtype"] = f.read(n2).decode()
                        elif k2 == 0x1A:
                            rec["content_offset"], rec["nbytes"] = f.tell(), n2
                            f.seek(n2, 1)
                        else:
                            f.seek(n2, 1)
                else:
                    f.seek(n, 1)
            out.append(rec)
    return out
