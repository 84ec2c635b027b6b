"""CheckpointConfig: MindSpore 2.10's defaults, validation order, messages and normalisation."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mindckpt.train import CheckpointConfig

ALL_ZERO = (
    "For 'CheckpointConfig', the input arguments 'save_checkpoint_steps', "
    "'save_checkpoint_seconds', 'keep_checkpoint_max' and 'keep_checkpoint_per_n_minutes' "
    "can't be all None or 0."
)

# (kwargs, exception type, exact message)
CASES = [
    ({"save_checkpoint_steps": 1.5}, TypeError, "The input value must be int, but got 'float'"),
    ({"save_checkpoint_steps": "3"}, TypeError, "The input value must be int, but got 'str'"),
    (
        {"save_checkpoint_steps": True},
        TypeError,
        "The input value must be int and must >= 0, but got 'True' with type 'bool'.",
    ),
    (
        {"save_checkpoint_seconds": -1},
        ValueError,
        "The input value must be int and must >= 0, but got '-1' with type 'int'.",
    ),
    (
        {"keep_checkpoint_max": -2},
        ValueError,
        "The input value must be int and must >= 0, but got '-2' with type 'int'.",
    ),
    (
        {"keep_checkpoint_per_n_minutes": np.int64(3)},
        TypeError,
        "The input value must be int, but got 'int64'",
    ),
    # numbers are checked before saved_network
    (
        {"save_checkpoint_steps": -1, "saved_network": 3},
        ValueError,
        "The input value must be int and must >= 0, but got '-1' with type 'int'.",
    ),
    (
        {"saved_network": 1},
        TypeError,
        "For 'CheckpointConfig', the type of 'saved_network' must be None or Cell, "
        "but got <class 'int'>.",
    ),
    # saved_network is checked before the all-zero rule
    (
        {
            "save_checkpoint_steps": 0,
            "keep_checkpoint_max": 0,
            "saved_network": "net",
        },
        TypeError,
        "For 'CheckpointConfig', the type of 'saved_network' must be None or Cell, "
        "but got <class 'str'>.",
    ),
    (
        {
            "save_checkpoint_steps": 0,
            "save_checkpoint_seconds": None,
            "keep_checkpoint_max": 0,
            "keep_checkpoint_per_n_minutes": None,
        },
        ValueError,
        ALL_ZERO,
    ),
    (
        {"save_checkpoint_steps": None, "keep_checkpoint_max": None},
        ValueError,
        ALL_ZERO,
    ),
    ({"exception_save": 1}, TypeError, "The input value must be a bool, but got int."),
    # all-zero is checked before exception_save
    (
        {"save_checkpoint_steps": 0, "keep_checkpoint_max": 0, "exception_save": 1},
        ValueError,
        ALL_ZERO,
    ),
    ({"integrated_save": "yes"}, TypeError, "The input value must be a bool, but got str."),
    # exception_save before integrated_save
    (
        {"exception_save": None, "integrated_save": 1},
        TypeError,
        "The input value must be a bool, but got NoneType.",
    ),
    (
        {"async_save": 1},
        TypeError,
        "For 'save_checkpoint', the parameter 'async_save' must be bool or str, "
        "but got <class 'int'>.",
    ),
    (
        {"async_save": "proc"},
        ValueError,
        "For 'save_checkpoint', the argument 'async_save' can only be 'process' or 'thread',"
        "but got proc.",
    ),
    (
        {"async_save": "Thread"},
        ValueError,
        "For 'save_checkpoint', the argument 'async_save' can only be 'process' or 'thread',"
        "but got Thread.",
    ),
    (
        {"append_info": ("epoch_num",)},
        TypeError,
        "For 'CheckpointConfig', the type of 'append_info' must be list,but got <class 'tuple'>.",
    ),
    (
        {"append_info": {"a": 1}},
        TypeError,
        "For 'CheckpointConfig', the type of 'append_info' must be list,but got <class 'dict'>.",
    ),
    (
        {"append_info": [1]},
        TypeError,
        "For 'CheckpointConfig', the type of 'append_info' element must be str or dict,"
        "but got <class 'int'>.",
    ),
    (
        {"append_info": ["lr"]},
        ValueError,
        "For 'CheckpointConfig', the value of element in the argument 'append_info' must be in "
        "['epoch_num', 'step_num'], but got lr.",
    ),
    (
        {"append_info": [{"a": 1}, {"b": 2}]},
        TypeError,
        "For 'CheckpointConfig', the element of 'append_info' must has only one dict, "
        "but got {dict_num}",
    ),
    (
        {"append_info": [{"a": [1]}]},
        TypeError,
        "For 'CheckpointConfig', the key type of the dict 'append_info' must be string, the value "
        "type must be int or float or bool, but got key type <class 'str'>, value type "
        "<class 'list'>",
    ),
    (
        {"append_info": [{1: 1}]},
        TypeError,
        "For 'CheckpointConfig', the key type of the dict 'append_info' must be string, the value "
        "type must be int or float or bool, but got key type <class 'int'>, value type "
        "<class 'int'>",
    ),
    (
        {"append_info": [{"x": np.float32(1)}]},
        TypeError,
        "For 'CheckpointConfig', the key type of the dict 'append_info' must be string, the value "
        "type must be int or float or bool, but got key type <class 'str'>, value type "
        "<class 'numpy.float32'>",
    ),
    # async_save before append_info
    (
        {"async_save": 2, "append_info": 5},
        TypeError,
        "For 'save_checkpoint', the parameter 'async_save' must be bool or str, "
        "but got <class 'int'>.",
    ),
    (
        {"enc_key": "abc"},
        ValueError,
        "The parameter 'enc_key' must be isinstance of (<class 'NoneType'>, <class 'bytes'>), "
        "but got abc.",
    ),
    (
        {"enc_key": bytearray(b"k" * 16)},
        ValueError,
        "The parameter 'enc_key' must be isinstance of (<class 'NoneType'>, <class 'bytes'>), "
        f"but got {bytearray(b'k' * 16)}.",
    ),
    (
        {"enc_mode": 5},
        ValueError,
        "The parameter 'enc_mode' must be isinstance of <class 'str'>, but got 5.",
    ),
    (
        {"crc_check": 1},
        ValueError,
        "The parameter 'crc_check' must be isinstance of <class 'bool'>, but got 1.",
    ),
    (
        {"format": 1},
        ValueError,
        "The parameter 'format' must be isinstance of <class 'str'>, but got 1.",
    ),
    (
        {"remove_redundancy": "no"},
        ValueError,
        "The parameter 'remove_redundancy' must be isinstance of <class 'bool'>, but got no.",
    ),
    # order: enc_key before enc_mode before crc_check before format before remove_redundancy
    (
        {"enc_key": 1, "enc_mode": 1, "crc_check": 1, "format": 1, "remove_redundancy": 1},
        ValueError,
        "The parameter 'enc_key' must be isinstance of (<class 'NoneType'>, <class 'bytes'>), "
        "but got 1.",
    ),
    (
        {"crc_check": 1, "format": 1, "remove_redundancy": 1},
        ValueError,
        "The parameter 'crc_check' must be isinstance of <class 'bool'>, but got 1.",
    ),
]

ST_MSG = "For 'save_checkpoint', when format is 'safetensors', other param must be default."
CASES += [
    ({"format": "safetensors", "crc_check": True}, ValueError, ST_MSG),
    ({"format": "safetensors", "exception_save": True}, ValueError, ST_MSG),
    ({"format": "safetensors", "enc_key": b"k" * 16}, ValueError, ST_MSG),
    ({"format": "safetensors", "enc_mode": "AES-CBC"}, ValueError, ST_MSG),
    ({"format": "safetensors", "incremental": True}, ValueError, ST_MSG),
]

# Deviations (docs/deviations.md): MindSpore accepts these.
DEVIATIONS = [
    (
        {"enc_key": b"k" * 16, "crc_check": True},
        ValueError,
        "For 'CheckpointConfig', 'crc_check=True' cannot be used together with 'enc_key'",
    ),
    ({"enc_mode": "bogus"}, ValueError, "the 'enc_mode' must be one of"),
    ({"enc_key": b"k" * 15}, ValueError, "must be 16, 24 or 32 bytes (AES-128, AES-192, AES-256) long, got 15 bytes"),
    (
        {"enc_key": b"k" * 32, "enc_mode": "SM4-CBC"},
        ValueError,
        "for enc_mode='SM4-CBC' must be 16 bytes long, got 32 bytes",
    ),
]


@pytest.mark.parametrize("kwargs,exc,message", CASES)
def test_validation_message_exact(kwargs, exc, message):
    with pytest.raises(exc) as info:
        CheckpointConfig(**kwargs)
    assert type(info.value) is exc
    assert str(info.value) == message


@pytest.mark.parametrize("kwargs,exc,fragment", DEVIATIONS)
def test_validation_deviations(kwargs, exc, fragment):
    with pytest.raises(exc, match=re.escape(fragment)):
        CheckpointConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"enc_key": b"k" * 16},
        {"enc_key": b"k" * 24, "enc_mode": "AES-CBC"},
        {"enc_key": b"k" * 32},
        {"enc_key": b"k" * 16, "enc_mode": "SM4-CBC"},
        {"enc_mode": "AES-CBC"},
        {"save_checkpoint_steps": 0, "save_checkpoint_seconds": 0},  # accepted, never saves
        {"format": "bogus"},  # accepted here, fails at the first save (MindSpore)
        {"format": "safetensors", "async_save": True},
        {"bogus_kwarg": 1},  # unknown kwargs silently ignored
    ],
)
def test_accepted(kwargs):
    CheckpointConfig(**kwargs)


def test_defaults_and_policy():
    c = CheckpointConfig()
    assert c.save_checkpoint_steps == 1
    assert c.save_checkpoint_seconds is None
    assert c.keep_checkpoint_max == 5
    assert c.keep_checkpoint_per_n_minutes is None
    assert c.integrated_save is True
    assert c.async_save is False
    assert c.saved_network is None
    assert c.append_dict is None
    assert c.enc_key is None
    assert c.enc_mode == "AES-GCM"
    assert c.crc_check is False
    assert c.format == "ckpt"
    assert c.map_param_inc is False
    assert c.exception_save is False
    assert c.remove_redundancy is False
    assert c.enable_redundance is False
    policy = c.get_checkpoint_policy()
    assert list(policy.items()) == [
        ("save_checkpoint_steps", 1),
        ("save_checkpoint_seconds", None),
        ("keep_checkpoint_max", 5),
        ("keep_checkpoint_per_n_minutes", None),
        ("saved_network", None),
    ]
    assert c.get_checkpoint_policy() is not policy


def test_positional_order():
    c = CheckpointConfig(
        0,
        30,
        0,
        2,
        False,
        "thread",
        None,
        ["epoch_num"],
        b"k" * 16,
        "AES-CBC",
        True,
        False,
        False,
        "ckpt",
    )
    assert (c.save_checkpoint_steps, c.save_checkpoint_seconds) == (0, 30)
    assert (c.keep_checkpoint_max, c.keep_checkpoint_per_n_minutes) == (0, 2)
    assert c.integrated_save is False and c.async_save == "thread"
    assert c.append_dict == {"epoch_num": 0}
    assert c.enc_key == b"k" * 16 and c.enc_mode == "AES-CBC" and c.exception_save is True


@pytest.mark.parametrize(
    "name",
    [
        "save_checkpoint_steps",
        "save_checkpoint_seconds",
        "keep_checkpoint_max",
        "keep_checkpoint_per_n_minutes",
        "integrated_save",
        "async_save",
        "saved_network",
        "append_dict",
        "enc_key",
        "enc_mode",
        "crc_check",
        "format",
        "map_param_inc",
    ],
)
def test_properties_read_only(name):
    c = CheckpointConfig()
    with pytest.raises(
        AttributeError, match=f"property '{name}' of 'CheckpointConfig' object has no setter"
    ):
        setattr(c, name, 1)


def test_plain_attributes_assignable():
    c = CheckpointConfig()
    c.exception_save = True
    c.remove_redundancy = True
    c.enable_redundance = True


def test_kwargs():
    c = CheckpointConfig(incremental="anything", enable_redundance=True)
    assert c.map_param_inc == "anything"
    assert c.enable_redundance is True


# steps, seconds, max, per_n -> normalised (steps, seconds, max, per_n)
NORMALISATION = [
    ((1, 0, 5, 0), (1, None, 5, None)),
    ((2, 30, 5, 0), (2, None, 5, None)),
    ((None, 0, 5, 0), (None, 0, 5, None)),
    ((0, 30, 5, 0), (0, 30, 5, None)),
    ((None, 30, 5, 0), (None, 30, 5, None)),
    ((1, 0, 0, 0), (1, None, 1, 0)),
    ((1, 0, None, None), (1, None, 1, None)),
    ((1, 0, 0, 2), (1, None, 0, 2)),
    ((1, 0, 3, 2), (1, None, 3, None)),
    ((1, 0, None, 2), (1, None, None, 2)),
    ((0, 0, 5, 0), (0, 0, 5, None)),
]


@pytest.mark.parametrize("given,expected", NORMALISATION)
def test_normalisation(given, expected):
    c = CheckpointConfig(*given)
    got = (
        c.save_checkpoint_steps,
        c.save_checkpoint_seconds,
        c.keep_checkpoint_max,
        c.keep_checkpoint_per_n_minutes,
    )
    assert got == expected


@pytest.mark.parametrize(
    "info,expected",
    [
        (None, None),
        ([], None),
        ([{}], {}),
        (["step_num", "epoch_num"], {"epoch_num": 0, "step_num": 0}),
        (["epoch_num", {"epoch_num": 7}], {"epoch_num": 7}),
        ([{"epoch_num": 7}, "epoch_num"], {"epoch_num": 7}),
        (["epoch_num", "epoch_num"], {"epoch_num": 0}),
        (
            ["epoch_num", {"lr": 0.1, "tag": "x", "flag": True, "n": 3, "f64": np.float64(2)}],
            {"epoch_num": 0, "lr": 0.1, "tag": "x", "flag": True, "n": 3, "f64": 2.0},
        ),
    ],
)
def test_append_info(info, expected):
    c = CheckpointConfig(append_info=info)
    assert c.append_dict == expected
    if expected is not None:
        assert list(c.append_dict) == list(expected)


def test_saved_network_accepts_cell_and_torch_module():
    torch = pytest.importorskip("torch")
    CheckpointConfig(saved_network=torch.nn.Linear(2, 2))
    nn = pytest.importorskip("mindckpt.nn")
    cell_cls = nn.Cell
    CheckpointConfig(saved_network=cell_cls())
