"""MindSpore oracle worker: runs inside a Python that has real MindSpore 2.10 installed.

Protocol (driven by ``tests/interop/ms_oracle.py``):

* one-shot: ``python worker.py`` reads ONE JSON request from stdin, writes ONE JSON reply to
  stdout and exits.
* server: ``python worker.py --serve`` reads one JSON request per line and answers with one
  JSON reply per line, until EOF.

Everything MindSpore (or its C++ part) prints goes to stderr: file descriptor 1 is redirected
to 2 at start-up, and replies are written to a private duplicate of the original stdout.

Request: ``{"op": <name>, ...}``; reply: ``{"ok": true, ...}`` or
``{"ok": false, "error_type": "ValueError", "error": "<str(exc)>", "traceback": "..."}``.
Handlers are registered in ``HANDLERS`` (op name -> function(request) -> dict).

Tensor description ("entry") used in requests and replies::

    {"name": "w", "dtype": "Float32", "shape": [2, 3],
     "hex": "..."            # raw little-endian C-order bytes, or
     "b64": "...",           # the same in base64, or
     "fill": {...}}          # see fills.py (arange / hash / const), for big tensors
    {"name": "s", "dtype": "str", "value": "text"}   # string entries

``dtype`` is a MindSpore tensor_type name: Float16 Float32 Float64 BFloat16 Int8 Int16 Int32
Int64 UInt8 UInt16 UInt32 UInt64 Bool (plus "str").
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fills  # noqa: E402  (pure numpy, shared with the test side)

_REPLY_FD = None


def _setup_fds():
    """Keep a private copy of stdout for replies; send everything else to stderr."""
    global _REPLY_FD
    _REPLY_FD = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr


def _reply(obj):
    data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
    view = memoryview(data)
    while view:
        n = os.write(_REPLY_FD, view)
        view = view[n:]


_ms = None
_np = None


def ms():
    global _ms, _np
    if _ms is None:
        os.environ.setdefault("GLOG_v", "3")
        import numpy
        import mindspore
        _ms, _np = mindspore, numpy
    return _ms


# --------------------------------------------------------------------------- tensors

_MS_DTYPE_ATTR = {
    "Float16": "float16", "Float32": "float32", "Float64": "float64", "BFloat16": "bfloat16",
    "Int8": "int8", "Int16": "int16", "Int32": "int32", "Int64": "int64",
    "UInt8": "uint8", "UInt16": "uint16", "UInt32": "uint32", "UInt64": "uint64",
    "Bool": "bool_",
}


def entry_raw(entry) -> bytes | None:
    """Raw content bytes of an entry description (None for str entries)."""
    if entry.get("dtype") == "str":
        return None
    if "hex" in entry:
        return bytes.fromhex(entry["hex"])
    if "b64" in entry:
        return base64.b64decode(entry["b64"])
    if "fill" in entry:
        return fills.fill_bytes(entry["dtype"], entry["shape"], entry["fill"])
    raise ValueError(f"entry {entry.get('name')!r}: needs hex, b64 or fill")


def entry_numpy(entry):
    """numpy array for a non-bfloat16 entry (shape/dtype from the description)."""
    ms()
    np = _np
    dt = entry["dtype"]
    raw = entry_raw(entry)
    np_dt = fills.DTYPES[dt][0]
    if dt == "Bool":
        np_dt = "?"
    buf = raw if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype=np.uint8)
    arr = buf.view(np_dt).reshape(tuple(entry["shape"]))
    return arr.copy() if not arr.flags.writeable else arr


def entry_tensor(entry):
    """mindspore.Tensor for an entry. BFloat16 goes through float32 (exact except NaN payloads)."""
    m = ms()
    np = _np
    if entry["dtype"] == "BFloat16":
        raw = entry_raw(entry)
        buf = raw if isinstance(raw, np.ndarray) else np.frombuffer(raw, dtype=np.uint8)
        u16 = buf.view("<u2").reshape(tuple(entry["shape"]))
        f32 = (u16.astype(np.uint32) << 16).view(np.float32)
        return m.Tensor(f32).astype(m.bfloat16)
    return m.Tensor(entry_numpy(entry))


def entry_parameter(entry):
    m = ms()
    return m.Parameter(entry_tensor(entry), name=entry["name"])


def tensor_raw(t) -> bytes:
    """Raw little-endian C-order bytes of a MindSpore Tensor/Parameter."""
    m = ms()
    np = _np
    if t.dtype == m.bfloat16:
        f32 = t.astype(m.float32).asnumpy()
        return np.ascontiguousarray((f32.view(np.uint32) >> 16).astype("<u2")).tobytes()
    a = t.asnumpy()
    if a.dtype.byteorder == ">":
        a = a.byteswap().view(a.dtype.newbyteorder("<"))
    return np.ascontiguousarray(a).tobytes()


def dtype_name(t) -> str:
    # str(mindspore.float32) == "Float32"; Bool prints as "Bool"
    return str(t.dtype)


def describe_value(name, value, inline_limit):
    m = ms()
    if isinstance(value, str):
        return {"name": name, "kind": "str", "dtype": "str", "value": value}
    raw = tensor_raw(value)
    d = {
        "name": name,
        "kind": type(value).__name__,
        "dtype": dtype_name(value),
        "shape": [int(x) for x in value.shape],
        "nbytes": len(raw),
        "sha256": hashlib.sha256(raw).hexdigest(),
    }
    if isinstance(value, m.Parameter):
        d["param_name"] = value.name
        d["requires_grad"] = bool(value.requires_grad)
    if inline_limit is None or len(raw) <= inline_limit:
        d["hex"] = raw.hex()
    return d


# --------------------------------------------------------------------------- cells

def build_cell(spec):
    """Built-in test networks: {"cell": "lenet", "seed": 1} or {"cell": "ordering"}."""
    m = ms()
    nn = m.nn
    if "seed" in spec:
        m.set_seed(int(spec["seed"]))
    name = spec["cell"]
    if name == "lenet":
        class LeNet5(nn.Cell):
            def __init__(self, num_class=10, num_channel=1):
                super().__init__()
                self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
                self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
                self.fc1 = nn.Dense(16 * 5 * 5, 120)
                self.fc2 = nn.Dense(120, 84)
                self.fc3 = nn.Dense(84, 10)
                self.relu = nn.ReLU()
                self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
                self.flatten = nn.Flatten()

            def construct(self, x):
                x = self.max_pool2d(self.relu(self.conv1(x)))
                x = self.max_pool2d(self.relu(self.conv2(x)))
                x = self.flatten(x)
                x = self.relu(self.fc1(x))
                x = self.relu(self.fc2(x))
                return self.fc3(x)
        return LeNet5()
    if name == "ordering":
        return make_ordering_cell()
    raise ValueError(f"unknown cell {name!r}")


def make_ordering_cell():
    """Cell with own params defined before AND after sub-cells, a named param and a
    Parameter(name="") in a sub-cell, an unnamed top-level Parameter and a Parameter(name="").

    MindSpore 2.10 saves: first, top_explicit, unnamed, emptyname, last, sub_a.w, sub_a.b,
    sub_a.e, sub_a.inner.weight, sub_a.inner.bias, sub_b.weight, sub_b.bias."""
    m = ms()
    np = _np
    nn = m.nn

    def p(val, name=None, **kw):
        return m.Parameter(m.Tensor(np.asarray(val, dtype=np.float32)), name=name, **kw)

    class Sub(nn.Cell):
        def __init__(self):
            super().__init__()
            self.w = p([1.0, 2.0], name="explicit_sub_name")
            self.inner = nn.Dense(2, 1, weight_init="ones", bias_init="zeros")
            self.b = p([3.0])
            self.e = p([4.0], name="")

    class Top(nn.Cell):
        def __init__(self):
            super().__init__()
            self.first = p([10.0], name="first")
            self.sub_a = Sub()
            self.mid = p([20.0], name="top_explicit")
            self.unnamed = p([30.0], name=None)
            self.emptyname = p([40.0], name="")
            self.sub_b = nn.Dense(1, 1, weight_init="ones", bias_init="zeros")
            self.last = p([50.0], name="last")
    return Top()


# --------------------------------------------------------------------------- save

def build_save_obj(spec):
    """spec: {"kind": "list_dict"|"list_param"|"dict"|"cell", "entries": [...]}.

    dict entries may carry "as": "parameter" (default) | "ndarray" | "tensor"; str entries
    (dtype "str") are stored as Python str values.
    """
    ms()
    kind = spec["kind"]
    entries = spec.get("entries", [])
    if kind == "list_dict":
        return [{"name": e["name"], "data": entry_tensor(e)} for e in entries]
    if kind == "list_param":
        return [entry_parameter(e) for e in entries]
    if kind == "dict":
        out = {}
        for e in entries:
            if e.get("dtype") == "str":
                out[e["name"]] = e["value"]
                continue
            how = e.get("as", "parameter")
            if how == "parameter":
                out[e["name"]] = entry_parameter(e)
            elif how == "ndarray":
                out[e["name"]] = entry_numpy(e)
            elif how == "tensor":
                out[e["name"]] = entry_tensor(e)
            else:
                raise ValueError(f"unknown 'as' {how!r}")
        return out
    if kind == "cell":
        return build_cell(spec)
    raise ValueError(f"unknown save_obj kind {kind!r}")


def build_append_value(v):
    """JSON -> append_dict value: int/float/bool/str as-is; {"float64": x}; {"tensor": entry};
    {"parameter": entry}; {"generator_seed": n}."""
    m = ms()
    np = _np
    if isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, dict):
        if "float64" in v:
            return np.float64(v["float64"])
        if "tensor" in v:
            return entry_tensor(v["tensor"])
        if "parameter" in v:
            return entry_parameter(v["parameter"])
        if "generator_seed" in v:
            g = m.Generator()
            g.manual_seed(int(v["generator_seed"]))
            return g
    raise ValueError(f"unsupported append_dict value {v!r}")


def _prefix_choice(prefixes):
    prefixes = tuple(prefixes)
    return lambda name: name.startswith(prefixes)


def _key(kwargs, name):
    v = kwargs.pop(name + "_hex", None)
    if v is not None:
        kwargs[name] = bytes.fromhex(v)


def _file_info(path):
    st = os.stat(path)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 24), b""):
            h.update(chunk)
    return {"path": path, "size": st.st_size, "sha256": h.hexdigest(),
            "mode": oct(stat.S_IMODE(st.st_mode))}


def _wait_async():
    import mindspore.train.serialization as ser
    for fn in ("_wait_async_thread_save_ckpt", "_wait_async_process_save_ckpt"):
        f = getattr(ser, fn, None)
        if f is not None:
            f()


def h_save(req):
    """{"op": "save", "path": abs path, "save_obj": {...}, "append_dict": {...}|null,
        "kwargs": {crc_check, enc_key_hex, enc_mode, format, async_save, integrated_save,
                   remove_redundancy, choice_prefix: [..]}}
    -> {"path": file actually written, "size", "sha256", "mode"}"""
    m = ms()
    kwargs = dict(req.get("kwargs") or {})
    _key(kwargs, "enc_key")
    if "choice_prefix" in kwargs:
        kwargs["choice_func"] = _prefix_choice(kwargs.pop("choice_prefix"))
    ad = req.get("append_dict")
    if ad is not None:
        kwargs["append_dict"] = {k: build_append_value(v) for k, v in ad.items()}
    path = req["path"]
    before = set(os.listdir(os.path.dirname(path) or "."))
    m.save_checkpoint(build_save_obj(req["save_obj"]), path, **kwargs)
    if kwargs.get("async_save"):
        _wait_async()
    fmt = kwargs.get("format", "ckpt")
    real = os.path.realpath(path)
    written = real if real.endswith(fmt) else real + "." + fmt
    out = _file_info(written)
    out["new_files"] = sorted(set(os.listdir(os.path.dirname(path) or ".")) - before)
    return out


# --------------------------------------------------------------------------- load

def _load(req):
    m = ms()
    kwargs = dict(req.get("kwargs") or {})
    _key(kwargs, "dec_key")
    if "choice_prefix" in kwargs:
        kwargs["choice_func"] = _prefix_choice(kwargs.pop("choice_prefix"))
    if kwargs.get("net") is not None:
        kwargs["net"] = build_cell(kwargs["net"])
    return m.load_checkpoint(req["path"], **kwargs)


def h_load(req):
    """{"op": "load", "path", "kwargs": {dec_key_hex, dec_mode, crc_check, format,
        specify_prefix, filter_prefix, choice_prefix}, "inline_limit": bytes (default 8 MiB,
        null = always)}
    -> {"entries": [{"name", "kind": "Parameter"|"str", "dtype", "shape", "nbytes",
                     "sha256", "hex" (if nbytes <= inline_limit), "param_name",
                     "requires_grad"} | {"name", "kind": "str", "dtype": "str", "value"}]}"""
    d = _load(req)
    limit = req.get("inline_limit", 8 << 20)
    return {"entries": [describe_value(k, v, limit) for k, v in d.items()]}


def h_load_error(req):
    """Like load, but reports the exception: {"raised": bool, "error_type", "error"}."""
    try:
        d = _load(req)
    except BaseException as e:  # noqa: BLE001
        return {"raised": True, "error_type": type(e).__name__, "error": str(e)}
    return {"raised": False, "keys": list(d.keys())}


def h_version(req):
    m = ms()
    return {"mindspore": m.__version__, "numpy": _np.__version__, "python": sys.version,
            "executable": sys.executable}


def h_cell_params(req):
    """{"op": "cell_params", "cell": {"cell": "lenet", "seed": 1}} -> parameters_and_names()
    of a built-in cell, in order, with values."""
    cell = build_cell(req["cell"])
    limit = req.get("inline_limit", 8 << 20)
    out = []
    for attr, p in cell.parameters_and_names():
        d = describe_value(p.name, p, limit)
        d["attr_path"] = attr
        out.append(d)
    return {"params": out}


def h_batch(req):
    """{"op": "batch", "requests": [...]} -> {"replies": [...]} (each reply as for one call)."""
    return {"replies": [dispatch(r) for r in req["requests"]]}


HANDLERS = {
    "version": h_version,
    "save": h_save,
    "load": h_load,
    "load_error": h_load_error,
    "cell_params": h_cell_params,
    "batch": h_batch,
}


# --------------------------------------------------------------------------- parallel tools
# (added for tests/parallel: MindSpore's strategy files and offline merge/reshard tools)

def _jsonable(x):
    np = _np
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if np is not None and isinstance(x, np.generic):
        return {"numpy_scalar": type(x).__name__, "value": x.item()}
    return x


def h_ms_parallel(req):
    """{"op": "ms_parallel", "fn": name in mindspore.parallel (or its transform_safetensors
    module, or mindspore), "args": [...],
    "kwargs": {...}} -> {"result": JSON form (numpy scalars as {"numpy_scalar", "value"})}.
    Only for tools taking and returning plain values (paths, ints, lists); kwargs
    "choice_drop": [names] becomes choice_func=lambda n: n not in names."""
    m = ms()
    import mindspore.parallel as mp
    import mindspore.parallel.transform_safetensors as mts
    fn = getattr(mp, req["fn"], None) or getattr(mts, req["fn"], None) or getattr(m, req["fn"])
    kwargs = dict(req.get("kwargs") or {})
    if "choice_drop" in kwargs:  # choice_func dropping these names
        drop = set(kwargs.pop("choice_drop"))
        kwargs["choice_func"] = lambda name: name not in drop
    return {"result": _jsonable(fn(*req.get("args", []), **kwargs))}


def h_ms_strategy_write(req):
    """{"op": "ms_strategy_write", "path", "current_stage", "stage",
        "layouts": {name: {"dev_matrix": [..], "tensor_maps": [[..], ..], "param_split_shape":
        [..], "field", "opt_weight_shard_step", "opt_weight_shard_size"}}}
    Writes a ParallelStrategyMap with MindSpore's own node_strategy_pb2 classes."""
    ms()
    from mindspore.train import node_strategy_pb2 as pb
    smap = pb.ParallelStrategyMap()
    smap.current_stage = req.get("current_stage", 0)
    item = smap.parallel_strategy_item.add()
    item.node_name = "Default/network-Net/MatMul-op0"
    item.parallel_strategys.stage = req.get("stage", 0)
    item.parallel_strategys.parallel_strategy.add().dim.extend([1, 1])
    for name, spec in req["layouts"].items():
        li = smap.parallel_layout_item.add()
        li.param_name = name
        pl = li.parallel_layouts
        pl.dev_matrix.add().dim.extend(spec["dev_matrix"])
        for tm in spec["tensor_maps"]:
            pl.tensor_map.add().dim.extend(tm)
        pl.param_split_shape.add().dim.extend(spec.get("param_split_shape", []))
        pl.indices_offset.add()
        pl.field = spec.get("field", 0)
        pl.opt_weight_shard_step = spec.get("opt_weight_shard_step", 0)
        pl.opt_weight_shard_size = spec.get("opt_weight_shard_size", 0)
    with open(req["path"], "wb") as f:
        f.write(smap.SerializeToString())
    return {"size": os.path.getsize(req["path"])}


def h_ms_strategy_read(req):
    """{"op": "ms_strategy_read", "path"} -> {"layouts": {name: {...}}} via
    mindspore.parallel.build_searched_strategy (MindSpore's own parser)."""
    ms()
    from mindspore.parallel import build_searched_strategy
    out = {}
    for name, lay in build_searched_strategy(req["path"]).items():
        out[name] = {"dev_matrix": [list(d.dim) for d in lay.dev_matrix],
                     "tensor_maps": [list(t.dim) for t in lay.tensor_map],
                     "param_split_shape": [list(p.dim) for p in lay.param_split_shape],
                     "field": lay.field, "opt_weight_shard_step": lay.opt_weight_shard_step,
                     "opt_weight_shard_size": lay.opt_weight_shard_size}
    return {"layouts": out}


def h_ms_merge_sliced(req):
    """{"op": "ms_merge_sliced", "slices": [entry...], "strategy_path": path | null}
    -> {"merged": entry description} (mindspore.merge_sliced_parameter)."""
    m = ms()
    params = [entry_parameter(e) for e in req["slices"]]
    strategy = None
    if req.get("strategy_path"):
        strategy = m.parallel.build_searched_strategy(req["strategy_path"])
    merged = m.merge_sliced_parameter(params, strategy)
    return {"merged": describe_value(merged.name, merged, req.get("inline_limit", 8 << 20))}


HANDLERS.update({
    "ms_parallel": h_ms_parallel,
    "ms_strategy_write": h_ms_strategy_write,
    "ms_strategy_read": h_ms_strategy_read,
    "ms_merge_sliced": h_ms_merge_sliced,
})


def dispatch(req):
    try:
        fn = HANDLERS[req["op"]]
    except KeyError:
        return {"ok": False, "error_type": "KeyError",
                "error": f"unknown op {req.get('op')!r}; known: {sorted(HANDLERS)}"}
    t0 = time.time()
    try:
        out = fn(req)
    except BaseException as e:  # noqa: BLE001
        return {"ok": False, "error_type": type(e).__name__, "error": str(e),
                "traceback": traceback.format_exc()}
    out["ok"] = True
    out["seconds"] = round(time.time() - t0, 3)
    return out


def main(argv):
    _setup_fds()
    if "--serve" in argv:
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
            except ValueError as e:
                _reply({"ok": False, "error_type": "JSONDecodeError", "error": str(e)})
                continue
            _reply(dispatch(req))
        return 0
    _reply(dispatch(json.loads(sys.stdin.read())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
