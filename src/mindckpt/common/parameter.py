"""``mindspore.common.parameter``: ``Parameter`` and ``ParameterTuple``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..tensor import Parameter

__all__ = ["Parameter", "ParameterTuple"]

_NAME_RE = r"^\w+[0-9a-zA-Z\_\.]*$"  # MindSpore's Validator.check_str_by_regular


class ParameterTuple(tuple):
    """A tuple of Parameters with unique names (one Parameter may appear more than once)."""

    def __new__(cls, iterable: Iterable[Any]) -> ParameterTuple:
        data = tuple(iterable)
        ids: set[int] = set()
        names: set[str] = set()
        for x in data:
            if not isinstance(x, Parameter):
                raise TypeError(
                    "For ParameterTuple initialization, ParameterTuple input should be "
                    f"'Parameter' collection, but got a {type(iterable)}. "
                )
            if id(x) not in ids:
                if x.name in names:
                    raise ValueError(
                        f"The value {x} , its name '{x.name}' already exists. Please set a "
                        "unique name for the parameter."
                    )
                names.add(x.name)
                ids.add(id(x))
        return tuple.__new__(cls, data)

    def clone(self, prefix: str, init: Any = "same") -> ParameterTuple:
        """Clone each Parameter (see ``Parameter.clone``), naming it ``prefix + "." + name``."""
        if not isinstance(prefix, str) or re.match(_NAME_RE, prefix, re.ASCII) is None:
            raise ValueError(
                f"The '{prefix}' is illegal, it must be match regular'{_NAME_RE}' by "
                f"flags'{re.ASCII}.'"
            )
        new = []
        for x in self:
            x1 = x.clone(init)
            x1.name = prefix + "." + x1.name
            new.append(x1)
        return ParameterTuple(new)
