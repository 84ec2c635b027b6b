"""Generate the golden files in tests/golden/files/ with REAL MindSpore 2.10.0.

Run with the MindSpore venv's python (NOT the library venv), from any directory other than
site-packages/mindspore:

    GLOG_v=3 /work/msvenv/bin/python tests/golden/make_golden.py

It (re)writes tests/golden/files/*.ckpt|*.safetensors and tests/golden/files/manifest.json.
Every file is loaded back with MindSpore and compared with the expectations written to the
manifest; the expectations are computed from the inputs and the documented conversion rules
(spec format-spec.md / api-behavior.md), not from MindSpore's own answer, so the run fails
(exit 1) if MindSpore disagrees with the spec.

Encrypted files (random IVs) and safetensors (random metadata key order) differ from run to
run; everything else is byte-reproducible.

Manifest layout (all byte strings are lowercase hex of raw little-endian C-order data):

    {"provenance": {...},
     "files": {"<file name>": {
        "call": "mindspore.save_checkpoint(...)"  (text; how the file was made),
        "function": "save_checkpoint", "kwargs": {...JSON-able kwargs, keys as hex...},
        "size": int, "sha256": hex,
        "format": "ckpt" | "safetensors",
        "encryption": null | {"mode": "AES-GCM", "key_hex": "...", "plaintext_of": "<file>"},
        "crc": null | {"crc32": int, "trailer_hex": "..."}            (ckpt, crc_check=True)
        "records": [...]   raw protobuf records in file order (plaintext ckpt only):
                           {"name", "dtype", "dims", "nbytes", "sha256", "hex"?}
        "load_kwargs": {...}  kwargs for load_checkpoint (dec_key as "dec_key_hex"),
        "entries": [...]   what load_checkpoint returns, in order:
                           {"name", "dtype", "shape", "nbytes", "sha256", "hex"?}
                           or {"name", "dtype": "str", "value": "..."}
                           ("hex" present when nbytes <= 4096, sha256 always)
        "load_error": null | {"error_type", "error"}  (expected failure; path shown as {path})
        "safetensors": {"header": {...parsed JSON header...}, "metadata": {...}}
        "notes": "..."}}}
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
OUT = os.path.join(HERE, "files")
sys.path.insert(0, os.path.join(REPO, "tools", "ms_oracle"))

os.environ.setdefault("GLOG_v", "3")
os.chdir(tempfile.mkdtemp(prefix="mindckpt_golden_"))  # never run inside site-packages

import numpy as np  # noqa: E402
import mindspore as ms  # noqa: E402
from mindspore import Parameter, Tensor  # noqa: E402

import worker  # noqa: E402  (tools/ms_oracle/worker.py: LeNet5 / ordering cell definitions)

worker.ms()

INLINE = 4096
FAILURES: list[str] = []
MANIFEST: dict = {}
OBSERVATIONS: dict = {}

NP = {  # MindSpore name -> numpy dtype of the raw content
    "Float16": "<f2", "Float32": "<f4", "Float64": "<f8", "BFloat16": "<u2",
    "Int8": "i1", "Int16": "<i2", "Int32": "<i4", "Int64": "<i8",
    "UInt8": "u1", "UInt16": "<u2", "UInt32": "<u4", "UInt64": "<u8", "Bool": "?",
}


# ----------------------------------------------------------------------------- helpers

class Ent:
    """An expected entry: name, MindSpore dtype name, shape, raw bytes (or a str value)."""

    def __init__(self, name, dtype, shape=(), raw=b"", value=None):
        self.name, self.dtype, self.shape = name, dtype, tuple(shape)
        self.raw, self.value = bytes(raw), value

    @classmethod
    def arr(cls, name, dtype, a):
        a = np.array(a, copy=True, order="C")  # keeps 0-d (ascontiguousarray would not)
        return cls(name, dtype, a.shape, a.tobytes())

    @classmethod
    def s(cls, name, value):
        return cls(name, "str", value=value)

    def tensor(self):
        if self.dtype == "BFloat16":
            u16 = np.frombuffer(self.raw, "<u2").reshape(self.shape)
            return Tensor((u16.astype(np.uint32) << 16).view(np.float32)).astype(ms.bfloat16)
        return Tensor(np.frombuffer(self.raw, NP[self.dtype]).reshape(self.shape).copy())

    def param(self):
        return Parameter(self.tensor(), name=self.name)

    def json(self):
        if self.dtype == "str":
            return {"name": self.name, "dtype": "str", "value": self.value}
        d = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape),
             "nbytes": len(self.raw), "sha256": hashlib.sha256(self.raw).hexdigest()}
        if len(self.raw) <= INLINE:
            d["hex"] = self.raw.hex()
        return d

    def record(self):
        """The raw protobuf record MindSpore is expected to write for this entry."""
        if self.dtype == "str":
            raw = np.array(self.value).tobytes()
            d = {"name": self.name, "dtype": "str", "dims": [0], "nbytes": len(raw),
                 "sha256": hashlib.sha256(raw).hexdigest(), "hex": raw.hex()}
            return d
        d = self.json()
        d.pop("shape")
        d["dims"] = list(self.shape)
        return d


def bf16_bits(f32):
    """float32 -> bfloat16 bits, round to nearest even (no NaN inputs)."""
    b = np.asarray(f32, np.float32).view(np.uint32).astype(np.uint64)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype("<u2")


def varint(buf, i):
    shift = res = 0
    while True:
        c = buf[i]
        i += 1
        res |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return res, i


def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        fno, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"wire type {wt}")
        yield fno, wt, v


def parse_records(body):
    """Minimal protobuf reader: list of record dicts (one per Checkpoint.value) in file order.
    Also checks that each top-level Checkpoint message holds exactly one value (spec §2.1)."""
    out = []
    for fno, wt, val in fields(body):
        assert fno == 1 and wt == 2, (fno, wt)
        name = None
        dims, dtype, content = [], None, b""
        for f2, _, v2 in fields(val):
            if f2 == 1:
                name = bytes(v2).decode("utf-8")
            elif f2 == 2:
                for f3, _, v3 in fields(v2):
                    if f3 == 1:
                        dims.append(v3)
                    elif f3 == 2:
                        dtype = bytes(v3).decode()
                    elif f3 == 3:
                        content = bytes(v3)
        d = {"name": name, "dtype": dtype, "dims": dims, "nbytes": len(content),
             "sha256": hashlib.sha256(content).hexdigest()}
        if len(content) <= INLINE:
            d["hex"] = content.hex()
        out.append(d)
    return out


def ms_entries(d):
    out = []
    for k, v in d.items():
        if isinstance(v, str):
            out.append({"name": k, "dtype": "str", "value": v})
            continue
        raw = worker.tensor_raw(v)
        e = {"name": k, "dtype": str(v.dtype), "shape": [int(x) for x in v.shape],
             "nbytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
        if len(raw) <= INLINE:
            e["hex"] = raw.hex()
        out.append(e)
    return out


def check(fname, what, got, want):
    if got != want:
        FAILURES.append(fname + ": " + what)
        print(f"MISMATCH {fname} {what}\n  got:  {json.dumps(got)[:2000]}\n  want: "
              f"{json.dumps(want)[:2000]}", file=sys.stderr)
        return False
    return True


def path(fname):
    return os.path.join(OUT, fname)


def file_info(fname):
    with open(path(fname), "rb") as f:
        data = f.read()
    os.chmod(path(fname), 0o644)  # MindSpore leaves 0400; keep the tree editable
    return data, {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def ms_load(fname, **kw):
    return ms.load_checkpoint(path(fname), **kw)


def load_kwargs_json(kw):
    out = dict(kw)
    if "dec_key" in out:
        out["dec_key_hex"] = out.pop("dec_key").hex()
    return out


def save_ckpt(fname, save_obj, call, expected, *, records=None, kwargs=None, load_kw=None,
              notes=None, enc=None, crc=False, plaintext_of=None, load_error=None):
    """Save with MindSpore, then verify records (our parser) and load result (MindSpore)."""
    kwargs = dict(kwargs or {})
    ms.save_checkpoint(save_obj, path(fname), **kwargs)
    data, info = file_info(fname)
    m = {"call": call, "function": "save_checkpoint", "format": "ckpt",
         "kwargs": {k: (v.hex() if isinstance(v, bytes) else v) for k, v in kwargs.items()
                    if k != "append_dict"},
         **info, "encryption": None, "crc": None}
    body = data
    if crc:
        tr = data[-17:]
        body = data[:-17]
        crc32 = zlib.crc32(body) if not enc else 0
        check(fname, "crc trailer", tr.hex(), (b"crc_num" + crc32.to_bytes(10, "big")).hex())
        m["crc"] = {"crc32": crc32, "trailer_hex": tr.hex()}
    if enc:
        m["encryption"] = {"mode": enc[0], "key_hex": enc[1].hex(), "plaintext_of": plaintext_of}
        # framing sanity: one block, sizes per spec §7.2
        plain_len = MANIFEST[plaintext_of]["size"]
        want = 48 + plain_len if enc[0] == "AES-GCM" else 32 + (plain_len // 16 + 1) * 16
        check(fname, "encrypted size", len(body), want)
        magic = {"AES-GCM": "d85e3a7f", "AES-CBC": "d95e3a7f", "SM4-CBC": "da5e3a7f"}[enc[0]]
        check(fname, "magic", data[:4].hex(), magic)
    elif expected is not None:
        recs = parse_records(body)
        want_recs = records if records is not None else [e.record() for e in expected]
        check(fname, "records", recs, want_recs)
        m["records"] = recs
    m["load_kwargs"] = load_kwargs_json(load_kw or {})
    if load_error:
        try:
            ms_load(fname, **(load_kw or {}))
        except Exception as e:  # noqa: BLE001
            got = {"error_type": type(e).__name__,
                   "error": str(e).replace(os.path.realpath(path(fname)), "{path}")}
            want_err = dict(load_error)
            if want_err.get("error") is None:  # only the type is fixed by the spec
                want_err["error"] = got["error"]
            check(fname, "load error", got, want_err)
            m["load_error"] = got
        else:
            check(fname, "load error", "loaded", load_error)
        m["entries"] = None
    else:
        got = ms_entries(ms_load(fname, **(load_kw or {})))
        want = [e.json() for e in expected]
        check(fname, "entries", got, want)
        m["entries"] = want
        m["load_error"] = None
    if notes:
        m["notes"] = notes
    MANIFEST[fname] = m
    return data


# ----------------------------------------------------------------------------- contents

rng = np.random.default_rng(20250610)


def all_dtypes():
    E = []
    f = rng.standard_normal
    E.append(Ent.arr("f16", "Float16", (f((2, 3)) * 4).astype("<f2")))
    E.append(Ent.arr("f32", "Float32", f((2, 3, 4)).astype("<f4")))
    E.append(Ent.arr("f64", "Float64", np.array(np.pi, "<f8")))
    E.append(Ent("bf16", "BFloat16", (2, 3), bf16_bits(f((2, 3)) * 10).tobytes()))
    for name, dt, shape in [("i8", "Int8", (1,)), ("i16", "Int16", ()), ("i32", "Int32", (2, 3)),
                            ("i64", "Int64", (2, 3, 4)), ("u8", "UInt8", (5,)),
                            ("u16", "UInt16", ()), ("u32", "UInt32", (1,)),
                            ("u64", "UInt64", (2, 2))]:
        info = np.iinfo(NP[dt])
        a = rng.integers(info.min, info.max, size=shape, dtype=NP[dt], endpoint=True)
        E.append(Ent.arr(name, dt, np.asarray(a, NP[dt])))
    E.append(Ent.arr("bool", "Bool", rng.integers(0, 2, (2, 3)).astype("?")))
    sp = np.array([np.inf, -np.inf, np.nan, -0.0, 1e-45, 3.4e38], "<f4")
    E.append(Ent.arr("f32_special", "Float32", sp))
    E.append(Ent.arr("f32_scalar", "Float32", np.array(1.5, "<f4")))
    E.append(Ent.arr("i64_extremes", "Int64", np.array([-2**63, 2**63 - 1], "<i8")))
    E.append(Ent.arr("u64_max", "UInt64", np.array([2**64 - 1], "<u8")))
    # 1.005859375 rounds to 0x3F81 (ties-to-even edge), 3.4e38 -> +inf per spec §4.2; we give bits
    E.append(Ent("bf16_scalar", "BFloat16", (), bf16_bits(np.float32(-2.5)).tobytes()))
    E.append(Ent.arr("f16_1", "Float16", np.array([65504.0], "<f2")))
    return E


ALL = all_dtypes()
class _LdCall:
    @staticmethod
    def format(file, kw):
        return ("mindspore.save_checkpoint([{'name': n, 'data': Tensor(a)} ...], '" + file + "'"
                + kw + ")  # BFloat16 via Tensor(float32).astype(mindspore.bfloat16)")


LD_CALL = _LdCall()


def list_dict(entries):
    return [{"name": e.name, "data": e.tensor()} for e in entries]


def main():
    # ---- plain / crc all dtypes
    save_ckpt("plain_all_dtypes.ckpt", list_dict(ALL),
              LD_CALL.format(file="plain_all_dtypes.ckpt", kw=""), ALL)
    plain = open(path("plain_all_dtypes.ckpt"), "rb").read()
    crc_data = save_ckpt("crc_all_dtypes.ckpt", list_dict(ALL),
                         LD_CALL.format(file="crc_all_dtypes.ckpt", kw=", crc_check=True"), ALL,
                         kwargs={"crc_check": True}, crc=True, load_kw={"crc_check": True},
                         notes="= plain_all_dtypes.ckpt + b'crc_num' + crc32(body) as 10-byte BE")
    check("crc_all_dtypes.ckpt", "plain prefix", crc_data[:-17] == plain, True)

    # ---- scalars + append_dict
    w = Ent.arr("w", "Float32", rng.standard_normal((2, 3)).astype("<f4"))
    b = Ent.arr("b", "Int32", np.array([1, -2, 3], "<i4"))
    t = Ent.arr("t", "Int32", np.array([7, -8], "<i4"))
    tp = Ent.arr("tp", "Float16", np.array([0.5, -1.25], "<f2"))
    gen = ms.Generator()
    gen.manual_seed(42)
    append = {"epoch_num": 5, "neg": -7, "big": 2**62, "u64": 2**63 + 5, "lr": 0.01,
              "f64": np.float64(0.1), "flag": True, "flag_false": False, "s": "hello",
              "uni": "h\u00e9llo \u20ac\U0001D11E", "empty": "", "t": t.tensor(),
              "tp": Parameter(tp.tensor(), name="other_name"), "gen": gen}
    append_exp = [
        Ent.arr("epoch_num", "Int64", np.array(5, "<i8")),
        Ent.arr("neg", "Int64", np.array(-7, "<i8")),
        Ent.arr("big", "Int64", np.array(2**62, "<i8")),
        Ent.arr("u64", "UInt64", np.array(2**63 + 5, "<u8")),
        Ent.arr("lr", "Float32", np.array(0.01, "<f4")),
        Ent.arr("f64", "Float64", np.array(0.1, "<f8")),
        Ent.arr("flag", "Bool", np.array(True)),
        Ent.arr("flag_false", "Bool", np.array(False)),
        Ent.s("s", "hello"), Ent.s("uni", "h\u00e9llo \u20ac\U0001D11E"), Ent.s("empty", ""),
        t, tp,
        Ent("gen", "UInt8", (16,), bytes([42] + [0] * 15)),
    ]
    app_call = ("mindspore.save_checkpoint([Parameter(w, name='w'), Parameter(b, name='b')], "
                "'{file}', append_dict={{'epoch_num': 5, 'neg': -7, 'big': 2**62, "
                "'u64': 2**63+5, 'lr': 0.01, 'f64': numpy.float64(0.1), 'flag': True, "
                "'flag_false': False, 's': 'hello', 'uni': 'h\\u00e9llo \\u20ac\\U0001D11E', "
                "'empty': '', 't': Tensor(int32 [7,-8]), 'tp': Parameter(float16 [0.5,-1.25], "
                "name='other_name'), 'gen': Generator().manual_seed(42)}}{kw})")
    for fname, kw, crc in [("plain_scalars_append.ckpt", {}, False),
                           ("crc_scalars_append.ckpt", {"crc_check": True}, True)]:
        save_ckpt(fname, [w.param(), b.param()],
                  app_call.format(file=fname, kw=", crc_check=True" if crc else ""),
                  [w, b] + append_exp, kwargs=dict(kw, append_dict=append), crc=crc,
                  load_kw=dict(kw),
                  notes="append_dict: int->Int64 (), int>=2**63->UInt64 (), float->Float32 (), "
                        "np.float64->Float64 (), bool->Bool (), str->'str' dims [0] UTF-32-LE "
                        "('' stored as 4 zero bytes), Tensor/Parameter keep dtype under the dict "
                        "key, Generator->its UInt8 (16,) state")

    # ---- LeNet5
    lenet_call = ("mindspore.set_seed(1); net = LeNet5()  # canonical docs LeNet5 (conv1 "
                  "Conv2d(1,6,5,'valid'), conv2 Conv2d(6,16,5,'valid'), fc1 Dense(400,120), fc2 "
                  "Dense(120,84), fc3 Dense(84,10)); mindspore.save_checkpoint(net, '{file}'{kw})")
    for fname, kw, crc in [("lenet.ckpt", {}, False), ("lenet_crc.ckpt", {"crc_check": True}, True)]:
        net = worker.build_cell({"cell": "lenet", "seed": 1})
        exp = [Ent(p.name, str(p.dtype), p.shape, worker.tensor_raw(p))
               for _, p in net.parameters_and_names()]
        save_ckpt(fname, net, lenet_call.format(file=fname, kw=", crc_check=True" if crc else ""),
                  exp, kwargs=kw, crc=crc, load_kw=kw,
                  notes="values depend on mindspore.set_seed(1) initialisers; only sha256 for "
                        "tensors > 4096 bytes")
    check("lenet", "same params", MANIFEST["lenet.ckpt"]["entries"],
          MANIFEST["lenet_crc.ckpt"]["entries"])
    check("lenet", "names/shapes",
          [(e["name"], e["shape"]) for e in MANIFEST["lenet.ckpt"]["entries"]],
          [("conv1.weight", [6, 1, 5, 5]), ("conv2.weight", [16, 6, 5, 5]),
           ("fc1.weight", [120, 400]), ("fc1.bias", [120]), ("fc2.weight", [84, 120]),
           ("fc2.bias", [84]), ("fc3.weight", [10, 84]), ("fc3.bias", [10])])

    # ---- cell ordering / naming
    cell = worker.make_ordering_cell()
    exp = [Ent(p.name, "Float32", p.shape, worker.tensor_raw(p))
           for _, p in cell.parameters_and_names()]
    save_ckpt("cell_order.ckpt", cell,
              "mindspore.save_checkpoint(Top(), 'cell_order.ckpt')  # Top = "
              "tools/ms_oracle/worker.py make_ordering_cell()", exp,
              notes="Top attrs in definition order: first=Parameter(name='first'), sub_a=Sub(), "
                    "mid=Parameter(name='top_explicit'), unnamed=Parameter(name=None), "
                    "emptyname=Parameter(name=''), sub_b=Dense(1,1), last=Parameter(name='last')"
                    "; Sub attrs: w=Parameter(name='explicit_sub_name'), inner=Dense(2,1), "
                    "b=Parameter(name=None), e=Parameter(name=''). Own Parameters come before "
                    "sub-cells; inside sub-cells the attribute path wins over explicit names; "
                    "at top level explicit names are kept, None/'' become the attribute name.")
    check("cell_order.ckpt", "order",
          [e["name"] for e in MANIFEST["cell_order.ckpt"]["entries"]],
          ["first", "top_explicit", "unnamed", "emptyname", "last", "sub_a.w", "sub_a.b",
           "sub_a.e", "sub_a.inner.weight", "sub_a.inner.bias", "sub_b.weight", "sub_b.bias"])

    # ---- empty
    empty_err = {"error_type": "ValueError",
                 "error": "The loaded parameter dict is empty after filter or specify, please "
                          "check whether 'filter_prefix' or 'specify_prefix' are set correctly."}
    save_ckpt("empty.ckpt", {}, "mindspore.save_checkpoint({}, 'empty.ckpt')", [],
              load_error=empty_err, notes="0-byte file; load_checkpoint rejects it")
    check("empty.ckpt", "size", MANIFEST["empty.ckpt"]["size"], 0)
    save_ckpt("empty_crc.ckpt", {}, "mindspore.save_checkpoint({}, 'empty_crc.ckpt', "
              "crc_check=True)", [], kwargs={"crc_check": True}, crc=True,
              load_error=empty_err, notes="17 bytes: b'crc_num' + ten 00")

    # ---- names
    names = ["", "\u00e9", "\u65e5\u672c\u8a9e", "\U0001F642", "a.b/c", " lead and trail ",
             "tab\tnl\n", "\U0001F642" * 1024]
    nents = [Ent.arr(n, "Int32", np.array([i], "<i4")) for i, n in enumerate(names)]
    save_ckpt("names_unicode.ckpt", list_dict(nents),
              "mindspore.save_checkpoint([{'name': n, 'data': Tensor(int32 [i])} for i, n in "
              "enumerate(['', 'é', '日本語', '🙂', 'a.b/c', ' lead and trail ', 'tab\\tnl\\n', "
              "'🙂'*1024])], 'names_unicode.ckpt')", nents,
              notes="names verbatim UTF-8; 1024 characters (4096 bytes) still loads")
    long = Ent.arr("n" * 1025, "Int32", np.array([1], "<i4"))
    save_ckpt("names_too_long.ckpt", list_dict([long]),
              "mindspore.save_checkpoint([{'name': 'n'*1025, 'data': Tensor(int32 [1])}], "
              "'names_too_long.ckpt')", [long],
              load_error={"error_type": "ValueError", "error": None},
              notes="MindSpore writes it but cannot load a name longer than 1024 characters")

    # ---- duplicates
    a1 = Ent.arr("a", "Float32", np.array([1, 2], "<f4"))
    bb = Ent.arr("b", "Int32", np.array([3], "<i4"))
    a2 = Ent.arr("a", "Float32", np.array([9, 9, 9], "<f4"))
    c = Ent.arr("c", "Float32", np.array(1.5, "<f4"))
    dup_exp = [a2, Ent.arr("b", "Int64", np.array(7, "<i8")), c]
    save_ckpt("duplicates.ckpt", list_dict([a1, bb, a2]),
              "mindspore.save_checkpoint([{'name':'a','data':f32[1,2]}, {'name':'b','data':"
              "i32[3]}, {'name':'a','data':f32[9,9,9]}], 'duplicates.ckpt', append_dict={'b': 7, "
              "'c': 1.5})", dup_exp, kwargs={"append_dict": {"b": 7, "c": 1.5}},
              notes="duplicate names: first position, last value; one record each")

    # ---- encrypted
    keys = {16: bytes(range(16)), 24: bytes(range(100, 124)), 32: bytes(range(200, 232))}
    for mode, tag, klens in [("AES-GCM", "aes_gcm", (16, 24, 32)), ("AES-CBC", "aes_cbc", (16, 24, 32)),
                             ("SM4-CBC", "sm4_cbc", (16,))]:
        for kl in klens:
            fname = f"enc_{tag}_k{kl}.ckpt"
            save_ckpt(fname, list_dict(ALL),
                      LD_CALL.format(file=fname, kw=f", enc_key=bytes.fromhex('{keys[kl].hex()}')"
                                     f", enc_mode='{mode}'"),
                      ALL, kwargs={"enc_key": keys[kl], "enc_mode": mode},
                      enc=(mode, keys[kl]), plaintext_of="plain_all_dtypes.ckpt",
                      load_kw={"dec_key": keys[kl], "dec_mode": mode},
                      notes="plaintext = plain_all_dtypes.ckpt bytes; one block; random IV")
    fname = "enc_crc_aes_gcm_k16.ckpt"
    save_ckpt(fname, list_dict(ALL),
              LD_CALL.format(file=fname, kw=f", enc_key=bytes.fromhex('{keys[16].hex()}'), "
                             "crc_check=True"),
              ALL, kwargs={"enc_key": keys[16], "crc_check": True}, crc=True,
              enc=("AES-GCM", keys[16]), plaintext_of="plain_all_dtypes.ckpt",
              load_kw={"dec_key": keys[16]},
              load_error={"error_type": "ValueError",
                          "error": "Failed to read the checkpoint file {path}. The file may be "
                                   "encrypted or tempered with, please pass in the correct "
                                   "'dec_key' or check the file integrity."},
              notes="enc + crc: clear trailer crc_num + ten 00 after the block; MindSpore cannot "
                    "load it; dropping the last 17 bytes gives a valid AES-GCM file")

    # ---- safetensors
    st = [e for e in ALL if e.dtype not in ("BFloat16",) and not e.name.endswith("_special")]
    st.append(Ent("zero_size", "Float32", (0, 3), b""))
    st_sorted = sorted(st, key=lambda e: e.name)
    st_dict = lambda ents: {e.name: e.param() for e in ents}  # noqa: E731
    save_st("st_basic.safetensors", st_dict(st), {}, st_sorted, {"format": "ms"},
            "mindspore.save_checkpoint({name: Parameter(...)}, 'st_basic.safetensors', "
            "format='safetensors')  # the all-dtypes content minus BFloat16/f32_special, "
            "plus zero_size float32 (0,3)")
    ep = Ent.arr("epoch_num", "Int64", np.array(5, "<i8"))
    lr = Ent.arr("lr", "Float32", np.array(0.5, "<f4"))
    def neg_int_scalar(e):
        return (e.shape == () and e.dtype.startswith("Int")
                and int(np.frombuffer(e.raw, NP[e.dtype])[0]) < 0)
    st_c = [e for e in st if not neg_int_scalar(e)]  # MindSpore's CRC fails on those (below)
    st2 = sorted(st_c + [ep, lr], key=lambda e: e.name)
    crc = 0
    for e in st2:  # MindSpore's CRC: sorted names, crc32(name) then crc32(bytes(ndarray))
        arr = np.frombuffer(e.raw, NP[e.dtype]).reshape(e.shape)
        crc = zlib.crc32(e.name.encode("utf-8"), crc)
        crc = zlib.crc32(bytes(arr), crc)
    real = 0
    for e in st2:
        real = zlib.crc32(e.raw, zlib.crc32(e.name.encode("utf-8"), real))
    save_st("st_crc.safetensors", st_dict(st_c), {"crc_check": True,
            "append_dict": {"epoch_num": 5, "lr": 0.5}}, st2,
            {"format": "ms", "crc_num": str(crc)},
            "mindspore.save_checkpoint({...st_basic...}, 'st_crc.safetensors', "
            "format='safetensors', crc_check=True, append_dict={'epoch_num': 5, 'lr': 0.5})",
            load_kw={"crc_check": True},
            extra={"crc_rule": "sorted names; crc=crc32(name.utf8, crc); crc=crc32(bytes(ndarray),"
                               " crc); bytes() of a 0-d INTEGER ndarray is value-many zero bytes",
                   "crc_over_real_bytes": real})
    # negative integer scalar + crc_check: MindSpore's own save fails (spec §15 errata)
    try:
        ms.save_checkpoint({"neg": Parameter(Tensor(np.array(-3, np.int64)), name="neg")},
                           os.path.join(os.getcwd(), "neg.safetensors"), format="safetensors",
                           crc_check=True)
        got = {"error_type": None, "error": None}
    except Exception as e:  # noqa: BLE001
        got = {"error_type": type(e).__name__, "error": str(e)}
    check("observations", "st crc negative scalar", got,
          {"error_type": "ValueError", "error": "negative count"})
    OBSERVATIONS["safetensors_crc_negative_int_scalar"] = {
        "call": "mindspore.save_checkpoint({'neg': Parameter(Tensor(np.array(-3, np.int64)))}, "
                "'neg.safetensors', format='safetensors', crc_check=True)", **got}
    # BFloat16 cannot go to safetensors with this numpy (spec §12); record what happens
    try:
        ms.save_checkpoint([{"name": "bf", "data": ALL[3].tensor()}],
                           os.path.join(os.getcwd(), "bf.safetensors"), format="safetensors")
        got = {"error_type": None, "error": None}
    except Exception as e:  # noqa: BLE001
        got = {"error_type": type(e).__name__, "error": str(e).splitlines()[0]}
    check("observations", "bf16 safetensors", got["error_type"], "TypeError")
    OBSERVATIONS["safetensors_bfloat16_save"] = {
        "call": "mindspore.save_checkpoint([{'name': 'bf', 'data': bf16 Tensor}], "
                "'bf.safetensors', format='safetensors')", **got}
    rr = [Ent.arr("w", "Float32", np.arange(6, dtype="<f4").reshape(2, 3)), ep, lr,
          Ent.arr("flag", "Bool", np.array(True))]
    save_st("st_remove_redundancy.safetensors", st_dict([rr[0]]),
            {"remove_redundancy": True, "append_dict": {"epoch_num": 5, "lr": 0.5, "flag": True}},
            sorted(rr, key=lambda e: e.name), {"format": "ms", "remove_redundancy": "True"},
            "mindspore.save_checkpoint({'w': Parameter(arange(6).reshape(2,3) f32)}, "
            "'st_remove_redundancy.safetensors', format='safetensors', remove_redundancy=True, "
            "append_dict={'epoch_num': 5, 'lr': 0.5, 'flag': True})")


ST_CODE = {"Float16": "F16", "Float32": "F32", "Float64": "F64", "BFloat16": "BF16",
           "Int8": "I8", "Int16": "I16", "Int32": "I32", "Int64": "I64", "UInt8": "U8",
           "UInt16": "U16", "UInt32": "U32", "UInt64": "U64", "Bool": "BOOL"}
ST_RANK = ["U64", "I64", "F64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16", "I8", "U8",
           "BOOL"]


def save_st(fname, save_obj, kwargs, expected, metadata, call, load_kw=None, extra=None):
    ms.save_checkpoint(save_obj, path(fname), format="safetensors", **kwargs)
    data, info = file_info(fname)
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    md = header.pop("__metadata__", None)
    check(fname, "metadata", md, metadata)
    check(fname, "header padding", (8 + n) % 8, 0)
    # layout per spec §8.1: dtype rank, then name; JSON in offset order
    order = sorted(expected, key=lambda e: (ST_RANK.index(ST_CODE[e.dtype]), e.name))
    want_hdr, off = {}, 0
    for e in order:
        want_hdr[e.name] = {"dtype": ST_CODE[e.dtype], "shape": list(e.shape),
                            "data_offsets": [off, off + len(e.raw)]}
        off += len(e.raw)
    check(fname, "header", list(header.items()), list(want_hdr.items()))
    check(fname, "data", data[8 + n:].hex(), b"".join(e.raw for e in order).hex())
    got = ms_entries(ms.load_checkpoint(path(fname), format="safetensors", **(load_kw or {})))
    want = [e.json() for e in expected]
    check(fname, "entries", got, want)
    m = {"call": call, "function": "save_checkpoint", "format": "safetensors",
         "kwargs": {k: v for k, v in kwargs.items() if k != "append_dict"} | {"format": "safetensors"},
         **info, "encryption": None, "crc": None,
         "load_kwargs": dict(load_kw or {}, format="safetensors"), "entries": want,
         "load_error": None, "safetensors": {"header": {"__metadata__": md, **header},
                                             "metadata": md},
         "notes": "__metadata__ key order is not deterministic; load returns sorted names"}
    if extra:
        m.update(extra)
    MANIFEST[fname] = m


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith((".ckpt", ".safetensors", ".tmp")):
            os.chmod(os.path.join(OUT, f), 0o644)
            os.remove(os.path.join(OUT, f))
    main()
    # names_too_long: error text contains the name-length message; keep what MindSpore says
    prov = {
        "mindspore": ms.__version__, "numpy": np.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "GLOG_v=3 /work/msvenv/bin/python tests/golden/make_golden.py",
        "install": "python3 -m venv /work/msvenv && /work/msvenv/bin/pip install mindspore==2.10.0",
    }
    with open(os.path.join(OUT, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"provenance": prov, "files": MANIFEST, "observations": OBSERVATIONS}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, x)) for x in os.listdir(OUT))
    print(f"{len(MANIFEST)} golden files, {total} bytes total (incl. manifest)")
    if FAILURES:
        print("FAILURES:\n  " + "\n  ".join(FAILURES), file=sys.stderr)
        sys.exit(1)
    print("all golden files verified against MindSpore", ms.__version__)
