"""The types of parsed JSON, for every module of the shipper.

This module imports nothing from the shipper, so any module may import it.
"""

from __future__ import annotations

from typing import TypeAlias

# What `json.loads` gives: a platform's answer, a payload read back, a key file.
JsonValue: TypeAlias = (
    None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
)
JsonObject: TypeAlias = dict[str, JsonValue]

__all__ = ["JsonObject", "JsonValue"]
