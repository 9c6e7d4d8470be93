"""The UID2 identity-map step of The Trade Desk, and its cache in the ledger.

The Trade Desk takes no hashed email or phone: each row of
`the_trade_desk_conversions` carries a UID2 input hash (`uid2_hash`: base64 of
the SHA-256 of the UID2-normalised email or E.164 phone, `identifier_type`
'email' | 'phone'), which must become a raw UID2 before the conversion is
sent. Only these hashes leave the shipper, never an email or a phone number.

Which API. UID2's identity map v3, `POST {uid2_base_url}/v3/identity/map`
(`IdentityMapV3Client` in uid2-client 2.9.0). v2 (`/v2/identity/map` plus
`/v2/identity/buckets` to find rotated salt buckets) is marked for deprecation
by UID2; v3 takes emails and phones in one request, needs no second endpoint,
answers in the order of the request, and says per identity when its raw UID2
may be refreshed (`r`), which is all a cache needs.

What comes from the SDK and what does not. The request envelope is built and
the response opened with the SDK's own functions (`create_envelope`,
`parse_response`, `auth_headers`; AES-256-GCM over timestamp + nonce +
JSON), and `IdentityMapV3Input` writes the request JSON. The SDK's transport
(`urllib.request.urlopen` without a timeout, no retry) is replaced by a
`shipper.http.RetryingSession` with the destination's timeouts and retry
policy (`shipper.retry`: 429/5xx/timeouts/connection errors, `Retry-After`
honoured, the same budget as a batch), a fresh envelope for each attempt; and
the answer is read here rather than by `IdentityMapV3Response`: UID2's
reference gives `r` in milliseconds while the SDKs read seconds, and the
SDK's datetime conversion fails on milliseconds. Both are accepted (a value
above 10^11 is milliseconds).

Limits followed [V: UID2 docs, POST /identity/map]: at most 5,000 hashes per
request (`uid2_batch_size`), requests sent one after the other on one
connection (never in parallel), and mappings stored rather than re-mapped.

The cache is the ledger table `uid2_mappings`, one row per (identifier_type,
uid2_hash): `uid2` (the current raw UID2, NULL when the hash maps to nothing),
`previous_uid2`, `unmapped_reason` ('optout', 'invalid identifier', or what
else UID2 says), `refresh_from` (UTC: UID2's refresh time; for a hash that
maps to nothing, the time UID2 said so) and `mapped_at`. A mapping is used as
long as `refresh_from` is in the future, an unmapped answer for
`unmapped_recheck_hours` after it; then the hash is sent to UID2 again and the
row replaced (UID2 may or may not answer with a new raw UID2). The table holds raw UID2s: treat the ledger file as the personal data
it then is.

Dry run: nothing is sent to UID2 and nothing is written to the cache. The
identity-map requests that a live run would send (plain JSON, hashes only,
not encrypted) are written to the outbox as
`<run_id>-uid2-identity-map-<n>.json`, and the conversion bodies carry the
cached UID2 where there is one (even one due for refresh) and otherwise the
placeholder `DRY_RUN_PLACEHOLDER`.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Unpack

import duckdb
import pyarrow as pa
from uid2_client import IdentityMapV3Input, Uid2Response
from uid2_client.request_response_util import auth_headers, create_envelope, parse_response

from shipper.destinations.base import PrepareError, Request
from shipper.hooks import SessionHooks
from shipper.http import Answer, NoAnswer, RetryingSession
from shipper.jsontypes import JsonValue
from shipper.redact import get_logger, scrub
from shipper.retry import GaveUp, Retry, retryable_status
from shipper.settings import DestinationSettings

log = get_logger(__name__)

MAP_PATH = "/v3/identity/map"
MAX_HASHES_PER_REQUEST = 5000
# Where a dry run puts the UID2 it could not look up.
DRY_RUN_PLACEHOLDER = "UID2-NOT-MAPPED-IN-DRY-RUN"
# The request keys of the identity map for each mart identifier_type.
REQUEST_KEYS = {"email": "email_hash", "phone": "phone_hash"}
_MILLISECONDS_FROM = 10**11

_CACHE_SCHEMA = """
create table if not exists uid2_mappings (
    identifier_type varchar not null,
    uid2_hash varchar not null,
    uid2 varchar,
    previous_uid2 varchar,
    unmapped_reason varchar,
    refresh_from timestamp not null,
    mapped_at timestamp not null,
    primary key (identifier_type, uid2_hash)
);
"""

_KEY_SCHEMA = pa.schema([("identifier_type", pa.string()), ("uid2_hash", pa.string())])
_MAPPING_SCHEMA = pa.schema([
    ("identifier_type", pa.string()),
    ("uid2_hash", pa.string()),
    ("uid2", pa.string()),
    ("previous_uid2", pa.string()),
    ("unmapped_reason", pa.string()),
    ("refresh_from", pa.timestamp("us")),
    ("mapped_at", pa.timestamp("us")),
])

Key = tuple[str, str]  # (identifier_type, uid2_hash)


@dataclass(frozen=True)
class Uid2Mapping:
    """What UID2 said about one hash (or what the cache remembers of it)."""

    uid2: str | None
    previous_uid2: str | None
    unmapped_reason: str | None
    # Naive UTC, like every ledger timestamp. For a hash that maps to nothing: when UID2
    # said so (None in a fresh answer, the mapping time once stored).
    refresh_from: dt.datetime | None

    def fresh(self, now: dt.datetime, unmapped_recheck: dt.timedelta) -> bool:
        if self.refresh_from is None:
            return False
        if self.uid2 is None:
            return self.refresh_from + unmapped_recheck > now
        return self.refresh_from > now


def utc(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)


def refresh_time(value: JsonValue) -> dt.datetime:
    """UID2's `r` (seconds per the SDKs, milliseconds per the reference) as naive UTC."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"refresh timestamp {value!r} is not a number")
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    return utc(seconds)


# -- the identity-map service ------------------------------------------------------------------


class IdentityMapService:
    """`POST /v3/identity/map` with the SDK's encrypted envelope, through a retrying
    session of `shipper.http` (the destination's policy, one connection)."""

    def __init__(self, base_url: str, api_key: str, secret_key: str,
                 session: RetryingSession) -> None:
        self.url = base_url.rstrip("/") + MAP_PATH
        self.api_key = api_key
        self.secret = _decode_secret(secret_key)
        self.session = session
        self.requests_sent = 0

    @classmethod
    def for_settings(cls, base_url: str, api_key: str, secret_key: str, name: str,
                     settings: DestinationSettings,
                     **injected: Unpack[SessionHooks]) -> IdentityMapService:
        """The service over `RetryingSession.for_destination(settings)`, on one connection
        (UID2 asks for batches one after the other, never in parallel) and outside the
        destination's `requests_per_second`."""
        session = RetryingSession.for_destination(name, settings, pool_size=1,
                                                  rate_limited=False, **injected)
        return cls(base_url, api_key, secret_key, session)

    def close(self) -> None:
        self.session.close()

    def map(self, keys: Sequence[Key]) -> dict[Key, Uid2Mapping]:
        """Map at most MAX_HASHES_PER_REQUEST hashes in one request (retried when transient)."""
        request_input, order = identity_map_input(keys)
        plain = request_input.get_identity_map_input_as_json_string().encode()

        def attempt(number: int) -> dict[Key, Uid2Mapping] | Retry:
            # A fresh envelope per attempt: the operator refuses stale timestamps and
            # reused nonces.
            envelope = create_envelope(self.secret, dt.datetime.fromtimestamp(
                self.session.wallclock(), dt.UTC), plain)
            headers = {**auth_headers(self.api_key), "Content-Type": "application/octet-stream"}
            try:
                answer = self.session.answer(
                    Request("POST", self.url, headers, envelope.binary_envelope))
            except NoAnswer as exc:
                if exc.fatal:
                    raise PrepareError(
                        f"cannot reach UID2 at {self.url} ({exc.reason}): check uid2_base_url "
                        "(UID2_BASE_URL)") from None
                return Retry(exc.reason)
            self.requests_sent += 1
            if answer.status == 200:
                return self._read(answer, envelope.nonce, order)
            return self._refused(answer)

        outcome = self.session.retrying(attempt)
        if isinstance(outcome, GaveUp):
            raise PrepareError(f"the UID2 identity map gave up after {outcome.attempts} "
                               f"attempt(s): {outcome.reason}")
        return outcome

    def _refused(self, answer: Answer) -> Retry:
        """A Retry for an answer worth another attempt (429, 5xx); PrepareError otherwise."""
        status = answer.status
        message = _error_message(answer)
        if status in (401, 403):
            raise PrepareError(
                f"UID2 refused the credentials (HTTP {status}: {message}): check "
                "UID2_API_KEY and UID2_SECRET_KEY")
        if not retryable_status(status):
            raise PrepareError(
                f"UID2 refused the identity-map request (HTTP {status}: {message}); "
                "an operator that cannot decrypt it means a wrong UID2_SECRET_KEY")
        return Retry(f"UID2 answered HTTP {status} ({message})", self.session.asked_wait(answer),
                     throttled=status == 429)

    def _read(self, answer: Answer, nonce: bytes,
              order: Mapping[str, list[Key]]) -> dict[Key, Uid2Mapping]:
        binary = answer.headers.get("Content-Type", "").startswith("application/octet-stream")
        response = (Uid2Response.from_bytes(answer.content) if binary
                    else Uid2Response.from_string(answer.text))
        try:
            decrypted = parse_response(self.secret, response, nonce)
        except (ValueError, KeyError, binascii.Error) as exc:
            raise PrepareError(
                f"cannot decrypt the UID2 answer ({exc}): check UID2_SECRET_KEY") from None
        try:
            payload = json.loads(decrypted)
        except ValueError:
            raise PrepareError("the UID2 answer is not JSON once decrypted") from None
        if not isinstance(payload, dict) or payload.get("status") != "success":
            status = payload.get("status") if isinstance(payload, dict) else None
            raise PrepareError(f"UID2 answered status {status!r} to the identity map")
        return read_identity_map(payload.get("body"), order)


def identity_map_input(keys: Sequence[Key]) -> tuple[IdentityMapV3Input, dict[str, list[Key]]]:
    """The SDK's request input for `keys`, and the keys in the order of each request array."""
    request_input = IdentityMapV3Input()
    order: dict[str, list[Key]] = {request_key: [] for request_key in REQUEST_KEYS.values()}
    for key in keys:
        identifier_type, uid2_hash = key
        if identifier_type == "email":
            request_input.with_hashed_email(uid2_hash)
        elif identifier_type == "phone":
            request_input.with_hashed_phone(uid2_hash)
        else:
            raise ValueError(f"unknown identifier_type {identifier_type!r}")
        order[REQUEST_KEYS[identifier_type]].append(key)
    return request_input, order


def read_identity_map(body: object, order: Mapping[str, list[Key]]) -> dict[Key, Uid2Mapping]:
    """Each answer sits at the index of its hash in the request array of its type."""
    if not isinstance(body, dict):
        raise PrepareError("the UID2 identity-map answer has no body")
    results: dict[Key, Uid2Mapping] = {}
    for request_key, keys in order.items():
        answers = body.get(request_key) or []
        if len(answers) != len(keys):
            raise PrepareError(
                f"UID2 answered {len(answers)} {request_key} results for {len(keys)} hashes")
        for key, answer in zip(keys, answers, strict=True):
            if not isinstance(answer, dict):
                raise PrepareError(f"UID2 answered {answer!r} for a {request_key}")
            if answer.get("u"):
                try:
                    refresh_from = refresh_time(answer.get("r"))
                except (TypeError, ValueError, OverflowError, OSError) as exc:
                    raise PrepareError(f"UID2 answered a bad refresh time ({exc})") from None
                results[key] = Uid2Mapping(answer["u"], answer.get("p"), None, refresh_from)
            else:
                reason = str(answer.get("e") or "no UID2 in the answer")
                results[key] = Uid2Mapping(None, None, reason, None)
    return results


def _decode_secret(secret_key: str) -> bytes:
    try:
        secret = base64.b64decode(secret_key.strip(), validate=True)
    except (binascii.Error, ValueError):
        secret = b""
    if len(secret) not in (16, 24, 32):
        raise PrepareError(
            "UID2_SECRET_KEY is not the base64 client secret UID2 issued (an AES key of "
            "32 bytes): copy it again from the UID2 portal")
    return secret


def _error_message(answer: Answer) -> str:
    # UID2 answers errors unencrypted: {"status": "client_error", "message": "..."}.
    try:
        payload = json.loads(answer.content)
    except ValueError:
        return scrub(answer.text[:200]) or "no message"
    if isinstance(payload, dict):
        parts = [str(payload[key]) for key in ("status", "message") if payload.get(key)]
        if parts:
            return scrub(": ".join(parts))[:300]
    return scrub(str(payload))[:300]


# -- the cache ---------------------------------------------------------------------------------


class MappingCache:
    """The `uid2_mappings` table of the ledger."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        con.execute(_CACHE_SCHEMA)

    def lookup(self, keys: Iterable[Key]) -> dict[Key, Uid2Mapping]:
        keys = list(keys)
        if not keys:
            return {}
        table = pa.Table.from_pylist(
            [{"identifier_type": key[0], "uid2_hash": key[1]} for key in keys], schema=_KEY_SCHEMA)
        self.con.register("uid2_lookup_keys", table)
        try:
            rows = self.con.execute(
                """
                select
                    mappings.identifier_type,
                    mappings.uid2_hash,
                    mappings.uid2,
                    mappings.previous_uid2,
                    mappings.unmapped_reason,
                    mappings.refresh_from
                from uid2_mappings as mappings
                inner join uid2_lookup_keys as wanted
                    on wanted.identifier_type = mappings.identifier_type
                    and wanted.uid2_hash = mappings.uid2_hash
                """
            ).fetchall()
        finally:
            self.con.unregister("uid2_lookup_keys")
        return {(row[0], row[1]): Uid2Mapping(row[2], row[3], row[4], row[5]) for row in rows}

    def store(self, results: Mapping[Key, Uid2Mapping], mapped_at: dt.datetime) -> None:
        if not results:
            return
        table = pa.Table.from_pylist(
            [
                {
                    "identifier_type": key[0],
                    "uid2_hash": key[1],
                    "uid2": result.uid2,
                    "previous_uid2": result.previous_uid2,
                    "unmapped_reason": result.unmapped_reason,
                    "refresh_from": result.refresh_from,
                    "mapped_at": mapped_at,
                }
                for key, result in results.items()
            ],
            schema=_MAPPING_SCHEMA,
        )
        self.con.register("uid2_new_mappings", table)
        try:
            self.con.execute("begin transaction")
            try:
                self.con.execute(
                    """
                    insert into uid2_mappings
                    select * from uid2_new_mappings
                    on conflict (identifier_type, uid2_hash) do update set
                        uid2 = excluded.uid2,
                        previous_uid2 = excluded.previous_uid2,
                        unmapped_reason = excluded.unmapped_reason,
                        refresh_from = excluded.refresh_from,
                        mapped_at = excluded.mapped_at
                    """
                )
                self.con.execute("commit")
            except BaseException:
                self.con.execute("rollback")
                raise
        finally:
            self.con.unregister("uid2_new_mappings")


# -- the step ----------------------------------------------------------------------------------


@dataclass
class MappingCounts:
    """What the step did in one run, for the log line at the end."""

    looked_up: int = 0
    from_cache: int = 0
    mapped: int = 0
    refreshed: int = 0
    not_mapped_in_dry_run: int = 0
    # Rows (not hashes) whose hash maps to nothing, by UID2's reason.
    unmapped: Counter[str] = field(default_factory=Counter)


class Uid2Mapper:
    """Maps the (identifier_type, uid2_hash) of each row to its raw UID2.

    Live: cached mappings still fresh are used as they are; the other hashes go
    to UID2 in batches of `batch_size` and the answers are stored before they
    are used. Dry run: see the module docstring.
    """

    def __init__(self, cache: MappingCache, *, service: IdentityMapService | None,
                 batch_size: int, unmapped_recheck_hours: float,
                 now: Callable[[], float], outbox: Path | None = None,
                 run_id: str = "") -> None:
        if not 1 <= batch_size <= MAX_HASHES_PER_REQUEST:
            raise PrepareError(f"uid2_batch_size must be between 1 and {MAX_HASHES_PER_REQUEST}")
        self.cache = cache
        self.service = service
        self.batch_size = batch_size
        self.unmapped_recheck = dt.timedelta(hours=unmapped_recheck_hours)
        self.now = now
        self.outbox = outbox
        self.run_id = run_id
        self.outbox_files = 0
        self.counts = MappingCounts()

    @property
    def dry_run(self) -> bool:
        return self.service is None

    def resolve(self, identifier_types: Sequence[str | None],
                uid2_hashes: Sequence[str | None]) -> list[tuple[str | None, str | None]]:
        """Per row (the two columns side by side): (uid2, None) when the hash maps to a
        UID2 (in a dry run, a hash never mapped gives DRY_RUN_PLACEHOLDER), or (None,
        why) when it maps to nothing."""
        rows = list(zip(identifier_types, uid2_hashes, strict=True))
        keys: list[Key] = list(dict.fromkeys(
            (identifier_type, uid2_hash) for identifier_type, uid2_hash in rows
            if identifier_type in REQUEST_KEYS and uid2_hash))
        known = self._known(keys) if keys else {}
        counts = self.counts
        resolved: list[tuple[str | None, str | None]] = []
        for identifier_type, uid2_hash in rows:
            if identifier_type not in REQUEST_KEYS or not uid2_hash:
                reason = ("uid2_hash is missing" if identifier_type in REQUEST_KEYS
                          else "identifier_type is not 'email' or 'phone'")
                resolved.append((None, reason))
                counts.unmapped[reason] += 1
                continue
            mapping = known.get((identifier_type, uid2_hash))
            if mapping is None:  # dry run, never mapped
                resolved.append((DRY_RUN_PLACEHOLDER, None))
            elif mapping.uid2 is None:
                resolved.append((None, mapping.unmapped_reason))
                counts.unmapped[mapping.unmapped_reason or "unknown"] += 1
            else:
                resolved.append((mapping.uid2, None))
        return resolved

    def _known(self, keys: Sequence[Key]) -> dict[Key, Uid2Mapping]:
        """The mappings of `keys`: fresh ones from the cache, the rest asked of UID2 (in
        a dry run: written to the outbox, and the stale cached ones used)."""
        now = utc(self.now())
        cached = self.cache.lookup(keys)
        fresh = {key: mapping for key, mapping in cached.items()
                 if mapping.fresh(now, self.unmapped_recheck)}
        due = [key for key in keys if key not in fresh]
        counts = self.counts
        counts.looked_up += len(keys)
        counts.from_cache += len(fresh)
        known = dict(fresh)
        for start in range(0, len(due), self.batch_size):
            chunk = due[start:start + self.batch_size]
            if self.service is None:
                self._write_request(chunk)
                for key in chunk:
                    stale = cached.get(key)
                    if stale is not None:
                        known[key] = stale
                    else:
                        counts.not_mapped_in_dry_run += 1
                continue
            answered = self.service.map(chunk)
            mapped_at = utc(self.now())
            for key, mapping in answered.items():
                if mapping.refresh_from is None:
                    answered[key] = Uid2Mapping(None, None, mapping.unmapped_reason, mapped_at)
            self.cache.store(answered, mapped_at)
            counts.mapped += len(answered)
            counts.refreshed += sum(1 for key in answered if key in cached)
            known.update(answered)
        return known

    def _write_request(self, keys: Sequence[Key]) -> None:
        if self.outbox is None:
            return
        request_input, _ = identity_map_input(keys)
        self.outbox.mkdir(parents=True, exist_ok=True)
        self.outbox_files += 1
        path = self.outbox / f"{self.run_id}-uid2-identity-map-{self.outbox_files:05d}.json"
        temporary = path.with_suffix(".json.tmp")
        temporary.write_bytes(request_input.get_identity_map_input_as_json_string().encode())
        temporary.replace(path)

    def summary(self) -> str:
        counts = self.counts
        unmapped = sum(counts.unmapped.values())
        reasons = ", ".join(f"{reason}: {count:,}" for reason, count
                            in sorted(counts.unmapped.items(), key=lambda pair: -pair[1]))
        line = (f"UID2 identity map: {counts.looked_up:,} hashes, {counts.from_cache:,} from "
                f"the cache")
        if self.dry_run:
            line += (f", {counts.not_mapped_in_dry_run:,} not mapped (dry run: requests "
                     f"written to the outbox)")
        else:
            line += (f", {counts.mapped:,} mapped by UID2 ({counts.refreshed:,} refreshed) "
                     f"in {self.service.requests_sent if self.service else 0:,} request(s)")
        line += f"; {unmapped:,} rows map to nothing"
        if reasons:
            line += f" ({reasons})"
        return line

    def close(self) -> None:
        if self.service is not None:
            self.service.close()
