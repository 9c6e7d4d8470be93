"""Google Ads offline conversions through the Data Manager API (events:ingest).

Reads `delivery_key`, `payload` (one event, built by the mart), `event_time`
and `store_sales` of `google_ads_conversions` (docs/marts.md). Contract
followed, checked against Google's published Data Manager client types
(google-ads-datamanager 0.9.4: `IngestEventsRequest`, `Event`, `EventLocation`,
`Destination`, `RetrieveRequestStatusResponse`), its REST reference
(`requestStatus.retrieve`), its "Diagnostics" and store sales guides, and its
"Understand API errors" guide:

- `POST {base_url}/{api_version}/events:ingest`, OAuth bearer token in the
  `Authorization` header, never in the body. The token comes from
  `shipper.google_auth`: a service account key or a refresh token (refreshed
  before it expires, and once more on a 401), or a plain access token.
- Body `{"destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS",
  "accountId": <customer id, 10 digits>}, "productDestinationId": <conversion
  action id>}, "loginAccount"?: ...], "events": [...], "encoding": "HEX",
  "validateOnly"?: true}`; at most 2,000 events per request [V: the
  `IngestEventsRequest.events` field documentation].
- Event: `transactionId` (the order id, Google's dedup key), `eventTimestamp`
  (RFC 3339 with the order's own offset), `eventSource` (IN_STORE | PHONE),
  `conversionValue`, `currency`, `userData.userIdentifiers`, `consent`,
  `cartData` (items; Merchant Center ids when the dbt vars set them) and, for
  store sales, `eventLocation.storeId`. Built by the mart;
  tests/vendors/test_google_datamanager.py parses every request body into the
  library's `IngestEventsRequest`.
- Store sales (`store_sales = true`, allowlisted accounts): the same request to
  a conversion action of type STORE_SALES ("Send events", store sales guide);
  the mart built with the dbt var `google_ads_store_sales: true` carries
  `eventLocation.storeId` ("Required for Store Sales", `EventLocation.store_id`)
  and only store orders, eventSource IN_STORE. The mart's `store_sales` column
  says how it was built; a mart built for the other mode stops the destination.
- Google's fast-fail model: one invalid event fails the whole request with
  HTTP 400 INVALID_ARGUMENT and a `google.rpc.BadRequest` naming the fields.
  Violations naming `events[...]` make the batch `reject_batch`, and the
  delivery loop splits it until the bad events are alone. The index in the
  field path is not used to reject rows directly: Google's own pages show it
  both 0- and 1-based, and a wrong guess would reject a good event for good.
  Violations naming only request-level fields (destinations, encoding) stop
  the destination: no event can fix our configuration.
- HTTP 200 carries `{"requestId": ...}` (and maybe `fieldWarnings`). The
  request id is kept with every delivered row (the `error` column of a
  delivered row) and in the ledger's `platform_requests` /
  `platform_request_rows`. Google processes the events afterwards; the next
  live run (or `ship status --refresh`) asks `GET {base_url}/{api_version}/
  requestStatus:retrieve?requestId=...` ("wait 30 minutes", "may take up to 24
  hours": the Diagnostics guide) and records the answer: PROCESSING (asked
  again next time), SUCCESS, PARTIAL_SUCCESS or FAILED with `errorInfo.
  errorCounts` (a reason and a count, per destination: Google does not say which
  events of a request failed). A FAILED request's rows become rejected with
  Google's reasons (failed, so sent again, when a reason is Google's internal
  error or the account's setup; left delivered when every reason is a
  duplicate transaction id, which means the conversions are already there); a
  PARTIAL_SUCCESS request is listed by `ship status` with its reasons, its rows
  left delivered since nothing says which failed.
- `validate_only = true` (test mode) asks Google to check the request and
  ingest nothing: the rows are then recorded as failed ("validated only"), so
  they are sent for real once validate_only is off, never marked delivered.

Not confirmed: the age limit of a conversion on this path (`max_event_age_days`,
90 by default; the mart's window stays inside it); what requestStatus answers
for an unknown or too old request id (404 and 400 are both read as NOT_FOUND).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shipper.destinations.base import (
    PAYLOADS,
    Payload,
    PrepareContext,
    PrepareError,
    Request,
    RowOutcome,
    Rows,
    Template,
    Verdict,
    envelope,
    json_error_field,
    not_the_platforms,
    register,
)
from shipper.destinations.google_ads_status import (
    RequestStatuses,
    StatusCheck,
    describe_error,
    violations,
)
from shipper.destinations.rest import RestDestination
from shipper.google_auth import (
    CREDENTIAL_HINT,
    ENV_NAMES,
    BearerHeaders,
    TokenRefused,
    TokenSource,
    TokenUnavailable,
    token_source,
)
from shipper.google_auth import credentials_from_env as google_credentials_from_env
from shipper.jsontypes import JsonValue
from shipper.ledger import STORAGE_ERRORS
from shipper.redact import get_logger, scrub
from shipper.settings import ConfigError, DestinationSettings, setting

if TYPE_CHECKING:
    from shipper.hooks import Hooks
    from shipper.ledger import Ledger

log = get_logger(__name__)

_CUSTOMER_ID = re.compile(r"\d{10}")
_EVENT_FIELD = re.compile(r"^events\[(\d+)\]")
# Canonical codes (error.status) that mean "our credentials or account setup":
# nothing an event could fix.
_FATAL_STATUSES = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND",
                             "FAILED_PRECONDITION"})
_RETRY_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "ABORTED", "INTERNAL",
                             "DEADLINE_EXCEEDED"})


__all__ = ["GoogleAds", "GoogleAdsSettings", "StatusCheck", "account_id"]


@dataclass(frozen=True)
class GoogleAdsSettings(DestinationSettings):
    enabled: bool = setting(
        False, "Ship this destination when `ship run` names no destination (off until set up "
               "in shipper.toml)."
    )
    mart: str = setting("google_ads_conversions", "The mart this destination reads.")
    base_url: str = setting("https://datamanager.googleapis.com", "Data Manager API host.")
    api_version: str = setting("v1", "Data Manager API version segment.")
    batch_size: int = setting(2000, "Events per request (Data Manager: at most 2,000).")
    customer_id: str | None = setting(
        None, "Google Ads customer id receiving the conversions (operatingAccount), "
              "10 digits; dashes are removed."
    )
    conversion_action_id: str | None = setting(
        None, "Conversion action id the events are ingested into (productDestinationId); "
              "with store_sales, a STORE_SALES conversion action."
    )
    login_customer_id: str | None = setting(
        None, "Manager account id the credentials act through (loginAccount); empty when "
              "they have direct access to customer_id."
    )
    validate_only: bool = setting(
        False, "Test mode: Google validates each request and ingests nothing; the rows stay "
               "pending (recorded as failed) until this is off."
    )
    store_sales: bool = setting(
        False, "Store sales conversions (allowlisted Google Ads accounts): conversion_action_id "
               "is a STORE_SALES action and the mart is built with the dbt var "
               "google_ads_store_sales: true (store orders with eventLocation.storeId)."
    )
    oauth_endpoint: str | None = setting(
        None, "OAuth 2.0 token endpoint the service account key or refresh token is traded "
              "at; empty: the key file's token_uri, else https://oauth2.googleapis.com/token."
    )
    check_request_status: bool = setting(
        True, "At the start of each live run, ask Google how it processed the requests "
              "earlier runs sent (requestStatus.retrieve) and record it per row."
    )
    status_check_after_minutes: float = setting(
        30.0, "Ask about a request only this long after it was sent (Google: wait 30 "
              "minutes; processing may take up to 24 hours)."
    )
    status_check_days: int = setting(
        7, "Stop asking about a request that has no final status this many days after it "
           "was sent (it is then recorded as NO_STATUS)."
    )
    status_checks_per_run: int = setting(
        1000, "Requests asked about per run at most, oldest first; the rest wait."
    )
    max_event_age_days: int = setting(
        90, "Age limit: an older conversion is recorded as expired, not sent (not confirmed "
            "for Data Manager; the mart's google_ads_window_days stays inside it)."
    )


@register
class GoogleAds(RestDestination):
    name = "google_ads"
    title = "Google Ads"
    settings_class = GoogleAdsSettings
    max_batch_size = 2000
    # The variables a credential may be read from (shipper.google_auth); one kind is set.
    credential_env = ENV_NAMES
    required_settings = ("customer_id", "conversion_action_id")
    extra_columns = ("store_sales",)
    follows_requests = True
    settings: GoogleAdsSettings

    def __init__(self, settings: DestinationSettings, credentials: Mapping[str, str] | None,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(settings, credentials, now)
        _check_settings(self.settings)
        self._tokens: TokenSource | None = None
        self._ledger: Ledger | None = None
        self._run_id: str | None = None
        if credentials:
            _check_account_ids(self.settings)
            self._tokens = token_source(
                credentials, self.settings.oauth_endpoint,
                (self.settings.connect_timeout_seconds, self.settings.timeout_seconds))

    @classmethod
    def credential_hint(cls) -> str:
        return CREDENTIAL_HINT

    @classmethod
    def credentials_from_env(cls, settings: DestinationSettings,
                             env: Mapping[str, str]) -> dict[str, str] | None:
        """The one Google credential in the environment (shipper.google_auth), or None."""
        return google_credentials_from_env(env)

    # -- sending -------------------------------------------------------------------------------

    def _headers(self, headers: dict[str, str]) -> Mapping[str, str]:
        if self._tokens is None:  # a dry run: no credentials, no Authorization header
            return headers
        return BearerHeaders(headers, self._tokens)

    def build_request(self, payloads: Sequence[Payload]) -> Request:
        url = f"{self.base_url}/{self.settings.api_version}/events:ingest"
        destination: dict[str, Template] = {
            "operatingAccount": {
                "accountType": "GOOGLE_ADS",
                "accountId": account_id(self.settings.customer_id or ""),
            },
            "productDestinationId": self.settings.conversion_action_id or "",
        }
        if self.settings.login_customer_id:
            destination["loginAccount"] = {
                "accountType": "GOOGLE_ADS",
                "accountId": account_id(self.settings.login_customer_id),
            }
        template: dict[str, Template] = {
            "destinations": [destination],
            "events": PAYLOADS,
            "encoding": "HEX",
        }
        if self.settings.validate_only:
            template["validateOnly"] = True
        headers = self._headers({"Content-Type": "application/json"})
        return Request("POST", url, headers, envelope(template, payloads))

    def parse_response(self, status: int, body: JsonValue, rows: Rows) -> Verdict:
        if self._tokens is not None and status != 401:
            self._tokens.taken(self._tokens.last_used())
        if 200 <= status < 300:
            if self.settings.validate_only:
                return Verdict.per_row([RowOutcome(
                    "retryable", "validated only (validate_only = true): Google ingested "
                                 "nothing; sent for real once validate_only is off")] * len(rows))
            # Data Manager's success names the request it will process; without it
            # nothing says Google took the events.
            request_id = json_error_field(body, "requestId")
            if not isinstance(request_id, str) or not request_id:
                return not_the_platforms(self.title, status, body)
            self._remember(request_id, rows)
            note = f"Data Manager requestId {request_id}"
            return Verdict.per_row([RowOutcome("accepted", note)] * len(rows))
        if status == 401 and self._tokens is not None \
                and self._tokens.refused(self._tokens.last_used()):
            return Verdict.retry("Google refused the access token (HTTP 401); asking for a "
                                 "new one")
        error = json_error_field(body, "error")
        if not isinstance(error, Mapping):
            if status in (401, 403):
                return Verdict.fatal(f"Google answered HTTP {status}: check {self._hint()}")
            return not_the_platforms(self.title, status, body)
        canonical = str(error.get("status") or "")
        reason = describe_error(error)
        if status in (401, 403) or canonical in _FATAL_STATUSES:
            return Verdict.fatal(
                f"Google refused the credentials or account: {reason}; check "
                f"{self._hint()}, customer_id, login_customer_id and conversion_action_id"
            )
        if canonical in _RETRY_STATUSES:
            return Verdict.retry(f"Google asked to retry: {reason}")
        if status == 400 or canonical == "INVALID_ARGUMENT":
            fields = [field for field, _ in violations(error)]
            if fields and not any(_EVENT_FIELD.match(field) for field in fields):
                # The request itself (destinations, encoding) is wrong: every batch would be.
                return Verdict.fatal(f"Google refused the request, not an event: {reason}")
            return Verdict.reject_batch(reason)
        return Verdict.retry(f"unexpected HTTP {status} from Google: {reason}")

    def _hint(self) -> str:
        return self._tokens.hint if self._tokens is not None else CREDENTIAL_HINT

    def _remember(self, request_id: str, rows: Rows) -> None:
        """Keep which rows the request carried, to apply Google's processing status to
        them later. A ledger that cannot take it loses that only, not the delivery."""
        if self._ledger is None or self._run_id is None:
            return
        try:
            self._ledger.record_request(self._run_id, self.name, request_id, rows.keys)
        except STORAGE_ERRORS as exc:
            log.warning("%s: could not record requestId %s in the ledger (%s); its "
                        "processing status will not be read", self.name, request_id,
                        scrub(exc))

    # -- before and after sending --------------------------------------------------------------

    def open_prepare(self, context: PrepareContext) -> None:
        """A live run: the first token now (refused credentials stop here, before any row
        is read), then Google's processing status of the requests earlier runs sent."""
        if context.dry_run or self._tokens is None:
            return
        self._ledger, self._run_id = context.ledger, context.run_id
        problem = self._start_tokens(context.hooks)
        if problem:
            raise PrepareError(problem)
        if self.settings.check_request_status:
            check = self.check_requests(context.ledger, context.hooks, wait=True)
            if check.statuses or check.given_up or check.problem:
                # Rows Google failed, or questions that went unanswered, are worth a warning.
                level = log.warning if check.problem or check.rows_changed else log.info
                level("%s", check.describe(self.name))

    def prepare(self, rows: Rows) -> list[str | None]:
        flags = rows.extra.get("store_sales") or []
        if flags:
            built_for_store_sales = bool(flags[0])
            if any(bool(flag) != built_for_store_sales for flag in flags) \
                    or built_for_store_sales != self.settings.store_sales:
                raise PrepareError(_mode_mismatch(self.settings.store_sales, flags))
        if self._ledger is not None:
            # A live run: the fingerprint of each payload goes into the ledger with the
            # delivered row, so a row Google fails later is rejected with it and is not
            # sent again unless its payload changes (events carry none by default).
            rows.fingerprints = [
                print_ if print_ is not None else hashlib.sha256(payload).hexdigest()
                for print_, payload in zip(rows.fingerprints, rows.payloads, strict=True)]
        return [None] * len(rows)

    def close_prepare(self) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._tokens, "close", None)
        if close is not None:
            close()

    def _start_tokens(self, hooks: Hooks) -> str | None:
        """Take the run's clock and a first token; why not, in one sentence."""
        assert self._tokens is not None
        self._tokens.wallclock = hooks.wallclock
        try:
            self._tokens.token()
        except TokenRefused as exc:
            return str(exc)
        except TokenUnavailable as exc:
            return f"{exc}: nothing was sent; run again later"
        return None

    # -- Google's processing status (requestStatus.retrieve) -------------------------------------

    def refresh_request_status(self, ledger: Ledger, hooks: Hooks) -> StatusCheck:
        """`ship status --refresh`: ask about every request without a final status now."""
        if self._tokens is None:
            return StatusCheck(problem=f"no credentials: set {CREDENTIAL_HINT}")
        problem = self._start_tokens(hooks)
        if problem:
            return StatusCheck(problem=problem)
        return self.check_requests(ledger, hooks, wait=False)

    def check_requests(self, ledger: Ledger, hooks: Hooks, *, wait: bool) -> StatusCheck:
        """Ask Google about the requests without a final status (with `wait`, only those
        sent status_check_after_minutes ago or more) and record each answer."""
        statuses = RequestStatuses(self.name, self.settings, self.base_url, self._headers,
                                   self._tokens, self._hint)
        return statuses.check(ledger, hooks, self.settings, wait=wait)


def _mode_mismatch(store_sales: bool, flags: Sequence[object]) -> str:
    if store_sales:
        return ("store_sales is on for google_ads, but google_ads_conversions was not built for "
                "store sales: rebuild it with the dbt var google_ads_store_sales: true, or set "
                "GOOGLE_ADS_STORE_SALES=false")
    return ("google_ads_conversions was built for store sales (dbt var google_ads_store_sales), "
            "but store_sales is off for google_ads: set GOOGLE_ADS_STORE_SALES=true (a "
            "STORE_SALES conversion action), or rebuild the mart without it")


def account_id(value: str) -> str:
    """A customer id as Google wants it: digits only (123-456-7890 -> 1234567890)."""
    return value.replace("-", "").strip()


def _check_settings(settings: GoogleAdsSettings) -> None:
    fix = "under [destinations.google_ads] or in GOOGLE_ADS_"
    endpoint = settings.oauth_endpoint
    if endpoint and not endpoint.startswith(("https://", "http://")):
        raise ConfigError(f"oauth_endpoint {endpoint!r} must be an https:// URL: fix it "
                          f"{fix}OAUTH_ENDPOINT.")
    if settings.status_check_days < 1 or settings.status_checks_per_run < 1:
        raise ConfigError("status_check_days and status_checks_per_run must be at least 1: "
                          f"fix them {fix}STATUS_CHECK_DAYS / "
                          "GOOGLE_ADS_STATUS_CHECKS_PER_RUN.")
    if settings.status_check_after_minutes < 0:
        raise ConfigError(f"status_check_after_minutes must not be negative: fix it {fix}"
                          "STATUS_CHECK_AFTER_MINUTES.")


def _check_account_ids(settings: GoogleAdsSettings) -> None:
    """A live send with a malformed account id would have every batch refused."""
    for key in ("customer_id", "login_customer_id"):
        value = getattr(settings, key)
        if value and not _CUSTOMER_ID.fullmatch(account_id(value)):
            raise ConfigError(
                f"google_ads {key} {value!r} is not a 10-digit Google Ads customer id: "
                f"fix GOOGLE_ADS_{key.upper()} or {key} under [destinations.google_ads]."
            )
