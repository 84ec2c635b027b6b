"""The strategy-file schema as real protobuf classes (test-only cross-check of our codec).

Built from a FileDescriptorProto written from the field table in distributed.md §1.2, which was
dumped from MindSpore 2.10's node_strategy_pb2 descriptor."""

from __future__ import annotations

import pytest

descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
from google.protobuf import descriptor_pool, message_factory  # noqa: E402

_REQ, _REP = 2, 3
_U32, _I32, _I64, _STR, _MSG = 13, 5, 3, 9, 11

_SCHEMA = {
    "ParallelStrategy": [(1, "dim", _REP, _U32, None)],
    "ParallelStrategys": [(1, "stage", _REQ, _U32, None),
                          (2, "parallel_strategy", _REP, _MSG, "ParallelStrategy")],
    "ParallelStrategyItem": [(1, "node_name", _REQ, _STR, None),
                             (2, "parallel_strategys", _REQ, _MSG, "ParallelStrategys")],
    "DevMatrix": [(1, "dim", _REP, _U32, None)],
    "TensorMap": [(1, "dim", _REP, _I32, None)],
    "ParamSplitShape": [(1, "dim", _REP, _I64, None)],
    "IndicesOffset": [(1, "dim", _REP, _I64, None)],
    "ParallelLayouts": [(1, "dev_matrix", _REP, _MSG, "DevMatrix"),
                        (2, "tensor_map", _REP, _MSG, "TensorMap"),
                        (3, "param_split_shape", _REP, _MSG, "ParamSplitShape"),
                        (4, "indices_offset", _REP, _MSG, "IndicesOffset"),
                        (5, "field", _REQ, _I32, None),
                        (6, "opt_weight_shard_step", _REQ, _I32, None),
                        (7, "opt_weight_shard_size", _REQ, _I32, None)],
    "ParallelLayoutItem": [(1, "param_name", _REQ, _STR, None),
                           (2, "parallel_layouts", _REQ, _MSG, "ParallelLayouts")],
    "ParallelGroupRanks": [(1, "dim", _REP, _U32, None)],
    "ParallelGroupItem": [(1, "group_name", _REQ, _STR, None),
                          (2, "parallel_group_ranks", _REQ, _MSG, "ParallelGroupRanks")],
    "ParallelGroupMap": [(1, "parallel_group_item", _REP, _MSG, "ParallelGroupItem"),
                         (2, "ckpt_restore_rank_list", _REQ, _MSG, "ParallelGroupRanks")],
    "ParallelStrategyMap": [(1, "current_stage", _REQ, _U32, None),
                            (2, "parallel_strategy_item", _REP, _MSG, "ParallelStrategyItem"),
                            (3, "parallel_layout_item", _REP, _MSG, "ParallelLayoutItem")],
}


def _build():
    fd = descriptor_pb2.FileDescriptorProto(name="mindckpt_test_node_strategy.proto",
                                            package="mindckpt_test.straspb", syntax="proto2")
    for name, fields in _SCHEMA.items():
        m = fd.message_type.add(name=name)
        for num, fname, label, ftype, tname in fields:
            f = m.field.add(name=fname, number=num, label=label, type=ftype)
            if tname:
                f.type_name = f".mindckpt_test.straspb.{tname}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fd)
    return {name: message_factory.GetMessageClass(
        pool.FindMessageTypeByName(f"mindckpt_test.straspb.{name}")) for name in _SCHEMA}


PB = _build()
