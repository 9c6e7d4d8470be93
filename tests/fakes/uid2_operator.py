"""Fake UID2 operator: `POST /v3/identity/map` with the real encrypted envelope.

The test holds the client secret, as the operator does. A request body is the
envelope the UID2 SDKs build (binary with `Content-Type:
application/octet-stream`, else base64 text): one version byte (1), then
AES-256-GCM over [8-byte big-endian timestamp in ms][8-byte nonce][JSON],
written as 12-byte IV + ciphertext + 16-byte tag. The fake decrypts it,
refuses a stale timestamp, and answers the way the operator does: on success
the JSON `{"status": "success", "body": {...}}` behind [timestamp][the
request's nonce] in the same AES-GCM form (binary for a binary request), so
the real SDK opens it; errors unencrypted, `{"status": "client_error" |
"unauthorized", "message"}` with 400 / 401.

What it checks: the bearer API key, the envelope (version, tag, timestamp
within `max_skew_seconds`, nonce never reused), that only `email_hash` /
`phone_hash` arrays were sent (raw `email` / `phone` are recorded in
`raw_dii_seen` and refused), at most 5,000 hashes per request, and that no two
requests are handled at once (`max_in_flight`, UID2 asks for sequential
batches). Each hash that is not base64 of 32 bytes, or is in `invalid`,
answers `invalid identifier`; a hash in `optout` answers `optout`; any other maps to a raw
UID2 derived from the hash and the hash's salt generation, which `rotate()`
bumps. `refresh_from` (unix seconds) is what each mapped answer says in `r`;
`refresh_in_milliseconds` writes it in milliseconds as UID2's reference does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from Crypto.Cipher import AES

from tests.fakes.server import FakeApp, FakeRequest, Reply

MAX_HASHES = 5000
DAY = 86_400


class FakeUid2Operator(FakeApp):
    def __init__(self, *, api_key: str = "uid2-test-api-key-0123456789",
                 secret: bytes | None = None, now: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.api_key = api_key
        self.secret = secret if secret is not None else os.urandom(32)
        self.now = now
        self.max_skew_seconds = 60.0
        self.optout: set[str] = set()
        # Well-formed hashes the fake nevertheless calls invalid.
        self.invalid: set[str] = set()
        self.refresh_from: float = now() + 30 * DAY
        self.refresh_in_milliseconds = False
        self.generation: dict[str, int] = {}
        # What was asked, decrypted: one dict per successful request.
        self.map_requests: list[dict[str, Any]] = []
        self.raw_dii_seen: list[str] = []
        self._nonces: set[bytes] = set()
        self._issued: set[str] = set()

    @property
    def secret_b64(self) -> str:
        return base64.b64encode(self.secret).decode()

    # -- what the fake says about a hash -------------------------------------------------------

    def uid2_for(self, uid2_hash: str) -> str:
        """The raw UID2 a hash maps to now (44 base64 characters, like a real one)."""
        generation = self.generation.get(uid2_hash, 0)
        digest = hashlib.sha256(f"raw-uid2:{generation}:{uid2_hash}".encode()).digest()
        return base64.b64encode(digest).decode()

    def issued(self, uid2: str) -> bool:
        """True when the fake answered `uid2` for some hash (now or before a rotation)."""
        with self.lock:
            return uid2 in self._issued

    def rotate(self, hashes: Iterable[str]) -> None:
        """Give these hashes a new raw UID2 (a salt rotation)."""
        with self.lock:
            for uid2_hash in hashes:
                self.generation[uid2_hash] = self.generation.get(uid2_hash, 0) + 1

    def hashes_asked(self) -> list[str]:
        with self.lock:
            return [uid2_hash for request in self.map_requests
                    for key in ("email_hash", "phone_hash") for uid2_hash in request.get(key, [])]

    # -- the endpoint --------------------------------------------------------------------------

    def handle(self, request: FakeRequest) -> Reply:
        if request.method != "POST" or request.path != "/v3/identity/map":
            return Reply(404, {"status": "client_error", "message": "Not found"})
        if request.header("authorization") != f"Bearer {self.api_key}":
            return self._error(401, "unauthorized", "Invalid or missing bearer token")
        binary = (request.header("content-type") or "").startswith("application/octet-stream")
        try:
            envelope = request.body if binary else base64.b64decode(request.body, validate=True)
        except (binascii.Error, ValueError):
            return self._error(400, "client_error", "Request body is not base64")
        if len(envelope) < 1 + 12 + 16 + 16 or envelope[0] != 1:
            return self._error(400, "client_error", "Invalid envelope version or length")
        sealed = envelope[1:]
        try:
            cipher = AES.new(self.secret, AES.MODE_GCM, nonce=sealed[:12])
            payload = cipher.decrypt_and_verify(sealed[12:-16], sealed[-16:])
        except ValueError:
            return self._error(401, "unauthorized", "Request could not be decrypted")
        sent_at = int.from_bytes(payload[:8], "big") / 1000
        nonce = payload[8:16]
        if abs(self.now() - sent_at) > self.max_skew_seconds:
            return self._error(400, "client_error", "Request timestamp is outside the window")
        with self.lock:
            if nonce in self._nonces:
                return self._error(400, "client_error", "Nonce was used before")
            self._nonces.add(nonce)
        try:
            asked = json.loads(payload[16:])
        except ValueError:
            return self._error(400, "client_error", "Payload is not JSON")
        if not isinstance(asked, dict):
            return self._error(400, "client_error", "Payload must be an object")
        for key in ("email", "phone"):
            if asked.get(key):
                with self.lock:
                    self.raw_dii_seen.extend(asked[key])
                return self._error(400, "client_error", f"{key} is not accepted by this fake")
        unknown = sorted(set(asked) - {"email_hash", "phone_hash"})
        if unknown:
            return self._error(400, "client_error", f"Unknown field {unknown[0]}")
        hashes = {key: asked.get(key) or [] for key in ("email_hash", "phone_hash")}
        if not all(isinstance(value, list) for value in hashes.values()):
            return self._error(400, "client_error", "email_hash and phone_hash must be arrays")
        total = sum(len(value) for value in hashes.values())
        if total == 0:
            return self._error(400, "client_error", "Nothing to map")
        if total > MAX_HASHES:
            return self._error(400, "client_error", f"More than {MAX_HASHES} items in a batch")
        with self.lock:
            self.map_requests.append(hashes)
        body = {key: [self._answer(value) for value in values] for key, values in hashes.items()}
        answer = json.dumps({"body": body, "status": "success"}).encode()
        return self._sealed(answer, nonce, binary)

    def _answer(self, uid2_hash: Any) -> dict[str, Any]:
        if (not isinstance(uid2_hash, str) or not _is_sha256_base64(uid2_hash)
                or uid2_hash in self.invalid):
            return {"e": "invalid identifier"}
        if uid2_hash in self.optout:
            return {"e": "optout"}
        generation = self.generation.get(uid2_hash, 0)
        previous = None
        if generation:
            digest = hashlib.sha256(f"raw-uid2:{generation - 1}:{uid2_hash}".encode()).digest()
            previous = base64.b64encode(digest).decode()
        refresh = int(self.refresh_from)
        uid2 = self.uid2_for(uid2_hash)
        with self.lock:
            self._issued.add(uid2)
        return {"u": uid2, "p": previous,
                "r": refresh * 1000 if self.refresh_in_milliseconds else refresh}

    def _sealed(self, plain: bytes, nonce: bytes, binary: bool) -> Reply:
        payload = int(self.now() * 1000).to_bytes(8, "big") + nonce + plain
        iv = os.urandom(12)
        cipher = AES.new(self.secret, AES.MODE_GCM, nonce=iv)
        ciphertext, tag = cipher.encrypt_and_digest(payload)
        sealed = iv + ciphertext + tag
        if binary:
            return Reply(200, sealed, {"Content-Type": "application/octet-stream"})
        return Reply(200, base64.b64encode(sealed), {"Content-Type": "text/plain"})

    @staticmethod
    def _error(status: int, kind: str, message: str) -> Reply:
        return Reply(status, {"status": kind, "message": message})


def _is_sha256_base64(value: str) -> bool:
    try:
        return len(base64.b64decode(value, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False
