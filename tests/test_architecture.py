"""The structure the project promises: no import cycles, one home per fact."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import mindckpt

SRC = Path(mindckpt.__file__).parent


def _modules() -> dict[str, Path]:
    mods = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for m, p in mods.items():
        deps: set[str] = set()
        pkg = p.name == "__init__.py"
        for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(n, ast.ImportFrom):
                base = m.split(".") if pkg else m.split(".")[:-1]
                if n.level:
                    t = ".".join(base[: len(base) - (n.level - 1)] + ([n.module] if n.module else []))
                else:
                    t = n.module or ""
                deps.update(x for x in [t] + [f"{t}.{a.name}" for a in n.names] if x in mods)
            elif isinstance(n, ast.Import):
                deps.update(a.name for a in n.names if a.name in mods)
            elif isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "import_module":
                if n.args and isinstance(n.args[0], ast.Constant) and n.args[0].value in mods:
                    deps.add(n.args[0].value)
        # a package importing its own submodules (and the reverse) is not a cycle of jobs
        graph[m] = {d for d in deps if d != m and not d.startswith(m + ".")
                    and not m.startswith(d + ".")}
    return graph


def test_no_import_cycle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    assert cycles == [], f"import cycles: {cycles}"


def _grep(pattern: str) -> list[str]:
    rx = re.compile(pattern)
    hits = []
    for p in SRC.rglob("*.py"):
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if rx.search(line):
                hits.append(f"{p.relative_to(SRC)}:{i}")
    return hits


def test_one_home_per_fact():
    # the cipher magic table
    assert len(_grep(r"\\xd8\\x5e\\x3a\\x7f|b\"\\xd8^:\\x7f\"")) <= 1, _grep(r"\\xd8\\x5e")
    # crc_check with enc_key refused in one place
    assert len(_grep(r"cannot be used together with 'enc_key'")) == 1
    # key/mode rule: one function raises the length message
    assert len(_grep(r"def check_cipher_args")) == 1
    assert _grep(r"KEY_LENGTHS\[") == [] or all("codecs/" in h for h in _grep(r"KEY_LENGTHS\["))
    # the async-mode check
    assert len(_grep(r"'async_save' can only be 'process' or 'thread'")) == 1
    # format from a file name's suffix
    assert _grep(r"endswith\(\"\.safetensors\"\)") == []
    # torch <-> numpy conversion
    assert len(_grep(r"def torch_to_numpy")) == 1
    assert len(_grep(r"view\(torch\.int16\)")) <= 1, _grep(r"view\(torch\.int16\)")
    # one error tree
    assert _grep(r"^class \w*(Error|Exception)\(") and all(
        h.startswith("errors.py") or "_" in h.split(":")[0].split("/")[-1][:1]
        for h in _grep(r"^class (CheckpointNotFoundError|StorageError|FormatError)\(")
    )
    assert [h for h in _grep(r"^class CheckpointNotFoundError") if not h.startswith("errors.py")] == []


def test_formats_import_neither_storage_nor_torch():
    graph = _graph()
    for mod, deps in graph.items():
        if mod.startswith("mindckpt.formats"):
            bad = [d for d in deps if d.startswith(("mindckpt.storage", "mindckpt.adapters"))]
            assert bad == [], f"{mod} imports {bad}"
    for p in (SRC / "formats").rglob("*.py"):
        assert "import torch" not in p.read_text(encoding="utf-8"), p
