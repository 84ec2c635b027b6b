"""DTensor placements <-> MindSpore layouts, exactly, both ways; local tensors with layouts.

A DTensor has a ``DeviceMesh`` (a grid of ranks, row-major like MindSpore's device matrix) and
one placement per *mesh* dimension (``Shard(d)``, ``Replicate()``, ``Partial()``).  MindSpore
says, per *tensor* dimension, which device axis splits it, counting axes from the right.  So:

* mesh dimension ``i`` of an ``n``-dimensional mesh is device axis ``n - 1 - i``;
* ``Shard(d)`` on mesh dimension ``i`` puts ``n - 1 - i`` into ``tensor_map[d]``;
* several mesh dimensions sharding the same tensor dimension (``[Shard(0), Shard(0)]``) give a
  nested entry, the first mesh dimension outermost: ``((n - 1), ..., )``, as DTensor splits
  them in mesh order;
* ``Replicate()`` leaves the mesh dimension as a replica axis.

Uneven shards of dimension 0 (DTensor's ``torch.chunk`` pieces: ``ceil(n / k)`` rows each, the
last ones shorter or empty, as FSDP2 makes them for a vocabulary of 50257 on 4 ranks) are
MindSpore's uneven split, ``param_split_shape``, and back.

Refused, with the fix in the message: ``Partial()`` (reduce it first: ``redistribute`` to
``Replicate()``), ``_StridedShard`` (MindSpore's optimizer shard; not translated), uneven shards
of any other dimension (MindSpore can only split dimension 0 unevenly), and meshes whose ranks are not a row-major
block of the world (MindSpore numbers devices row-major).  A sub-mesh of a named root mesh
(``mesh["tp"]`` of a ``("dp", "tp")`` mesh) is mapped into the root's device matrix, the other
root dimensions becoming replica axes.

Plain local tensors are accepted with an explicit ``layouts`` dict: per name a
:class:`~mindckpt.parallel.layout.TensorLayout`, or a MindSpore-style tuple ``(dev_matrix,
tensor_map)`` / mapping ``{"dev_matrix", "tensor_map", "opt_shard_size", "opt_shard_step",
"stages"}``, whose full shape is worked out from the local shape.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from .layout import LayoutError, MapEntry, TensorLayout

__all__ = [
    "is_dtensor",
    "layout_from_placements",
    "layout_from_dtensor",
    "placements_from_layout",
    "chunk_sizes",
    "to_dtensor",
    "coerce_layout",
    "localize",
]


def is_dtensor(x: Any) -> bool:
    """Whether ``x`` is a DTensor (without importing torch.distributed when nobody did)."""
    mod = sys.modules.get("torch.distributed.tensor")
    if mod is None:
        return False
    return isinstance(x, mod.DTensor)


def _placement_kind(p: Any, name: str) -> tuple[str, int]:
    cls = type(p).__name__
    if cls == "Replicate":
        return "replicate", -1
    if cls == "Shard":
        return "shard", int(p.dim)
    if cls == "_StridedShard":
        raise LayoutError(
            f"Parameter '{name}': placement {p} (a strided shard, MindSpore's optimizer shard) "
            "has no exact MindSpore layout in mindckpt; redistribute it to Shard/Replicate "
            "placements before saving.")
    if cls in ("Partial", "_Partial"):
        raise LayoutError(
            f"Parameter '{name}': placement {p} holds partial sums, not slices of one tensor; "
            "reduce it first (dtensor.redistribute(mesh, [Replicate(), ...])).")
    raise LayoutError(f"Parameter '{name}': unknown DTensor placement {p!r}.")


def layout_from_placements(mesh_shape: Sequence[int], placements: Sequence[Any],
                           full_shape: Sequence[int], *, stages: Sequence[int] = (0,),
                           root_shape: Sequence[int] | None = None,
                           mesh_dims_in_root: Sequence[int] | None = None,
                           name: str = "") -> TensorLayout:
    """The MindSpore layout of a tensor of ``full_shape`` placed by ``placements`` on a mesh.

    ``placements`` may be DTensor placement objects or ``("shard", d)`` / ``("replicate",)``
    tuples.  With ``root_shape`` the mesh is the sub-mesh made of dimensions
    ``mesh_dims_in_root`` of a root mesh of that shape (the device matrix is the root's).
    """
    mesh_shape = tuple(int(d) for d in mesh_shape)
    if len(placements) != len(mesh_shape):
        raise LayoutError(f"Parameter '{name}': {len(placements)} placements for a "
                          f"{len(mesh_shape)}-dimensional mesh; give one per mesh dimension.")
    dev = tuple(int(d) for d in (root_shape if root_shape is not None else mesh_shape))
    dims = tuple(mesh_dims_in_root) if mesh_dims_in_root is not None else tuple(
        range(len(mesh_shape)))
    n = len(dev)
    per_dim: list[list[int]] = [[] for _ in full_shape]
    for i, p in enumerate(placements):
        kind, d = (p[0], int(p[1]) if len(p) > 1 else -1) if isinstance(p, tuple) else \
            _placement_kind(p, name)
        if kind == "replicate":
            continue
        if kind != "shard":
            raise LayoutError(f"Parameter '{name}': unknown placement {p!r}.")
        if d < 0:
            d += len(full_shape)
        if not 0 <= d < len(full_shape):
            raise LayoutError(f"Parameter '{name}': Shard({d}) on a tensor of "
                              f"{len(full_shape)} dimensions.")
        axis = n - 1 - dims[i]
        per_dim[d].append(axis)
    tensor_map: list[MapEntry] = []
    for axes in per_dim:
        if not axes:
            tensor_map.append(-1)
        elif len(axes) == 1:
            tensor_map.append(axes[0])
        else:
            tensor_map.append(tuple(axes))
    full = tuple(int(s) for s in full_shape)
    sizes_of = [[dev[n - 1 - k] for k in axes] for axes in per_dim]
    for d in range(1, len(full)):
        if full[d] % math.prod(sizes_of[d]):
            raise LayoutError(
                f"Parameter '{name}': dimension {d} ({full[d]}) is split unevenly over "
                f"{math.prod(sizes_of[d])} ranks; MindSpore layouts can split only dimension 0 "
                "unevenly (param_split_shape). Shard a dimension whose size the mesh divides, "
                "or pad this one.")
    split: tuple[int, ...] = ()
    if full and full[0] % math.prod(sizes_of[0]):
        # DTensor's uneven Shard(0) (torch.chunk pieces, the last ones short or empty) is
        # MindSpore's uneven dim-0 split: one dim-0 size per slice, in slice-index order
        rows = chunk_sizes(full[0], sizes_of[0])
        split = tuple(r for r in rows
                      for _ in range(math.prod(math.prod(z) for z in sizes_of[1:])))
    return TensorLayout(dev, tuple(tensor_map), full, stages=tuple(stages),
                        param_split_shape=split, name=name)


def chunk_sizes(n: int, splits: Sequence[int]) -> list[int]:
    """The sizes DTensor gives the pieces of a dimension of ``n`` sharded by mesh dimensions
    of sizes ``splits`` (outermost first): each split is ``torch.chunk``'s, ``ceil(size / k)``
    per piece, the last ones shorter or empty."""
    sizes = [n]
    for k in splits:
        out = []
        for s in sizes:
            c = -(-s // k)
            out += [max(0, min(c, s - j * c)) for j in range(k)]
        sizes = out
    return sizes


def _mesh_geometry(mesh: Any, name: str) -> dict[str, Any]:
    """Device matrix facts of a DeviceMesh: shape, stage, and root-mesh mapping."""
    ranks = [int(r) for r in mesh.mesh.flatten().tolist()]
    shape = tuple(int(d) for d in mesh.mesh.shape)
    size = len(ranks)
    root = None
    getter = getattr(mesh, "_get_root_mesh", None)
    if getter is not None:
        try:
            root = getter()
        except Exception:  # noqa: BLE001 - torch internals differ between versions
            root = None
    names = getattr(mesh, "mesh_dim_names", None)
    rnames = getattr(root, "mesh_dim_names", None) if root is not None else None
    if root is not None and root is not mesh and names and rnames and \
            all(nm in rnames for nm in names):
        rranks = [int(r) for r in root.mesh.flatten().tolist()]
        if rranks == list(range(len(rranks))):
            return {"mesh_shape": shape, "stages": (0,),
                    "root_shape": tuple(int(d) for d in root.mesh.shape),
                    "mesh_dims_in_root": tuple(rnames.index(nm) for nm in names)}
    if ranks == list(range(ranks[0], ranks[0] + size)) and ranks[0] % size == 0:
        # a mesh of its own over one block of ranks: a pipeline stage
        return {"mesh_shape": shape, "stages": (ranks[0] // size,)}
    raise LayoutError(
        f"Parameter '{name}': its device mesh holds ranks {ranks[:16]}, which are not a "
        "row-major block of the world (MindSpore numbers the devices of a layout row-major); "
        "build the mesh with init_device_mesh(..., mesh_dim_names=...) over all ranks.")


def layout_from_dtensor(x: Any, name: str = "") -> TensorLayout:
    """The exact MindSpore layout of DTensor ``x``."""
    geo = _mesh_geometry(x.device_mesh, name)
    return layout_from_placements(geo["mesh_shape"], tuple(x.placements), tuple(x.shape),
                                  stages=geo["stages"], root_shape=geo.get("root_shape"),
                                  mesh_dims_in_root=geo.get("mesh_dims_in_root"), name=name)


def placements_from_layout(layout: TensorLayout) -> tuple[tuple[int, ...], list[Any]]:
    """``(mesh_shape, placements)`` of a layout (the inverse of :func:`layout_from_placements`
    on a mesh of shape ``dev_matrix``); raises ``LayoutError`` for what DTensor cannot say."""
    from torch.distributed.tensor import Replicate, Shard

    if layout.opt_active:
        raise LayoutError(f"Parameter '{layout.name}': the optimizer shard of this layout has "
                          "no plain DTensor placement (it needs the private _StridedShard).")
    n = len(layout.dev_matrix)
    placements: list[Any] = [Replicate() for _ in range(n)]
    for d, e in enumerate(layout.tensor_map):
        axes = e if isinstance(e, tuple) else ((e,) if e != -1 else ())
        mesh_dims = [n - 1 - k for k in axes]
        if mesh_dims != sorted(mesh_dims):
            raise LayoutError(
                f"Parameter '{layout.name}': tensor dimension {d} is split by device axes "
                f"{list(axes)} with an inner axis outermost; DTensor splits in mesh order and "
                "cannot express it.")
        for i in mesh_dims:
            placements[i] = Shard(d)
    if layout.param_split_shape:
        axes0 = layout.tensor_map[0] if isinstance(layout.tensor_map[0], tuple) else \
            (layout.tensor_map[0],)
        want = chunk_sizes(layout.full_shape[0], [layout.axis_size(k) for k in axes0 if k != -1])
        if list(layout.dim0_sizes) != want:
            raise LayoutError(
                f"Parameter '{layout.name}': its uneven dim-0 split {list(layout.dim0_sizes)} "
                f"is not the one DTensor makes ({want}: torch.chunk pieces), so no DTensor "
                "placement has it.")
    return layout.dev_matrix, placements


def to_dtensor(local: Any, layout: TensorLayout, mesh: Any) -> Any:
    """A DTensor over ``mesh`` (of shape ``layout.dev_matrix``) from this rank's ``local``."""
    import torch
    from torch.distributed.tensor import DTensor

    shape, placements = placements_from_layout(layout)
    if tuple(mesh.mesh.shape) != tuple(shape):
        raise LayoutError(f"Parameter '{layout.name}': the mesh has shape "
                          f"{tuple(mesh.mesh.shape)}, the layout's device matrix is {shape}.")
    full = tuple(layout.full_shape)
    stride = tuple(math.prod(full[i + 1:]) for i in range(len(full)))  # C-contiguous
    return DTensor.from_local(local, mesh, placements, run_check=False,
                              shape=torch.Size(full), stride=stride)


def coerce_layout(spec: Any, local_shape: Sequence[int], name: str) -> TensorLayout:
    """A :class:`TensorLayout` from what a ``layouts`` dict may hold (see the module doc)."""
    if isinstance(spec, TensorLayout):
        if not spec.name:
            return TensorLayout(spec.dev_matrix, spec.tensor_map, spec.full_shape,
                                spec.opt_shard_size, spec.opt_shard_step, spec.stages,
                                spec.param_split_shape, spec.field_size, name)
        return spec
    if isinstance(spec, Mapping):
        try:
            dev, tmap = spec["dev_matrix"], spec["tensor_map"]
        except KeyError as e:
            raise LayoutError(f"Parameter '{name}': the layout mapping lacks {e}; give "
                              "'dev_matrix' and 'tensor_map'.") from None
        return TensorLayout.from_local_shape(
            dev, tmap, local_shape, opt_shard_size=int(spec.get("opt_shard_size", 0)),
            opt_shard_step=int(spec.get("opt_shard_step", 0)),
            stages=tuple(spec.get("stages", (0,))), name=name)
    if isinstance(spec, (tuple, list)) and len(spec) >= 2:
        return TensorLayout.from_local_shape(spec[0], spec[1], local_shape, name=name)
    raise LayoutError(f"Parameter '{name}': layout {spec!r} is not a TensorLayout, a "
                      "(dev_matrix, tensor_map) pair or a mapping with those keys.")


def localize(values: Mapping[str, Any], layouts: Mapping[str, Any] | None,
             ) -> tuple[dict[str, Any], dict[str, TensorLayout]]:
    """``(local values, layouts)``: DTensors replaced by their local shards (views), their
    layouts derived; explicit ``layouts`` for the other tensors."""
    out: dict[str, Any] = {}
    lays: dict[str, TensorLayout] = {}
    given = dict(layouts or {})
    for name, v in values.items():
        if is_dtensor(v):
            lays[name] = layout_from_dtensor(v, name)
            out[name] = v.to_local()
            if name in given:
                raise LayoutError(f"Parameter '{name}' is a DTensor and also has an explicit "
                                  "layout; drop one of the two.")
            continue
        out[name] = v
    for name, spec in given.items():
        if name not in out:
            continue  # filtered out later (choice_func), or a typo caught by the caller
        v = out[name]
        shape = tuple(getattr(v, "shape", ()))
        lays[name] = coerce_layout(spec, shape, name)
    return out, lays
