"""OAuth access tokens for Google's Data Manager API, for a run nobody attends.

An access token lasts about an hour (the token endpoint says how long, in
`expires_in`), and a scheduled run cannot ask a person for a new one. So the
credentials are what google-auth accepts, from the environment only, exactly
one of:

  GOOGLE_ADS_SERVICE_ACCOUNT_FILE   path of a service account's JSON key: google-auth
                                    signs a JWT with its private key (RS256) and trades
                                    it at the token endpoint (JWT bearer grant, RFC 7523)
  GOOGLE_ADS_REFRESH_TOKEN,         an OAuth client's refresh token, given once by a person
  GOOGLE_ADS_CLIENT_ID,             who consented to the datamanager scope (refresh_token
  GOOGLE_ADS_CLIENT_SECRET          grant)
  GOOGLE_ADS_ACCESS_TOKEN           a plain access token: used as it is, never refreshed
                                    (a run longer than its life stops at the first 401)

GOOGLE_APPLICATION_CREDENTIALS is deliberately not read: a warehouse adapter
(dbt-bigquery) or another tool may point it at a different service account,
and the account that sends conversions should be named on purpose.

The scope is `https://www.googleapis.com/auth/datamanager` (Data Manager's
REST reference, "Authorization scopes"). The token endpoint is the key file's
`token_uri` (https://oauth2.googleapis.com/token) or the `oauth_endpoint`
setting, which is how tests point it at a loopback fake.

A token is refreshed before it expires (five minutes before, or half its life
when shorter) and once more when the API answers 401 with it; a token that is
refused right after a refresh forced by a 401 stops the destination. The
token request is made while the retrying session builds an attempt's headers
(`BearerHeaders`), so it is retried with that attempt, under the same policy
and budget (`shipper.retry`): an endpoint that cannot be reached or asks to
retry is `TokenUnavailable` (retried), refused credentials `TokenRefused`
(no retry helps: the destination stops). Every
token, refresh token, client secret and private key is registered with
`shipper.redact` the moment it is read or issued, so no log line, ledger row
or message can show it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import requests
from google.auth import crypt
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account

from shipper import redact
from shipper.http import new_session
from shipper.jsontypes import JsonObject
from shipper.settings import ConfigError

if TYPE_CHECKING:
    from google.auth import credentials as google_credentials
    from google.auth import transport as google_transport

SCOPE = "https://www.googleapis.com/auth/datamanager"
DEFAULT_TOKEN_ENDPOINT = "https://oauth2.googleapis.com/token"

SERVICE_ACCOUNT_FILE = "GOOGLE_ADS_SERVICE_ACCOUNT_FILE"
REFRESH_TOKEN = "GOOGLE_ADS_REFRESH_TOKEN"
CLIENT_ID = "GOOGLE_ADS_CLIENT_ID"
CLIENT_SECRET = "GOOGLE_ADS_CLIENT_SECRET"
ACCESS_TOKEN = "GOOGLE_ADS_ACCESS_TOKEN"
OAUTH_CLIENT = (REFRESH_TOKEN, CLIENT_ID, CLIENT_SECRET)
ENV_NAMES = (SERVICE_ACCOUNT_FILE, *OAUTH_CLIENT, ACCESS_TOKEN)
CREDENTIAL_HINT = (f"{SERVICE_ACCOUNT_FILE} (a service account key), or {REFRESH_TOKEN} with "
                   f"{CLIENT_ID} and {CLIENT_SECRET}, or {ACCESS_TOKEN}")

# Refresh this long before the token endpoint's expiry, or at half the token's life
# when that is shorter.
REFRESH_MARGIN_SECONDS = 300.0
# When the endpoint gives no expires_in (RFC 6749 allows it): Google's tokens last an hour.
ASSUMED_LIFETIME_SECONDS = 3600.0


class TokenRefused(requests.exceptions.InvalidHeader):
    """The token endpoint refused the credentials (a revoked key or refresh token, a wrong
    client secret): no retry helps. An InvalidHeader, so the retrying session treats it as
    fatal (the Authorization header cannot be built) and the destination stops."""


class TokenUnavailable(requests.exceptions.ConnectionError):
    """The token endpoint could not be reached or asked to retry: the retrying session
    backs off and tries again, within the batch's budget."""


def credentials_from_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """The Google credentials in the environment, checked; None when there are none.

    ConfigError (one sentence) when they are incomplete, ambiguous or unreadable.
    """
    found = {name: env.get(name, "").strip() for name in ENV_NAMES}
    found = {name: value for name, value in found.items() if value}
    kinds = []
    if SERVICE_ACCOUNT_FILE in found:
        kinds.append(SERVICE_ACCOUNT_FILE)
    oauth = [name for name in OAUTH_CLIENT if name in found]
    if oauth:
        kinds.append(oauth[0])
    if ACCESS_TOKEN in found:
        kinds.append(ACCESS_TOKEN)
    if not kinds:
        return None
    if len(kinds) > 1:
        raise ConfigError(
            f"google_ads finds more than one kind of credential in the environment "
            f"({', '.join(kinds)}): keep one of {CREDENTIAL_HINT}.")
    for name, value in found.items():
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            raise ConfigError(f"{name} holds a control character (a line break?): set it "
                              "again without one.")
        if name in (REFRESH_TOKEN, CLIENT_SECRET, ACCESS_TOKEN):
            redact.register_secret(value)
    if oauth and len(oauth) < len(OAUTH_CLIENT):
        missing = [name for name in OAUTH_CLIENT if name not in found]
        raise ConfigError(
            f"google_ads needs {', '.join(OAUTH_CLIENT)} together: {' and '.join(missing)} "
            "is not set in the environment.")
    if SERVICE_ACCOUNT_FILE in found:
        read_service_account(found[SERVICE_ACCOUNT_FILE])
    return found


def read_service_account(path_text: str) -> JsonObject:
    """The service account key at `path_text`, checked (ConfigError otherwise), its
    private key registered as a secret. Nothing of its content is ever quoted."""
    path = Path(path_text).expanduser()
    where = f"{SERVICE_ACCOUNT_FILE} ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where} does not exist: point it at the service account's JSON "
                          "key file.") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"{where} cannot be read ({why}): check the path and its "
                          "permissions.") from None
    try:
        info = json.loads(text)
    except ValueError:
        raise ConfigError(f"{where} is not JSON: it must be the service account key file "
                          "Google Cloud gives (IAM, Service accounts, Keys).") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        raise ConfigError(f"{where} is not a service account key (its \"type\" is not "
                          "\"service_account\"): create a JSON key for the service account.")
    missing = [key for key in ("client_email", "private_key")
               if not isinstance(info.get(key), str) or not info[key].strip()]
    if missing:
        raise ConfigError(f"{where} lacks {' and '.join(missing)}: download a new JSON key.")
    redact.register_secret(info["private_key"])
    redact.register_secret(info["private_key"].strip())
    try:
        crypt.RSASigner.from_service_account_info(info)
    except (ValueError, TypeError, IndexError):
        # The library's message is not quoted: it could carry part of the key.
        raise ConfigError(f"{where} holds a private_key that is not a readable RSA key: "
                          "download a new JSON key.") from None
    return info


class TokenSource:
    """Where a request's bearer token comes from."""

    # Which credential this is, for messages ("the service account in ...").
    description = ""
    # The environment variables to check when Google refuses it.
    hint = ""
    refreshable = False

    def __init__(self) -> None:
        self._local = threading.local()
        self.wallclock: Callable[[], float] = time.time

    def token(self) -> str:
        raise NotImplementedError

    def last_used(self) -> str | None:
        """The token this thread put in its latest request's header."""
        return getattr(self._local, "token", None)

    def refused(self, token: str | None) -> bool:
        """The API answered 401 to a request carrying `token`. True: send again, the next
        header carries a new token; False: the credentials themselves are refused."""
        return False

    def taken(self, token: str | None) -> None:
        """The API answered a request carrying `token` with something else than 401."""

    def _used(self, token: str) -> str:
        self._local.token = token
        return token


class StaticToken(TokenSource):
    """GOOGLE_ADS_ACCESS_TOKEN: used as it is; nothing can refresh it."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token
        self.description = ACCESS_TOKEN
        self.hint = ACCESS_TOKEN

    def token(self) -> str:
        return self._used(self._token)


class _TimedRequest:
    """google-auth's requests transport over a session built the shipper's one way
    (`shipper.http.new_session`: TLS verified, our User-Agent, no urllib3 retries), with
    our timeouts (google-auth's own default is 120 s). It sends once: a failure becomes
    TokenUnavailable, retried by the destination's retrying session under the one retry
    policy (shipper.retry), or TokenRefused, which stops the destination."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        self._session = new_session()
        self._request = GoogleRequest(self._session)
        self._timeout = timeout

    def __call__(self, url: str, method: str = "GET", body: bytes | None = None,
                 headers: Mapping[str, str] | None = None,
                 timeout: float | tuple[float, float] | None = None,
                 **kwargs: object) -> google_transport.Response:
        return self._request(url, method=method, body=body, headers=headers,
                             timeout=timeout or self._timeout, **kwargs)

    def close(self) -> None:
        self._session.close()


class RefreshingToken(TokenSource):
    """A service account key or a refresh token, through google-auth's credentials."""

    refreshable = True

    def __init__(self, credentials: google_credentials.Credentials, description: str, hint: str,
                 timeout: tuple[float, float] = (10.0, 60.0)) -> None:
        super().__init__()
        self._credentials = credentials
        self.description = description
        self.hint = hint
        self._request = _TimedRequest(timeout)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refresh_at = 0.0
        # Set for the refresh a 401 asks for; the token it gives is then `_forced`: a
        # 401 to that one means the credentials themselves are refused.
        self._force_next = False
        self._forced = False
        self.refreshes = 0

    def token(self) -> str:
        with self._lock:
            if self._token is None or self.wallclock() >= self._refresh_at:
                self._refresh()
            assert self._token is not None
            return self._used(self._token)

    def refused(self, token: str | None) -> bool:
        with self._lock:
            if token is None or token != self._token:
                return True  # another thread has refreshed it meanwhile: try the new one
            if self._forced:
                return False
            self._token = None
            self._force_next = True
            return True

    def taken(self, token: str | None) -> None:
        with self._lock:
            if token is not None and token == self._token:
                # Taken once: a later 401 to it is an expiry or a revocation, worth one
                # more refresh, not the credentials being refused.
                self._forced = False

    def close(self) -> None:
        self._request.close()

    def _refresh(self) -> None:
        forced, self._force_next = self._force_next, False
        try:
            self._credentials.refresh(self._request)
        except google_exceptions.RefreshError as exc:
            what = redact.scrub(_first_arg(exc))
            if exc.retryable:
                raise TokenUnavailable(f"Google's token endpoint asked to retry ({what})") \
                    from None
            raise TokenRefused(
                f"Google's token endpoint refused {self.description} ({what}): check "
                f"{self.hint}") from None
        except google_exceptions.TransportError as exc:
            raise TokenUnavailable(
                f"Google's token endpoint could not be reached "
                f"({redact.scrub(_first_arg(exc))[:300]})") from None
        except google_exceptions.GoogleAuthError as exc:
            raise TokenRefused(f"{self.description} cannot be used "
                               f"({redact.scrub(_first_arg(exc))}): check {self.hint}") from None
        except (TypeError, KeyError, ValueError) as exc:
            # google-auth reading an answer that is not the endpoint's (a proxy's page).
            raise TokenUnavailable(f"Google's token endpoint gave an answer that is not a "
                                   f"token ({type(exc).__name__})") from None
        token = self._credentials.token
        if not isinstance(token, str) or not token:
            raise TokenRefused(f"Google's token endpoint gave no access token for "
                               f"{self.description}")
        redact.register_secret(token)
        # Google may hand out a new refresh token with the access token.
        redact.register_secret(getattr(self._credentials, "refresh_token", None))
        lifetime = ASSUMED_LIFETIME_SECONDS
        expiry = getattr(self._credentials, "expiry", None)
        if isinstance(expiry, dt.datetime):
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            lifetime = max(0.0, (expiry - now).total_seconds())
        margin = min(REFRESH_MARGIN_SECONDS, lifetime / 2)
        self._token = token
        self._refresh_at = self.wallclock() + lifetime - margin
        self._forced = forced
        self.refreshes += 1


def token_source(values: Mapping[str, str], token_endpoint: str | None,
                 timeout: tuple[float, float]) -> TokenSource:
    """The token source for credentials checked by `credentials_from_env`."""
    if ACCESS_TOKEN in values:
        return StaticToken(values[ACCESS_TOKEN])
    if SERVICE_ACCOUNT_FILE in values:
        info = dict(read_service_account(values[SERVICE_ACCOUNT_FILE]))
        # Where the signed JWT is posted (google-auth addresses it to Google's endpoint,
        # https://oauth2.googleapis.com/token, whatever this is).
        info["token_uri"] = token_endpoint or info.get("token_uri") or DEFAULT_TOKEN_ENDPOINT
        credentials = service_account.Credentials.from_service_account_info(
            info, scopes=[SCOPE])
        return RefreshingToken(
            credentials, f"the service account {info['client_email']} "
                         f"({SERVICE_ACCOUNT_FILE})",
            f"{SERVICE_ACCOUNT_FILE}, and that the service account may use the Data Manager "
            "API and the Google Ads account", timeout)
    credentials = user_credentials.Credentials(
        token=None, refresh_token=values[REFRESH_TOKEN], client_id=values[CLIENT_ID],
        client_secret=values[CLIENT_SECRET],
        token_uri=token_endpoint or DEFAULT_TOKEN_ENDPOINT)
    return RefreshingToken(credentials, f"the refresh token in {REFRESH_TOKEN}",
                           f"{REFRESH_TOKEN}, {CLIENT_ID} and {CLIENT_SECRET}", timeout)


class BearerHeaders(Mapping[str, str]):
    """Request headers whose Authorization is asked of the token source each time they
    are read. The retrying session copies a request's headers on every attempt, so a
    retry after a refresh (or after a 401) carries the new token, and the token is never
    part of the Request object that is built once per batch."""

    def __init__(self, headers: Mapping[str, str], tokens: TokenSource) -> None:
        self._headers = dict(headers)
        self._tokens = tokens

    def __getitem__(self, key: str) -> str:
        if key == "Authorization":
            return f"Bearer {self._tokens.token()}"
        return self._headers[key]

    def __iter__(self) -> Iterator[str]:
        yield from self._headers
        yield "Authorization"

    def __len__(self) -> int:
        return len(self._headers) + 1

    def __repr__(self) -> str:
        return f"BearerHeaders({sorted(self._headers)} + Authorization)"


def _first_arg(exc: BaseException) -> str:
    """google-auth puts its message first and the endpoint's whole answer second."""
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return type(exc).__name__
