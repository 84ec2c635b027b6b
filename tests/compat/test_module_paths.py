"""The module paths MindSpore checkpoint code imports exist and hold the one object of each name."""

from __future__ import annotations

import importlib

import pytest

import mindckpt


def test_train_serialization_reexports_the_same_objects():
    ser = importlib.import_module("mindckpt.train.serialization")
    for name in ser.__all__:
        obj = getattr(ser, name)
        if hasattr(mindckpt, name):
            assert obj is getattr(mindckpt, name), name
    for name in ("save_checkpoint", "load_checkpoint", "load_param_into_net",
                 "load_checkpoint_async", "ckpt_to_safetensors", "safetensors_to_ckpt",
                 "async_ckpt_thread_status", "ParamDictFuture", "build_searched_strategy",
                 "restore_group_info_list"):
        assert callable(getattr(ser, name)), name
    assert ser.context is importlib.import_module("mindckpt.context")
    assert ser.mstype is importlib.import_module("mindckpt.common.dtype")


def test_train_callback_names_as_mindspore():
    from mindckpt.train.callback import Callback, CheckpointConfig, ModelCheckpoint, RunContext

    assert (ModelCheckpoint, CheckpointConfig, Callback, RunContext) == (
        mindckpt.ModelCheckpoint, mindckpt.CheckpointConfig, mindckpt.Callback, mindckpt.RunContext)


def test_common_modules():
    from mindckpt.common import Parameter, ParameterTuple, Tensor, dtype, initializer, tensor
    from mindckpt.common.parameter import Parameter as P2
    from mindckpt.common.parameter import ParameterTuple as PT2
    from mindckpt.common.tensor import Tensor as T2

    assert Tensor is T2 is mindckpt.Tensor and Parameter is P2 is mindckpt.Parameter
    assert ParameterTuple is PT2 and callable(tensor) and callable(initializer.initializer)
    mstype = importlib.import_module("mindckpt.common.dtype")
    assert dtype is mstype and mstype.float32 is mindckpt.float32 and mstype.half is mindckpt.float16
    # as MindSpore's: mindckpt.common.tensor is the function (the module stays importable)
    assert mindckpt.common.tensor is tensor
    assert importlib.import_module("mindckpt.common.tensor").Tensor is mindckpt.Tensor


def test_context_module():
    from mindckpt import context

    assert {"set_context", "get_context", "GRAPH_MODE", "PYNATIVE_MODE"} <= set(context.__all__)


def test_nn_names():
    from mindckpt import nn

    for name in ("Cell", "Dense", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
                 "Embedding", "SequentialCell", "CellList"):
        assert isinstance(getattr(nn, name), type), name


@pytest.mark.parametrize("name", ["context", "ParameterTuple", "set_context", "get_context",
                                  "GRAPH_MODE", "PYNATIVE_MODE"])
def test_top_level_names_once_exported(name):
    if name not in getattr(mindckpt, "__all__", ()):
        pytest.skip(f"mindckpt/__init__.py does not export {name!r} yet (the package lead adds it)")
    assert getattr(mindckpt, name) is not None
