"""Fake Braze REST API: POST /users/track with a Bearer API key.

Checks what Braze checks: the key, an `attributes` array of 1 to 75 objects,
each naming its user by `external_id` (a non-empty string), attribute names
not starting with `$` and values that are scalars. An object Braze refuses
does not stop the others: the answer is 201 `{"message": "success",
"attributes_processed": n, "errors": [{"type", "input_array": "attributes",
"index"}]}` and only the good objects are kept. A malformed request gets 400
`{"message": ...}`. `refuse` holds external_ids whose object Braze refuses
although it looks valid. `profiles` is the state Braze would hold per user.
"""

from __future__ import annotations

import collections
import time
from typing import Any

from tests.fakes.server import FakeApp, FakeRequest, Reply

MAX_OBJECTS = 75


class FakeBraze(FakeApp):
    """POST /users/track; partial failures listed by index inside a 201."""

    def __init__(self, *, api_key: str = "braze-test-key-0123456789abcdef") -> None:
        super().__init__()
        self.api_key = api_key
        self.objects: list[dict[str, Any]] = []  # every object kept, in arrival order
        self.batch_sizes: list[int] = []
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
    def rate_limited(retry_after: str | None = None) -> Reply:
        headers = {"X-RateLimit-Limit": "3000", "X-RateLimit-Remaining": "0",
                   "X-RateLimit-Reset": str(int(time.time()) + 3)}
        if retry_after:
            headers["Retry-After"] = retry_after
        return Reply(429, {"message": "Rate limit exceeded"}, headers)

    def handle(self, request: FakeRequest) -> Reply:
        if request.path != "/users/track" or request.method != "POST":
            return Reply(404, {"message": "Not Found"})
        if request.header("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"message": "Invalid API key: the key is unknown"})
        try:
            body = request.json()
        except ValueError:
            return Reply(400, {"message": "Invalid JSON"})
        if not isinstance(body, dict) or set(body) - {"attributes", "events", "purchases"}:
            return Reply(400, {"message": "Unknown top-level key"})
        objects = body.get("attributes")
        if not isinstance(objects, list) or not objects:
            return Reply(400, {"message": "Missing attributes"})
        if len(objects) > MAX_OBJECTS:
            return Reply(400, {"message": f"Too many attributes: at most {MAX_OBJECTS}"})
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
            for item in kept:
                profile = self.profiles.setdefault(item["external_id"], {})
                for key, value in item.items():
                    if key in ("external_id", "_update_existing_only"):
                        continue
                    if value is None:
                        profile.pop(key, None)
                    else:
                        profile[key] = value
        answer: dict[str, Any] = {"attributes_processed": len(kept), "message": "success"}
        if errors:
            answer["errors"] = errors
        return Reply(201, answer)

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
