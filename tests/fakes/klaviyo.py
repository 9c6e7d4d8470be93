"""Fake Klaviyo Bulk Import Profiles API: a job, its status, its import errors.

- `POST /api/profile-bulk-import-jobs` checks the headers Klaviyo requires
  (`Authorization: Klaviyo-API-Key <key>`, a `revision` date, the JSON:API
  media type in Content-Type and Accept), the body size (5 MB, `max_bytes`),
  the JSON:API shape, at most 10,000 profiles, known profile attributes (and
  known `location` members, strings where Klaviyo's ProfileLocation has
  strings) and an identifier per profile. It answers 202 with a queued job; a request it
  cannot parse gets 400 `{"errors": [{id, code, title, detail, source}]}`.
- `GET /api/profile-bulk-import-jobs/{id}` moves the job on at every read:
  queued, processing, then complete once it was read `polls_to_complete` times
  and `processing_seconds` have passed since it was created (or never, with
  `stuck`; or cancelled, with `cancel_jobs`). On completion the good profiles
  are upserted into `profiles` and counted in `imported`.
- `GET /api/profile-bulk-import-jobs/{id}/import-errors` pages the profiles
  that failed (a bad email or phone, or an external_id in `refuse`) with
  `page[size]` (default 20, at most 100) and a `links.next` cursor. Each error
  quotes the offending value back, as Klaviyo's do, with `source.pointer`
  naming the profile (left out with `pointerless`) and `original_payload`.

Rate limits, as Klaviyo enforces them ("Rate limits, status codes, and
errors"; each endpoint's reference page): per account and per endpoint, in
fixed windows, each of the three endpoints (`create job`, `read job`, `read
import errors`) takes at most 10 requests in a 1-second window (burst) and
150 in a 1-minute window (steady), `limits` by default. A request over either
gets 429 with `Retry-After` (whole seconds to the end of the window that is
full) and is not counted. Windows start at multiples of their length on
`clock`: tests pass their fake clock (the one the shipper sleeps on) or a real
one with scaled-down limits. `seen` keeps (endpoint, time, throttled) of
every request the limits saw, `throttles` the Retry-After of each 429.

`misbehave` scripts the next requests whatever they are; `failing_reads`
scripts the next GETs only (a poll that fails while the job runs on).
"""

from __future__ import annotations

import collections
import json
import math
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tests.fakes.server import FakeApp, FakeRequest, Reply

JSON_API = "application/vnd.api+json"
PROFILE_KEYS = frozenset({"email", "phone_number", "external_id", "anonymous_id", "_kx",
                          "first_name", "last_name", "organization", "locale", "title", "image",
                          "location", "properties"})
LOCATION_KEYS = frozenset({"address1", "address2", "city", "country", "latitude", "longitude",
                           "region", "zip", "timezone", "ip"})
LOCATION_TEXT_KEYS = LOCATION_KEYS - {"latitude", "longitude"}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[a-z]{2,}")
_E164 = re.compile(r"\+[1-9]\d{6,14}")
CREATE, READ_JOB, READ_ERRORS = "create job", "read job", "read import errors"
# (requests, window seconds) of each endpoint: Klaviyo's burst and steady limits.
DOCUMENTED_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    endpoint: ((10, 1.0), (150, 60.0)) for endpoint in (CREATE, READ_JOB, READ_ERRORS)}


@dataclass
class Job:
    job_id: str
    profiles: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    created_at: float = 0.0
    reads: int = 0
    status: str = "queued"
    cancelled: bool = False
    stuck: bool = False
    body_bytes: int = 0
    committed: bool = field(default=False)


class FakeKlaviyo(FakeApp):
    """The three endpoints of a bulk profile import, with Klaviyo's JSON:API errors."""

    MAX_PROFILES = 10_000

    def __init__(self, *, api_key: str = "pk_klaviyo_test_key_0123456789abcdef",
                 max_bytes: int = 5_000_000, polls_to_complete: int = 2,
                 processing_seconds: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 limits: Mapping[str, Sequence[tuple[int, float]]] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.max_bytes = max_bytes
        self.polls_to_complete = polls_to_complete
        self.processing_seconds = processing_seconds
        self.clock = clock
        self.limits = dict(DOCUMENTED_LIMITS if limits is None else limits)
        # (endpoint, window length) -> (window number, requests counted in it)
        self.windows: dict[tuple[str, float], tuple[int, int]] = {}
        self.seen: list[tuple[str, float, bool]] = []  # (endpoint, when, throttled)
        self.throttles: list[int] = []  # the Retry-After of every 429 given
        self.jobs: dict[str, Job] = {}
        self.job_order: list[str] = []
        self.profiles: dict[str, dict[str, Any]] = {}
        self.imported: list[str] = []  # external_ids, once per successful import
        self.refuse: set[str] = set()
        self.stuck = False
        self.cancel_jobs = False
        self.pointerless = False
        # Answers given, in order, to the next GETs (job status or import errors) instead
        # of the real one: a poll that fails without the job failing.
        self.failing_reads: collections.deque[Reply] = collections.deque()

    # -- helpers for tests ----------------------------------------------------------------

    def duplicates(self) -> dict[str, int]:
        counts = collections.Counter(self.imported)
        return {key: count for key, count in counts.items() if count > 1}

    @property
    def job_sizes(self) -> list[int]:
        with self.lock:
            return [len(self.jobs[job_id].profiles) for job_id in self.job_order]

    @staticmethod
    def errors(status: int, code: str, title: str, detail: str, pointer: str | None = None,
               headers: dict[str, str] | None = None) -> Reply:
        error: dict[str, Any] = {"id": uuid.uuid4().hex, "code": code, "title": title,
                                 "detail": detail}
        if pointer:
            error["source"] = {"pointer": pointer}
        return Reply(status, {"errors": [error]}, {"Content-Type": JSON_API, **(headers or {})})

    @classmethod
    def throttled(cls, retry_after: str = "1") -> Reply:
        return cls.errors(429, "throttled", "Request was throttled.",
                          f"Request was throttled. Expected available in {retry_after} second.",
                          headers={"Retry-After": retry_after})

    def arrivals(self, endpoint: str) -> list[float]:
        """When the requests the limits let through to `endpoint` arrived."""
        with self.lock:
            return [at for name, at, throttled in self.seen
                    if name == endpoint and not throttled]

    def admit(self, endpoint: str) -> Reply | None:
        """Count the request in each of the endpoint's fixed windows, or refuse it (429,
        not counted) when one of them is full already."""
        with self.lock:
            now = self.clock()
            counts, full_until = {}, None
            for requests, seconds in self.limits.get(endpoint, ()):
                number = math.floor(now / seconds)
                window, count = self.windows.get((endpoint, seconds), (number, 0))
                count = count if window == number else 0
                if count >= requests:
                    full_until = max(full_until or now, (number + 1) * seconds)
                counts[(endpoint, seconds)] = (number, count + 1)
            self.seen.append((endpoint, now, full_until is not None))
            if full_until is None:
                self.windows.update(counts)
                return None
            wait = max(1, math.ceil(full_until - now))  # Retry-After is whole seconds
            self.throttles.append(wait)
            return self.throttled(str(wait))

    # -- the API ----------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        if request.header("authorization") != f"Klaviyo-API-Key {self.api_key}":
            return self.errors(401, "not_authenticated", "Authentication credentials were "
                               "not provided.", "Missing or invalid private key.")
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(\.\w+)?", request.header("revision") or ""):
            return self.errors(400, "invalid", "Invalid input.", "A revision header is required.")
        if request.header("accept") != JSON_API:
            return self.errors(406, "not_acceptable", "Not acceptable.",
                               f"Accept must be {JSON_API}.")
        parts = request.path.strip("/").split("/")
        if parts[:2] != ["api", "profile-bulk-import-jobs"]:
            return self.errors(404, "not_found", "Not found.", "Unknown endpoint.")
        endpoint = {("POST", 2): CREATE, ("GET", 3): READ_JOB}.get((request.method, len(parts)))
        if request.method == "GET" and len(parts) == 4 and parts[3] == "import-errors":
            endpoint = READ_ERRORS
        refused = self.admit(endpoint) if endpoint else None
        if refused is not None:
            return refused
        if request.method == "POST" and len(parts) == 2:
            return self.create_job(request)
        if request.method == "GET" and self.failing_reads:
            with self.lock:
                return self.failing_reads.popleft()
        if request.method == "GET" and len(parts) == 3:
            return self.read_job(parts[2])
        if request.method == "GET" and len(parts) == 4 and parts[3] == "import-errors":
            return self.read_errors(request, parts[2])
        return self.errors(405, "method_not_allowed", "Method not allowed.", request.method)

    def create_job(self, request: FakeRequest) -> Reply:
        if (request.header("content-type") or "").split(";")[0] != JSON_API:
            return self.errors(415, "unsupported_media_type", "Unsupported media type.",
                               f"Content-Type must be {JSON_API}.")
        if len(request.body) > self.max_bytes:
            return self.errors(413, "request_too_large", "Payload too large.",
                               f"The payload is larger than {self.max_bytes} bytes.")
        try:
            body = request.json()
        except ValueError:
            return self.errors(400, "invalid", "Invalid input.", "Malformed JSON.")
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") != "profile-bulk-import-job":
            return self.errors(400, "invalid", "Invalid input.",
                               "Expected type profile-bulk-import-job.", "/data/type")
        profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
        if not isinstance(profiles, list) or not profiles:
            return self.errors(400, "invalid", "Invalid input.", "profiles is required.",
                               "/data/attributes/profiles/data")
        if len(profiles) > self.MAX_PROFILES:
            return self.errors(400, "invalid", "Invalid input.",
                               "At most 10000 profiles per job.", "/data/attributes/profiles")
        errors = []
        for index, profile in enumerate(profiles):
            pointer = f"/data/attributes/profiles/data/{index}"
            if not isinstance(profile, dict) or profile.get("type") != "profile":
                return self.errors(400, "invalid", "Invalid input.", "Expected a profile.",
                                   f"{pointer}/type")
            attributes = profile.get("attributes")
            if not isinstance(attributes, dict) or set(attributes) - PROFILE_KEYS:
                return self.errors(400, "invalid", "Invalid input.",
                                   "Unknown profile attribute.", f"{pointer}/attributes")
            if not any(attributes.get(key) for key in ("email", "phone_number", "external_id")):
                return self.errors(400, "invalid", "Invalid input.",
                                   "A profile needs an identifier.", f"{pointer}/attributes")
            location = attributes.get("location")
            if location is not None and (
                    not isinstance(location, dict) or set(location) - LOCATION_KEYS
                    or any(not isinstance(location[key], str)
                           for key in set(location) & LOCATION_TEXT_KEYS
                           if location[key] is not None)):
                return self.errors(400, "invalid", "Invalid input.",
                                   "Invalid profile location.", f"{pointer}/attributes/location")
            for key in ("first_name", "last_name"):
                if attributes.get(key) is not None and not isinstance(attributes[key], str):
                    return self.errors(400, "invalid", "Invalid input.",
                                       f"{key} must be a string.", f"{pointer}/attributes/{key}")
            problem = self.check_profile(attributes)
            if problem:
                key, detail = problem
                errors.append({"index": index, "pointer": f"{pointer}/attributes/{key}",
                               "detail": detail, "payload": attributes})
        job = Job(uuid.uuid4().hex[:12], profiles, errors, created_at=self.clock(),
                  stuck=self.stuck, cancelled=self.cancel_jobs, body_bytes=len(request.body))
        with self.lock:
            self.jobs[job.job_id] = job
            self.job_order.append(job.job_id)
        return Reply(202, {"data": self.job_resource(job)}, {"Content-Type": JSON_API})

    def check_profile(self, attributes: dict[str, Any]) -> tuple[str, str] | None:
        email = attributes.get("email")
        if email is not None and not _EMAIL.fullmatch(str(email)):
            return "email", f"Invalid email address: {email}"
        phone = attributes.get("phone_number")
        if phone is not None and not _E164.fullmatch(str(phone)):
            return "phone_number", f"Invalid phone number {phone}: not E.164"
        if attributes.get("external_id") in self.refuse:
            return "email", f"The profile {email or phone} could not be imported"
        return None

    def read_job(self, job_id: str) -> Reply:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return self.errors(404, "not_found", "Not found.", f"No job {job_id}.")
            job.reads += 1
            if job.status in ("queued", "processing"):
                if job.cancelled:
                    job.status = "cancelled"
                elif (not job.stuck and job.reads >= self.polls_to_complete
                      and self.clock() - job.created_at >= self.processing_seconds):
                    job.status = "complete"
                    self.commit(job)
                else:
                    job.status = "processing"
            return Reply(200, {"data": self.job_resource(job)}, {"Content-Type": JSON_API})

    def commit(self, job: Job) -> None:
        failed = {error["index"] for error in job.errors}
        for index, profile in enumerate(job.profiles):
            if index in failed:
                continue
            attributes = profile["attributes"]
            key = attributes.get("external_id") or attributes.get("email")
            state = self.profiles.setdefault(key, {})
            state.update({name: value for name, value in attributes.items()
                          if name != "properties"})
            state.setdefault("properties", {}).update(attributes.get("properties") or {})
            self.imported.append(key)

    def job_resource(self, job: Job) -> dict[str, Any]:
        done = job.status == "complete"
        return {
            "type": "profile-bulk-import-job",
            "id": job.job_id,
            "attributes": {
                "status": job.status,
                "created_at": "2026-11-28T10:00:00+00:00",
                "total_count": len(job.profiles),
                "completed_count": len(job.profiles) - len(job.errors) if done else 0,
                "failed_count": len(job.errors) if done else 0,
                "completed_at": "2026-11-28T10:01:00+00:00" if done else None,
                "expires_at": None,
                "started_at": "2026-11-28T10:00:10+00:00",
            },
            "links": {"self": f"/api/profile-bulk-import-jobs/{job.job_id}"},
        }

    def read_errors(self, request: FakeRequest, job_id: str) -> Reply:
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None or job.status != "complete":
            return self.errors(404, "not_found", "Not found.", f"No finished job {job_id}.")
        size = int(request.param("page[size]") or 20)
        if not 1 <= size <= 100:
            return self.errors(400, "invalid", "Invalid input.", "page[size] must be 1 to 100.",
                               pointer=None)
        start = int(request.param("page[cursor]") or 0)
        page = job.errors[start:start + size]
        data = []
        for error in page:
            attributes: dict[str, Any] = {"code": "invalid", "title": "Invalid input.",
                                          "detail": error["detail"],
                                          "original_payload": json.loads(
                                              json.dumps(error["payload"]))}
            if not self.pointerless:
                attributes["source"] = {"pointer": error["pointer"]}
            data.append({"type": "import-error", "id": uuid.uuid4().hex,
                         "attributes": attributes})
        base = f"http://{request.header('host')}/api/profile-bulk-import-jobs/{job_id}"
        links: dict[str, Any] = {"self": f"{base}/import-errors", "next": None}
        if start + size < len(job.errors):
            query = urlencode({"page[size]": size, "page[cursor]": start + size})
            links["next"] = f"{base}/import-errors?{query}"
        return Reply(200, {"data": data, "links": links}, {"Content-Type": JSON_API})
