"""Plain field mappings (and rosbags messages) -> generated ROS 2 messages, without cv_bridge.

Nothing here imports rclpy: the message classes come from the caller or from
their rosidl package, so this works wherever the interfaces are built. Image
decoding lives in ``superglue_ros.io.images``, shared with the tools.
"""

from __future__ import annotations

import array
import dataclasses
import importlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_TYPECODES = {
    "float": "f",
    "double": "d",
    "int8": "b",
    "uint8": "B",
    "octet": "B",
    "int16": "h",
    "uint16": "H",
    "int32": "i",
    "uint32": "I",
    "int64": "q",
    "uint64": "Q",
}


def _sequence_element(type_name: str) -> str | None:
    """'sequence<float>' -> 'float'; 'sequence<pkg/Msg, 5>' -> 'pkg/Msg'; else None."""
    if not type_name.startswith("sequence<"):
        return None
    return type_name[len("sequence<") : -1].split(",")[0].strip()


def _message_class(type_name: str) -> type:
    package, name = type_name.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def typed_array(values: Any, element: str) -> Any:
    """values as the array.array rclpy keeps for a primitive sequence field of ``element``."""
    code = _TYPECODES.get(element)
    if code is None:
        return list(values)
    out = array.array(code)
    dtype = np.dtype(code)
    out.frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
    return out


def fill_message(msg: Any, fields: Mapping[str, Any]) -> Any:
    """Set a generated ROS message's fields from a nested mapping; returns msg.

    Nested mappings fill nested messages in place, lists of mappings become
    sequences of the element message type, and numpy arrays become the typed
    ``array.array`` that generated messages store (a single copy, no per-element
    Python loop). Works with any rosidl-generated Python message class.
    """
    types = msg.get_fields_and_field_types()
    for name, value in fields.items():
        if name not in types:
            raise KeyError(f"{type(msg).__name__} has no field {name!r}")
        type_name = types[name]
        element = _sequence_element(type_name)
        if isinstance(value, Mapping):
            fill_message(getattr(msg, name), value)
        elif element is not None and "/" in element:
            cls = _message_class(element)
            setattr(msg, name, [fill_message(cls(), item) for item in value])
        elif element is not None and isinstance(value, (np.ndarray, Sequence)):
            if isinstance(value, str):
                raise TypeError(f"field {name!r} is a sequence, got a string")
            setattr(msg, name, typed_array(value, element))
        elif isinstance(value, np.generic):
            setattr(msg, name, value.item())
        else:
            setattr(msg, name, value)
    return msg


def rosbags_to_fields(value: Any) -> Any:
    """A rosbags message dataclass as nested plain fields for fill_message."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # rosbags keeps the type name in a __msgtype__ field: not a message field
        names = [f.name for f in dataclasses.fields(value) if not f.name.startswith("__")]
        return {name: rosbags_to_fields(getattr(value, name)) for name in names}
    if isinstance(value, list):
        return [rosbags_to_fields(v) for v in value]
    return value
