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
_EXTENSION = re.compile(rf"[{_WS_CLASS}]*(?:ext(?:ension)?\.?|x|#)[{_WS_CLASS}]*[0-9]+$", re.IGNORECASE)
_E164_DIGITS = re.compile(r"1[2-9][0-9]{9}|[2-9][0-9]{7,14}")


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
    if email is None or not email.endswith(("@gmail.com", "@googlemail.com")):
        return email
    local, domain = email.split("@", 1)
    return local.replace(".", "") + "@" + domain


def normalize_email_uid2(email: str | None) -> str | None:
    if email is None or not email.endswith("@gmail.com"):
        return email
    local = email.split("@", 1)[0].split("+", 1)[0]
    return local.replace(".", "") + "@gmail.com"


def normalize_phone_e164(value: str | None, calling_code: str, trunk_prefix: str | None) -> str | None:
    if (hashed := _hashed(value)) is not None:
        return hashed
    trimmed = trim(value)
    if trimmed is None:
        return None
    written = _EXTENSION.sub("", trimmed, count=1).replace("(0)", "")
    if any(unicodedata.category(c).startswith("L") for c in written):
        return None
    digits = "".join(c for c in written if c in "0123456789")
    if written.startswith("+"):
        full = digits
    elif digits.startswith("00"):
        full = digits[2:]
    elif trunk_prefix and digits.startswith(trunk_prefix):
        full = calling_code + digits[len(trunk_prefix):]
    else:
        full = calling_code + digits
    return "+" + full if _E164_DIGITS.fullmatch(full) else None


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
