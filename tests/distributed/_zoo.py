"""The parameter zoo of the distributed tests: names, shapes, dtypes and placements.

Shapes use 24 (divisible by 1, 2, 3, 4, 6 and 8), so every world size of the tests splits
them evenly.  ``"S<d>"`` is ``Shard(d)``, ``"R"`` is ``Replicate()``, one per mesh dimension.
"""

from __future__ import annotations

from typing import Any

from _harness import full_tensor

ZOO_1D = [
    ("w_row", (24, 6), "float32", ["S0"]),
    ("w_col", (6, 24), "float32", ["S1"]),
    ("bias", (24,), "float32", ["R"]),
    ("emb", (24, 4), "bfloat16", ["S0"]),
    ("ids", (24,), "int32", ["S0"]),
]
ZOO_2D = [
    ("a", (24, 24), "float32", ["S0", "S1"]),
    ("b", (24, 6), "float32", ["R", "S0"]),
    ("c", (24, 6), "float32", ["S0", "S0"]),
    ("d", (6, 24), "float16", ["R", "R"]),
    ("e", (24,), "bfloat16", ["S0", "R"]),
]


def mesh_shape(world: int, kind: str) -> tuple[int, ...]:
    if kind == "1d":
        return (world,)
    return (2, world // 2)


def make_mesh(world: int, kind: str) -> Any:
    from torch.distributed.device_mesh import init_device_mesh

    shape = mesh_shape(world, kind)
    names = ("x",) if kind == "1d" else ("dp", "tp")
    return init_device_mesh("cpu", shape, mesh_dim_names=names)


def placements(spec: list[str]) -> list[Any]:
    from torch.distributed.tensor import Replicate, Shard

    return [Replicate() if s == "R" else Shard(int(s[1:])) for s in spec]


def zoo(kind: str, same_names_as: str | None = None) -> list[tuple]:
    """The zoo of a mesh kind; with ``same_names_as`` the names of the other kind's zoo are
    kept and only the placements change (a real reshard on load)."""
    z = ZOO_1D if kind == "1d" else ZOO_2D
    if same_names_as is None or same_names_as == kind:
        return z
    other = ZOO_1D if same_names_as == "1d" else ZOO_2D
    out = []
    for i, (name, shape, dtype, _p) in enumerate(other):
        spec = z[i % len(z)][3]
        out.append((name, shape, dtype, _fit(spec, len(shape))))
    return out


def _fit(spec: list[str], ndim: int) -> list[str]:
    return [s if s == "R" or int(s[1:]) < ndim else "S0" for s in spec]


def full_state(entries: list[tuple]) -> dict[str, Any]:
    import torch

    out = {name: full_tensor(name, shape, dtype) for name, shape, dtype, _p in entries}
    out["step"] = torch.tensor(7, dtype=torch.int64)
    return out


def dtensor_state(mesh: Any, entries: list[tuple], zeros: bool = False) -> dict[str, Any]:
    import torch
    from torch.distributed.tensor import distribute_tensor

    out: dict[str, Any] = {}
    for name, shape, dtype, spec in entries:
        t = full_tensor(name, shape, dtype)
        if zeros:
            t = torch.zeros_like(t)
        out[name] = distribute_tensor(t, mesh, placements(spec))
    out["step"] = torch.tensor(0 if zeros else 7, dtype=torch.int64)
    return out
