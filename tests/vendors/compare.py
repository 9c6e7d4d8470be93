"""What a vendor's library makes of a body and what we send, compared member by member."""

from __future__ import annotations

from typing import Any


def differences(vendor: Any, ours: Any, path: str, vendor_name: str) -> list[str]:
    """Every member where `vendor_name`'s reading and our body differ, in value or JSON
    type (a member only one side has included), each named by its path."""
    if isinstance(vendor, dict) and isinstance(ours, dict):
        found = []
        for key in [*ours, *(key for key in vendor if key not in ours)]:
            if key not in vendor:
                found.append(f"{path}.{key}: we send {ours[key]!r}, {vendor_name} does not know it")
            elif key not in ours:
                found.append(f"{path}.{key}: {vendor_name} writes {vendor[key]!r}, we send nothing")
            else:
                found += differences(vendor[key], ours[key], f"{path}.{key}", vendor_name)
        return found
    if isinstance(vendor, list) and isinstance(ours, list) and len(vendor) == len(ours):
        return [problem for index, (theirs, mine) in enumerate(zip(vendor, ours, strict=True))
                for problem in differences(theirs, mine, f"{path}[{index}]", vendor_name)]
    if type(vendor) is not type(ours) or vendor != ours:
        return [f"{path}: {vendor_name} reads {vendor!r}, we send {ours!r}"]
    return []
