"""``CheckpointConfig``: the save/retention policy object of ``ModelCheckpoint``.

Same signature, defaults, normalisation, validation order, exception types and messages as
MindSpore 2.10. Deviations (docs/deviations.md):

* ``saved_network`` may also be a ``torch.nn.Module``.
* Combinations MindSpore accepts and then fails on (or silently mis-writes) are rejected here,
  after all of MindSpore's own checks: ``crc_check=True`` with ``enc_key`` (MindSpore writes an
  unloadable file), an ``enc_mode`` outside AES-GCM/AES-CBC/SM4-CBC, and an ``enc_key`` of the wrong
  length (MindSpore fails only while writing, after it deleted the previous file).
* ``append_dict`` is never mutated by ``ModelCheckpoint``: a config can be reused safely.
"""

from __future__ import annotations

from typing import Any

from mindckpt.codecs.crypto import MODES
from mindckpt._validators import (
    check_async_save,
    check_bool,
    check_crc_enc,
    check_enc_key_length,
    check_isinstance,
    check_non_negative_int,
    is_network,
)

__all__ = ["CheckpointConfig"]

_INFO_LIST = ["epoch_num", "step_num"]


def _append_value_types() -> tuple[type, ...]:
    types: list[type] = [int, float, bool, str]
    try:
        from mindckpt.tensor import Parameter, Tensor

        types += [Parameter, Tensor]
    except ImportError:
        pass
    return tuple(types)


class CheckpointConfig:
    """The configuration of checkpoint saving (see ``mindspore.train.CheckpointConfig``).

    If both ``save_checkpoint_steps`` and ``save_checkpoint_seconds`` are set, the seconds are
    ignored; if both ``keep_checkpoint_max`` and ``keep_checkpoint_per_n_minutes`` are set, the
    minutes are ignored.

    mindckpt keyword: ``writer_rank=k`` makes rank ``k`` the only writer of the integrated
    checkpoints of a distributed run (default None: every rank writes its own, as MindSpore;
    see :mod:`mindckpt.manager`).
    """

    def __init__(
        self,
        save_checkpoint_steps=1,
        save_checkpoint_seconds=0,
        keep_checkpoint_max=5,
        keep_checkpoint_per_n_minutes=0,
        integrated_save=True,
        async_save=False,
        saved_network=None,
        append_info=None,
        enc_key=None,
        enc_mode="AES-GCM",
        exception_save=False,
        crc_check=False,
        remove_redundancy=False,
        format="ckpt",  # noqa: A002 - MindSpore's keyword
        **kwargs,
    ):
        for value in (
            save_checkpoint_steps,
            save_checkpoint_seconds,
            keep_checkpoint_max,
            keep_checkpoint_per_n_minutes,
        ):
            if value is not None:
                check_non_negative_int(value)

        if saved_network is not None and not is_network(saved_network):
            raise TypeError(
                f"For 'CheckpointConfig', the type of 'saved_network' must be None or Cell, "
                f"but got {type(saved_network)}."
            )

        if (
            not save_checkpoint_steps
            and not save_checkpoint_seconds
            and not keep_checkpoint_max
            and not keep_checkpoint_per_n_minutes
        ):
            raise ValueError(
                "For 'CheckpointConfig', the input arguments 'save_checkpoint_steps', "
                "'save_checkpoint_seconds', 'keep_checkpoint_max' and "
                "'keep_checkpoint_per_n_minutes' can't be all None or 0."
            )

        check_bool(exception_save)
        self.exception_save = exception_save

        self._save_checkpoint_steps = save_checkpoint_steps
        self._save_checkpoint_seconds = save_checkpoint_seconds
        if self._save_checkpoint_steps and self._save_checkpoint_steps > 0:
            self._save_checkpoint_seconds = None

        self._keep_checkpoint_max = keep_checkpoint_max
        self._keep_checkpoint_per_n_minutes = keep_checkpoint_per_n_minutes
        if self._keep_checkpoint_max and self._keep_checkpoint_max > 0:
            self._keep_checkpoint_per_n_minutes = None
        elif not self._keep_checkpoint_per_n_minutes:
            self._keep_checkpoint_max = 1

        self._integrated_save = check_bool(integrated_save)
        self._async_save = check_async_save(async_save)
        self._saved_network = saved_network
        self._append_dict = self._handle_append_info(append_info)
        self._enc_key = check_isinstance("enc_key", enc_key, (type(None), bytes))
        self._enc_mode = check_isinstance("enc_mode", enc_mode, str)
        self._crc_check = check_isinstance("crc_check", crc_check, bool)
        self._format = check_isinstance("format", format, str)
        self._map_param_inc = kwargs.get("incremental", False)
        self.enable_redundance = kwargs.get("enable_redundance", False)
        self.remove_redundancy = check_isinstance("remove_redundancy", remove_redundancy, bool)
        writer_rank = kwargs.get("writer_rank")
        if writer_rank is not None and (isinstance(writer_rank, bool) or
                                        not isinstance(writer_rank, int) or writer_rank < 0):
            raise TypeError("For 'CheckpointConfig', 'writer_rank' must be None (every rank "
                            "writes its own integrated file, MindSpore's behaviour) or the "
                            f"non-negative rank that alone writes it, but got {writer_rank!r}.")
        #: mindckpt: in a distributed run, the only rank that writes integrated checkpoints
        self.writer_rank: int | None = writer_rank

        if format == "safetensors" and (
            enc_key is not None
            or enc_mode != "AES-GCM"
            or crc_check
            or exception_save
            or self._map_param_inc
        ):
            raise ValueError(
                "For 'save_checkpoint', when format is 'safetensors', other param must be default."
            )

        # Deviations: reject what MindSpore accepts and then writes wrongly or fails on late.
        if enc_mode not in MODES:
            raise ValueError(
                f"For 'CheckpointConfig', the 'enc_mode' must be one of {list(MODES)}, "
                f"but got {enc_mode!r}."
            )
        if enc_key is not None:
            check_crc_enc(crc_check, enc_key, "CheckpointConfig")
            check_enc_key_length(enc_key, enc_mode, "CheckpointConfig")

    # -- read-only properties (MindSpore's) -------------------------------------------------
    @property
    def save_checkpoint_steps(self):
        """Steps between two saves (``None`` or 0: no step policy)."""
        return self._save_checkpoint_steps

    @property
    def save_checkpoint_seconds(self):
        """Seconds between two saves; ``None`` when the step policy is active."""
        return self._save_checkpoint_seconds

    @property
    def keep_checkpoint_max(self):
        """How many checkpoint files to keep at most."""
        return self._keep_checkpoint_max

    @property
    def keep_checkpoint_per_n_minutes(self):
        """Keep one checkpoint per this many minutes; ``None`` when ``keep_checkpoint_max`` wins."""
        return self._keep_checkpoint_per_n_minutes

    @property
    def integrated_save(self):
        return self._integrated_save

    @property
    def async_save(self):
        return self._async_save

    @property
    def saved_network(self):
        return self._saved_network

    @property
    def append_dict(self):
        """The extra entries saved with every checkpoint (``None`` if none)."""
        return self._append_dict

    @property
    def enc_key(self):
        return self._enc_key

    @property
    def enc_mode(self):
        return self._enc_mode

    @property
    def crc_check(self):
        return self._crc_check

    @property
    def format(self):  # noqa: A003
        return self._format

    @property
    def map_param_inc(self):
        return self._map_param_inc

    def get_checkpoint_policy(self):
        """The save policy as a new dict."""
        return {
            "save_checkpoint_steps": self.save_checkpoint_steps,
            "save_checkpoint_seconds": self.save_checkpoint_seconds,
            "keep_checkpoint_max": self.keep_checkpoint_max,
            "keep_checkpoint_per_n_minutes": self.keep_checkpoint_per_n_minutes,
            "saved_network": self.saved_network,
        }

    @staticmethod
    def _handle_append_info(append_info):
        if append_info is None or (isinstance(append_info, list) and append_info == []):
            return None
        if not isinstance(append_info, list):
            raise TypeError(
                f"For 'CheckpointConfig', the type of 'append_info' must be list,"
                f"but got {type(append_info)}."
            )
        result: dict[str, Any] = {}
        if "epoch_num" in append_info:
            result["epoch_num"] = 0
        if "step_num" in append_info:
            result["step_num"] = 0
        value_types = _append_value_types()
        dict_num = 0
        for element in append_info:
            if not isinstance(element, (str, dict)):
                raise TypeError(
                    f"For 'CheckpointConfig', the type of 'append_info' element must be str or dict,"
                    f"but got {type(element)}."
                )
            if isinstance(element, str) and element not in _INFO_LIST:
                raise ValueError(
                    f"For 'CheckpointConfig', the value of element in the argument 'append_info' "
                    f"must be in {_INFO_LIST}, but got {element}."
                )
            if isinstance(element, dict):
                dict_num += 1
                if dict_num > 1:
                    # MindSpore's message is not an f-string: the braces are literal.
                    raise TypeError(
                        "For 'CheckpointConfig', the element of 'append_info' must has only one "
                        "dict, but got {dict_num}"
                    )
                for key, value in element.items():
                    if isinstance(key, str) and isinstance(value, value_types):
                        result[key] = value
                    else:
                        raise TypeError(
                            f"For 'CheckpointConfig', the key type of the dict 'append_info' must "
                            f"be string, the value type must be int or float or bool, but got key "
                            f"type {type(key)}, value type {type(value)}"
                        )
        return result
