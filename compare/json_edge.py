"""The JSON edge of the result schema: ``to_json`` and ``from_json`` for every record of ``compare.results``.

NaN and infinity become ``null``; a ``Head`` is written as ``L1H0`` and read back as a ``Head``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import types
import typing
from typing import Any

from compare.results import Head


def to_json(x: Any) -> Any:
    """Records, enums, numpy values and containers to strict JSON (NaN and inf become ``None``)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: to_json(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, Head):
        return str(x)
    if isinstance(x, dict):
        return {str(k): to_json(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_json(v) for v in x]
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return to_json(x.tolist())
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    raise TypeError(f"cannot write {type(x).__name__} to JSON")


def from_json(cls: Any, data: Any) -> Any:
    """The inverse of ``to_json`` for the type ``cls`` (a record class or a typing annotation)."""
    origin = typing.get_origin(cls)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(cls) if a is not type(None)]
        return None if data is None else from_json(args[0], data)
    if origin is list:
        (item,) = typing.get_args(cls)
        return [from_json(item, v) for v in data]
    if origin is tuple:
        item = typing.get_args(cls)[0]
        return tuple(from_json(item, v) for v in data)
    if origin is dict:
        key, item = typing.get_args(cls)
        return {(Head.parse(k) if key is Head else k): from_json(item, v) for k, v in data.items()}
    if cls is Any:
        return data
    if cls is Head:
        return Head.parse(data)
    if isinstance(cls, type) and issubclass(cls, enum.Enum):
        return cls(data)
    if dataclasses.is_dataclass(cls):
        hints = typing.get_type_hints(cls)
        return cls(**{f.name: from_json(hints[f.name], data[f.name]) for f in dataclasses.fields(cls)
                      if f.name in data})
    if cls is float:
        return math.nan if data is None else float(data)
    return data
