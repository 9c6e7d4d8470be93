"""Fake Braze REST API: POST /users/track and POST /users/track/bulk with a Bearer API key.

Checks what Braze checks: the key, a JSON body of `attributes` (and `events`,
`purchases`) arrays, each attribute object naming its user by `external_id` (a
non-empty string), attribute names not starting with `$` and values that are
scalars. A text value in one of the time formats Braze's user attributes object
lists (ISO 8601 with its zone; `yyyy-MM-ddTHH:mm:ss`, `yyyy-MM-dd HH:mm:ss` and
`yyyy-MM-dd`, read as UTC; `MM/dd/yyyy`) is held as a time, an aware `datetime`, in
`profiles`; any other text as text. Limits, as Braze's pages give them:

- /users/track: 1 to 75 attribute objects; more is a 400 "Max Input Length
  Exceeded". No byte limit is documented, none is enforced.
- /users/track/bulk ("Track users (bulk)"): at most 1,000 objects across
  attributes, events and purchases, at most 100 of them for one user, a body of at
  most 2 MB (2,000,000 bytes here; `bulk_max_bytes` to test with less). Over the
  object limits: 400 with a message
  (Braze does not document the text); over the byte limit: 413 `{"message":
  "Payload too large"}` (Braze documents the limit, not the answer: the shipper
  treats a 413 and a 400 alike, by splitting). The key needs the
  `users.track.bulk` permission (`bulk_allowed`; without it 403, again a guess at
  the text: Braze's errors page gives 401/403 for a refused key).

An object Braze refuses does not stop the others: the answer is 201 `{"message":
"success", "attributes_processed": n, "errors": [{"type", "input_array":
"attributes", "index"}]}` and only the good objects are kept (Braze documents the
body, not the status: 201 is what /users/track answers). A malformed request gets
400 `{"message": ...}`. `refuse` holds external_ids whose object Braze refuses
although it looks valid. `profiles` is the state Braze would hold per user.
429s (`rate_limited`) carry Braze's X-RateLimit-Limit / -Remaining / -Reset
headers (reset in unix seconds); Braze documents no Retry-After, so one is sent
only when a test asks for it.
"""

from __future__ import annotations

import collections
import datetime as dt
import re
import time
from typing import Any

from tests.fakes.server import FakeApp, FakeRequest, Later, Reply

TRACK = "/users/track"
BULK = "/users/track/bulk"
MAX_OBJECTS = 75
BULK_MAX_OBJECTS = 1_000
BULK_MAX_OBJECTS_PER_USER = 100
BULK_MAX_BYTES = 2_000_000

# Braze's documented time formats (the exotic `ddd MM dd HH:mm:ss.TZD YYYY` left out).
_ISO_TIME = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?)?")
_US_DATE = re.compile(r"(\d{2})/(\d{2})/(\d{4})")


class FakeBraze(FakeApp):
    """POST /users/track and /users/track/bulk; partial failures listed by index
    inside a 201."""

    def __init__(self, *, api_key: str = "braze-test-key-0123456789abcdef",
                 bulk_allowed: bool = True, bulk_max_bytes: int = BULK_MAX_BYTES) -> None:
        super().__init__()
        self.api_key = api_key
        self.bulk_allowed = bulk_allowed
        self.bulk_max_bytes = bulk_max_bytes
        self.objects: list[dict[str, Any]] = []  # every object kept, in arrival order
        self.batch_sizes: list[int] = []
        self.body_sizes: list[int] = []
        self.paths: list[str] = []  # the endpoint of each request that was processed
        self.profiles: dict[str, dict[str, Any]] = {}
        self.refuse: set[str] = set()

    @property
    def external_ids(self) -> list[str]:
        with self.lock:
            return [item["external_id"] for item in self.objects]

    def duplicates(self) -> dict[str, int]:
        counts = collections.Counter(self.external_ids)
        return {key: count for key, count in counts.items() if count > 1}

    @staticmethod
    def rate_limited(retry_after: str | None = None, *, reset_in: int = 3,
                     limit: int = 3000) -> Later:
        """Braze's 429: its X-RateLimit-* headers, the reset `reset_in` seconds from when
        the request arrives."""
        def reply() -> Reply:
            headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": "0",
                       "X-RateLimit-Reset": str(int(time.time()) + reset_in)}
            if retry_after:
                headers["Retry-After"] = retry_after
            return Reply(429, {"message": "Rate limit exceeded"}, headers)
        return Later(reply)

    def handle(self, request: FakeRequest) -> Reply:
        if request.path not in (TRACK, BULK) or request.method != "POST":
            return Reply(404, {"message": "Not Found"})
        bulk = request.path == BULK
        if request.header("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"message": "Invalid API key: the key is unknown"})
        if bulk and not self.bulk_allowed:
            return Reply(403, {"message": "API key does not have users.track.bulk permission"})
        if bulk and len(request.body) > self.bulk_max_bytes:
            return Reply(413, {"message": "Payload too large"})
        try:
            body = request.json()
        except ValueError:
            return Reply(400, {"message": "Invalid JSON"})
        if not isinstance(body, dict) or set(body) - {"attributes", "events", "purchases"}:
            return Reply(400, {"message": "Unknown top-level key"})
        objects = body.get("attributes")
        if not isinstance(objects, list) or not objects:
            return Reply(400, {"message": "Missing attributes"})
        problem = self.check_limits(body, objects, bulk)
        if problem:
            return Reply(400, {"message": problem})
        errors = []
        kept = []
        for index, item in enumerate(objects):
            problem = self.check_object(item)
            if problem:
                errors.append({"type": problem, "input_array": "attributes", "index": index})
            else:
                kept.append(item)
        with self.lock:
            self.objects.extend(kept)
            self.batch_sizes.append(len(objects))
            self.body_sizes.append(len(request.body))
            self.paths.append(request.path)
            for item in kept:
                profile = self.profiles.setdefault(item["external_id"], {})
                for key, value in item.items():
                    if key in ("external_id", "_update_existing_only"):
                        continue
                    if value is None:
                        profile.pop(key, None)
                    else:
                        profile[key] = stored_value(value)
        answer: dict[str, Any] = {
            "attributes_processed": len({item["external_id"] for item in kept}),
            "message": "success",
        }
        if errors:
            answer["errors"] = errors
        return Reply(201, answer)

    @staticmethod
    def check_limits(body: dict[str, Any], objects: list[Any], bulk: bool) -> str | None:
        if not bulk:
            if len(objects) > MAX_OBJECTS:
                return "Max Input Length Exceeded"
            return None
        arrays = [body.get(name) or [] for name in ("attributes", "events", "purchases")]
        if sum(len(array) for array in arrays if isinstance(array, list)) > BULK_MAX_OBJECTS:
            return f"Too many objects: at most {BULK_MAX_OBJECTS} per request"
        per_user = collections.Counter(
            item.get("external_id") for array in arrays if isinstance(array, list)
            for item in array if isinstance(item, dict) and item.get("external_id"))
        if per_user and max(per_user.values()) > BULK_MAX_OBJECTS_PER_USER:
            return (f"Too many objects for one user: at most {BULK_MAX_OBJECTS_PER_USER} per "
                    "user profile")
        return None

    def check_object(self, item: Any) -> str | None:
        if not isinstance(item, dict):
            return "Attributes object must be an object"
        external_id = item.get("external_id")
        if not isinstance(external_id, str) or not external_id:
            return "'external_id' or 'braze_id' or 'user_alias' is required"
        for key, value in item.items():
            if key.startswith("$"):
                return f"Custom attribute name {key} may not start with $"
            if isinstance(value, (dict, list)):
                return f"Custom attribute {key} is not a scalar"
        if external_id in self.refuse:
            return f"Invalid value for custom attribute on user {external_id}"
        return None


def stored_value(value: Any) -> Any:
    """What the profile holds: text in one of Braze's time formats as a time (an aware
    datetime, UTC when the text names no zone), other text as text."""
    if not isinstance(value, str):
        return value
    try:
        if _ISO_TIME.fullmatch(value):
            when = dt.datetime.fromisoformat(value)
        elif match := _US_DATE.fullmatch(value):
            month, day, year = (int(part) for part in match.groups())
            when = dt.datetime(year, month, day)
        else:
            return value
    except ValueError:  # shaped like a time, not one (month 13): Braze keeps the text
        return value
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
