"""Google's processing status of the requests Google Ads was sent (Data Manager's
`requestStatus.retrieve`), and how Google's errors read.

Google processes ingested events after answering. A later live run (or `ship
status --refresh`) asks about each request without a final status and records
the answer in the ledger: PROCESSING (asked again next time), SUCCESS,
PARTIAL_SUCCESS or FAILED with `errorInfo.errorCounts`; see the module
documentation of `shipper.destinations.google_ads` for what becomes of the rows.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from shipper.destinations.base import Request, json_error_field
from shipper.google_auth import TokenSource
from shipper.http import RetryingSession
from shipper.jsontypes import JsonValue
from shipper.ledger import utcnow
from shipper.settings import DestinationSettings

if TYPE_CHECKING:
    from shipper.hooks import Hooks
    from shipper.ledger import Ledger

__all__ = ["RequestStatuses", "StatusAnswer", "StatusCheck", "describe_error", "settle",
           "violations"]

_BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
_REQUEST_INFO = "type.googleapis.com/google.rpc.RequestInfo"

# RequestStatusPerDestination.RequestStatus; the Diagnostics guide writes FAILURE.
_FAILED = frozenset({"FAILED", "FAILURE"})
_SETTLED = frozenset({"SUCCESS", "PARTIAL_SUCCESS", *_FAILED})
_UNKNOWN = "REQUEST_STATUS_UNKNOWN"
# ProcessingErrorReason values after which the same event, sent again, can succeed:
# Google's own error, or the account's setup (terms, the advertiser's consent).
_RETRY_REASONS = frozenset({
    "PROCESSING_ERROR_REASON_INTERNAL_ERROR",
    "PROCESSING_ERROR_REASON_DESTINATION_ACCOUNT_ENHANCED_CONVERSIONS_TERMS_NOT_SIGNED",
    "PROCESSING_ERROR_REASON_NO_CONSENT",
})
# The conversion is already in Google Ads (a resend after a run was killed).
_DUPLICATE = "PROCESSING_ERROR_REASON_DUPLICATE_TRANSACTION_ID"


class StatusSettings(Protocol):
    """The settings asking about requests reads (GoogleAdsSettings has them)."""

    @property
    def api_version(self) -> str: ...
    @property
    def status_check_after_minutes(self) -> float: ...
    @property
    def status_check_days(self) -> int: ...
    @property
    def status_checks_per_run(self) -> int: ...


@dataclass
class StatusCheck:
    """What asking Google about earlier requests found."""

    statuses: Counter[str] = field(default_factory=Counter)
    rows_changed: Counter[str] = field(default_factory=Counter)
    given_up: int = 0
    problem: str | None = None

    def describe(self, name: str) -> str:
        if not self.statuses and not self.given_up and not self.problem:
            return f"{name}: no request waits for Google's processing status"
        parts = [f"{count} {status}" for status, count in sorted(self.statuses.items())]
        line = f"{name}: Google's processing status of {sum(self.statuses.values())} " \
               f"request(s): {', '.join(parts) or 'none read'}"
        changes = [f"{count:,} row(s) now {status}"
                   for status, count in sorted(self.rows_changed.items())]
        if changes:
            line += f"; {', '.join(changes)}"
        if self.given_up:
            line += f"; {self.given_up} request(s) without a final status given up"
        if self.problem:
            line += f"; stopped asking: {self.problem}"
        return line


@dataclass(frozen=True)
class StatusAnswer:
    """Google's answer about one request, as far as the retrying session and the ledger
    are concerned."""

    retryable: bool
    reason: str | None
    status: str = ""
    rows_status: str | None = None
    rows_reason: str | None = None
    fatal: bool = False


class RequestStatuses:
    """Asks Google about one destination's requests and records the answers."""

    def __init__(self, name: str, settings: StatusSettings, base_url: str,
                 headers: Callable[[dict[str, str]], Mapping[str, str]],
                 tokens: TokenSource | None, hint: Callable[[], str]) -> None:
        self.name = name
        self.settings = settings
        self.base_url = base_url
        self._headers = headers
        self._tokens = tokens
        self._hint = hint

    def check(self, ledger: Ledger, hooks: Hooks, session_settings: DestinationSettings, *,
              wait: bool) -> StatusCheck:
        """Ask Google about the requests without a final status (with `wait`, only those
        sent status_check_after_minutes ago or more) and record each answer."""
        settings = self.settings
        check = StatusCheck()
        now = utcnow()
        days = settings.status_check_days
        check.given_up = ledger.give_up_requests(
            self.name, now - dt.timedelta(days=days),
            f"Google gave no final processing status within {days} day(s)")
        sent_before = now - dt.timedelta(minutes=settings.status_check_after_minutes) \
            if wait else None
        waiting = ledger.requests_to_check(self.name, sent_before=sent_before,
                                           limit=settings.status_checks_per_run)
        if not waiting:
            return check
        session = RetryingSession.for_destination(self.name, session_settings,
                                                  **hooks.for_session())
        try:
            for request in waiting:
                if not self._ask(session, ledger, str(request["request_id"]), check):
                    break
        finally:
            session.close()
        return check

    def _ask(self, session: RetryingSession, ledger: Ledger, request_id: str,
             check: StatusCheck) -> bool:
        """Ask about one request and record the answer; False when asking must stop."""
        result = session.send(self._request(request_id), self._reader(request_id))
        answer: StatusAnswer | None = result.verdict
        if answer is None:
            check.problem = result.failure_reason or "no answer"
            return False
        if answer.fatal:
            check.problem = answer.reason
            return False
        changed = ledger.settle_request(self.name, request_id, answer.status, answer.reason,
                                        answer.rows_status, answer.rows_reason)
        check.statuses[answer.status] += 1
        if changed and answer.rows_status:
            check.rows_changed[answer.rows_status] += changed
        return True

    def _request(self, request_id: str) -> Request:
        url = f"{self.base_url}/{self.settings.api_version}/requestStatus:retrieve"
        return Request("GET", url, self._headers({"Accept": "application/json"}), None,
                       {"requestId": request_id})

    def _reader(self, request_id: str) -> Callable[[int, JsonValue], StatusAnswer]:
        def read(status: int, body: JsonValue) -> StatusAnswer:
            return self._read(status, body, request_id)
        return read

    def _read(self, status: int, body: JsonValue, request_id: str) -> StatusAnswer:
        tokens = self._tokens
        if tokens is not None and status != 401:
            tokens.taken(tokens.last_used())
        if 200 <= status < 300:
            entries = json_error_field(body, "requestStatusPerDestination")
            if not isinstance(entries, list):
                return StatusAnswer(True, f"HTTP {status} from Google without a request "
                                          "status")
            return settle(request_id, entries)
        if status == 401 and tokens is not None and tokens.refused(tokens.last_used()):
            return StatusAnswer(True, "Google refused the access token (HTTP 401); asking "
                                      "for a new one")
        error = json_error_field(body, "error")
        reason = describe_error(error) if isinstance(error, Mapping) else f"HTTP {status}"
        if status in (400, 404):
            # Not a request id Google knows (any more): nothing more will come.
            return StatusAnswer(False, f"Google does not know requestId {request_id}: "
                                       f"{reason}", "NOT_FOUND")
        if 400 <= status < 500:
            return StatusAnswer(False, f"Google refused to say how it processed requestId "
                                       f"{request_id}: {reason}; check {self._hint()}",
                                fatal=True)
        return StatusAnswer(True, f"unexpected HTTP {status} from Google: {reason}")


def settle(request_id: str, entries: list[JsonValue]) -> StatusAnswer:
    """What RetrieveRequestStatusResponse.requestStatusPerDestination says about the
    request (this destination sends one Destination per request), for the ledger."""
    statuses = [str(entry.get("requestStatus") or _UNKNOWN)
                if isinstance(entry, Mapping) else _UNKNOWN for entry in entries] or [_UNKNOWN]
    if not all(status in _SETTLED for status in statuses):
        return StatusAnswer(False, "Google is still processing the request", "PROCESSING")
    errors, warnings, records = _tally(entries)
    if all(status == "SUCCESS" for status in statuses):
        overall = "SUCCESS"
    elif all(status in _FAILED for status in statuses):
        overall = "FAILED"
    else:
        overall = "PARTIAL_SUCCESS"
    text = _describe_status(overall, errors, warnings, records)
    if overall != "FAILED":
        return StatusAnswer(False, text, overall)
    rows_reason = (f"Google could not process this event (Data Manager requestId {request_id}, "
                   f"{text})")
    return StatusAnswer(False, text, overall, _failed_rows_status(set(errors)), rows_reason)


def _tally(entries: list[JsonValue]) -> tuple[Counter[str], Counter[str], int]:
    """The error and warning counts by reason over every destination's entry, and the
    largest record count any entry names."""
    errors: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    records = 0
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        for counts, key in ((errors, ("errorInfo", "errorCounts")),
                            (warnings, ("warningInfo", "warningCounts"))):
            # A list, as Google documents it, iterated unchecked.
            found: Any = json_error_field(entry, *key) or ()
            for item in found:
                if isinstance(item, Mapping):
                    counts[str(item.get("reason") or "UNSPECIFIED")] += _count(
                        item.get("recordCount"))
        records = max(records, _count(json_error_field(entry, "eventsIngestionStatus",
                                                       "recordCount")))
    return errors, warnings, records


def _describe_status(overall: str, errors: Counter[str], warnings: Counter[str],
                     records: int) -> str:
    failed = sum(errors.values())
    text = overall
    if overall != "SUCCESS":
        of = f" of {records:,}" if records else ""
        text += f": {failed:,}{of} events failed" if failed else ": Google gave no reason"
    if errors:
        text += " (" + ", ".join(f"{reason} x{count:,}"
                                 for reason, count in errors.most_common()) + ")"
    if warnings:
        text += "; warnings: " + ", ".join(f"{reason} x{count:,}"
                                          for reason, count in warnings.most_common())
    return text


def _failed_rows_status(reasons: set[str]) -> str | None:
    """What the rows of a FAILED request become: failed (sent again) after Google's own
    error or the account's setup, untouched (delivered) when every reason is a duplicate
    transaction id, rejected otherwise."""
    if reasons & _RETRY_REASONS:
        return "failed"
    if reasons and reasons <= {_DUPLICATE}:
        return None  # already in Google Ads: the rows stay delivered
    return "rejected"


def _count(value: JsonValue) -> int:
    """A proto3 JSON int64: a number, or its decimal text."""
    if not isinstance(value, (int, float, str)):  # int() of anything else: TypeError
        return 0
    try:
        return int(value)
    except ValueError:
        return 0


# Google's error object is walked as Google documents it: `details` and `fieldViolations`
# are lists, iterated unchecked.
def violations(error: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (field, description) pairs of a google.rpc.BadRequest detail."""
    found = []
    for detail in error.get("details") or ():
        if isinstance(detail, Mapping) and detail.get("@type") == _BAD_REQUEST:
            for violation in detail.get("fieldViolations") or ():
                if isinstance(violation, Mapping):
                    found.append((str(violation.get("field") or ""),
                                  str(violation.get("description") or "")))
    return found


def describe_error(error: Mapping[str, Any]) -> str:
    """Google's message, its canonical code, the field violations and the request id."""
    parts = [str(error.get("message") or "no message")]
    if error.get("status"):
        parts[0] += f" ({error['status']})"
    found = violations(error)
    if found:
        parts.append("; ".join(f"{name}: {text}" for name, text in found[:5]))
    for detail in error.get("details") or ():
        if (isinstance(detail, Mapping) and detail.get("@type") == _REQUEST_INFO
                and detail.get("requestId")):
            parts.append(f"requestId {detail['requestId']}")
    return " - ".join(parts)
