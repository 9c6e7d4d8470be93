"""Keep credentials out of logs, the ledger and the outbox.

Secrets are registered when they are read from the environment; `scrub`
replaces every registered value (and anything shaped like a token parameter
or header) before a message is logged or stored. A logging filter applies the
same scrub to every record of the shipper's loggers and of urllib3, whose
debug lines print request URLs (Meta's token travels as a query parameter).
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"

# Token-shaped fragments, whatever their value: a query/form parameter, a JSON
# field, or an auth header echoed in an error message.
_TOKEN_PATTERNS = (
    re.compile(r"(?i)((?:access_token|api_key|apikey|token|secret)=)[^&\s\"']+"),
    re.compile(r"(?i)(\"(?:access_token|access-token|api_key|token)\"\s*:\s*\")[^\"]*"),
    re.compile(r"(?i)((?:access-token|authorization|ttd-auth)\s*[:=]\s*)(?:bearer\s+)?[^\s,;\"']+"),
)

# Contact details a platform can quote back (Klaviyo receives addresses and numbers in
# clear): anything with an @ inside, and E.164 numbers.
_CONTACT_PATTERNS = (
    # An address starts where a word starts (not after `sftp://`, so a URL's user@host
    # stays readable) and has a dotted domain.
    (re.compile(r"(?<![^\s\"'<>(),;=\[])[^\s\"'<>(),;:/@]+@[^\s\"'<>(),;:/@]+"
                r"\.[^\s\"'<>(),;:/@]+"), "<email>"),
    (re.compile(r"\+[1-9]\d{6,14}\b"), "<phone>"),
)

_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a credential so it is masked wherever it would be printed, in every
    form a message can carry it: as is, URL-encoded, as JSON or Python would quote it."""
    # Very short values would mask innocent substrings everywhere; real tokens are long.
    if not value or len(value) < 4:
        return
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""),
             json.dumps(value)[1:-1], repr(value)[1:-1]}
    with _lock:
        _secrets.update(form for form in forms if len(form) >= 4)


def scrub(text: object) -> str:
    """Return `text` as a string with every known secret, token-shaped value and contact
    detail (email address, E.164 number) masked."""
    result = str(text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in result:
            result = result.replace(secret, MASK)
    for pattern in _TOKEN_PATTERNS:
        result = pattern.sub(lambda match: match.group(1) + MASK, result)
    for pattern, placeholder in _CONTACT_PATTERNS:
        result = pattern.sub(placeholder, result)
    return result


class ScrubFilter(logging.Filter):
    """Rewrite a log record's final message through `scrub` before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record is still logged, unformatted
            message = str(record.msg)
        cleaned = scrub(message)
        record.msg = cleaned
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            # Tracebacks carry exception messages (URLs with query strings): keep the
            # type and a scrubbed message, drop the frames.
            exc = record.exc_info[1]
            record.msg = f"{cleaned} ({type(exc).__name__}: {scrub(exc)})"
            record.exc_info = None
            record.exc_text = None
        return True


_FILTER = ScrubFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger whose records are scrubbed at the source, whichever handler receives them."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def guard_third_party_loggers() -> None:
    """Scrub urllib3's connection logs, which include full request URLs at debug level."""
    for name in ("urllib3.connectionpool", "urllib3.connection", "requests"):
        get_logger(name)
