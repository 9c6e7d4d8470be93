"""The identifier rules in plain Python, written from the rule text (see the
macros' headers and PLATFORMS.md), to check the SQL against. It shares no
code with the SQL: two readings of one rule that must agree."""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from datetime import date

WHITESPACE = (
    set("\t\n\x0b\f\r ")
    | {chr(c) for c in range(0x1C, 0x20)}
    | {"\x85", "\u200b", "\ufeff"}
    | {
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp")
    }
)
_WS_CLASS = "".join(re.escape(c) for c in sorted(WHITESPACE))
_HEX64 = re.compile(r"[0-9a-f]{64}")
_EMAIL = re.compile(rf"[^@{_WS_CLASS}]+@[^@.{_WS_CLASS}]+(?:\.[^@.{_WS_CLASS}]+)+")


def trim(value: str | None) -> str | None:
    if value is None:
        return None
    start, end = 0, len(value)
    while start < end and value[start] in WHITESPACE:
        start += 1
    while end > start and value[end - 1] in WHITESPACE:
        end -= 1
    return value[start:end] or None


def _hashed(value: str | None) -> str | None:
    """The trimmed, lower-cased value if it already is a SHA-256 hex digest."""
    trimmed = trim(value)
    if trimmed is not None and _HEX64.fullmatch(trimmed.lower()):
        return trimmed.lower()
    return None


def sha256_hex(value: str | None) -> str | None:
    if value is None:
        return None
    if _HEX64.fullmatch(value):
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def normalize_email(value: str | None) -> str | None:
    if (hashed := _hashed(value)) is not None:
        return hashed
    trimmed = trim(value)
    if trimmed is None:
        return None
    candidate = trimmed.lower()
    return candidate if _EMAIL.fullmatch(candidate) else None


def normalize_email_google(email: str | None) -> str | None:
    """gmail.com / googlemail.com: the +suffix dropped, then every dot; an
    empty local part is no email."""
    if email is None or not email.endswith(("@gmail.com", "@googlemail.com")):
        return email
    local, domain = email.split("@", 1)
    local = local.split("+", 1)[0].replace(".", "")
    return local + "@" + domain if local else None


def normalize_email_uid2(value: str | None) -> str | None:
    """UID2: trimmed, ASCII letters lower-cased (others as written); gmail.com
    without the +tag and dots of the local part, an empty one is no email."""
    if (hashed := _hashed(value)) is not None:
        return hashed
    trimmed = trim(value)
    if trimmed is None:
        return None
    candidate = trimmed.translate(_ASCII_LOWER)
    if not _EMAIL.fullmatch(candidate):
        return None
    if not candidate.endswith("@gmail.com"):
        return candidate
    local = candidate.split("@", 1)[0].split("+", 1)[0].replace(".", "")
    return local + "@gmail.com" if local else None


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _letters_only(value: str | None) -> str | None:
    trimmed = trim(value)
    if trimmed is None:
        return None
    lowered = unicodedata.normalize("NFC", trimmed).lower()
    kept = "".join(c for c in lowered if unicodedata.category(c)[0] in ("L", "M"))
    return kept or None


def normalize_name(value: str | None) -> str | None:
    hashed = _hashed(value)
    return hashed if hashed is not None else _letters_only(value)


normalize_city = normalize_name


def normalize_name_google(value: str | None) -> str | None:
    """Google's given / family name: trimmed and lower-cased, nothing else.
    Character by character, as the SQL does: each character's full lower
    case ('İ' -> 'i' + U+0307, as Python's str.lower), but no final sigma
    (str.lower on a whole word writes a closing 'Σ' as 'ς'; this, as 'σ')."""
    trimmed = trim(value)
    if trimmed is None:
        return None
    return "".join(c.lower() for c in trimmed)


def normalize_postal_code_google(value: str | None, country_code: str | None) -> str | None:
    """Google's postal code, sent in clear: trimmed; US the 5-digit zip (of
    5, 5-4 or 9 digits) else nothing; no upstream hash."""
    trimmed = trim(value)
    if trimmed is None or _HEX64.fullmatch(trimmed.lower()):
        return None
    if country_code == "us":
        return trimmed[:5] if re.fullmatch(r"[0-9]{5}(?:-?[0-9]{4})?", trimmed) else None
    return trimmed


def normalize_state(value: str | None) -> str | None:
    if (hashed := _hashed(value)) is not None:
        return hashed
    trimmed = trim(value)
    if trimmed is None:
        return None
    lowered = unicodedata.normalize("NFC", trimmed).lower()
    kept = "".join(
        c for c in lowered if unicodedata.category(c)[0] in ("L", "M") or c in "0123456789"
    )
    return kept or None


def normalize_zip(value: str | None, country_code: str) -> str | None:
    if (hashed := _hashed(value)) is not None:
        return hashed
    if value is None:
        return None
    compact = "".join(c for c in value if c not in WHITESPACE).lower().split("-", 1)[0]
    if country_code == "us":
        return compact[:5] if re.fullmatch(r"[0-9]{5}(?:[0-9]{4})?", compact) else None
    return compact or None


def normalize_gender(value: str | None) -> str | None:
    if (hashed := _hashed(value)) is not None:
        return hashed
    trimmed = trim(value)
    if trimmed is None:
        return None
    lowered = trimmed.lower()
    if lowered in ("f", "female", "w", "woman"):
        return "f"
    if lowered in ("m", "male", "man"):
        return "m"
    return None


def normalize_birth_date(value: str | None, as_of: date) -> str | None:
    if (hashed := _hashed(value)) is not None:
        return hashed
    trimmed = trim(value)
    if trimmed is None:
        return None
    parsed = None
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", trimmed)
    us = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", trimmed)
    try:
        if iso:
            parsed = date(int(iso[1]), int(iso[2]), int(iso[3]))
        elif us:
            parsed = date(int(us[3]), int(us[1]), int(us[2]))
    except ValueError:
        return None
    if parsed is None or not (date(1900, 1, 1) <= parsed < as_of):
        return None
    return parsed.strftime("%Y%m%d")
