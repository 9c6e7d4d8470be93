"""`python -m tests.fakes`: every platform fake on fixed loopback ports, to rehearse a live run.

    .venv/bin/python -m tests.fakes            # ports 18081..18089
    .venv/bin/python -m tests.fakes --base-port 28081

Prints, for each fake, the environment variables that point `ship` at it (its
base URL and dummy credentials the fake accepts), as `export` lines a shell
can paste or `eval`, then serves until Ctrl-C. In another shell:

    eval "$(.venv/bin/python -m tests.fakes --print-env)"   # the same lines, no server
    .venv/bin/ship run meta tiktok

The fakes are as strict as the platforms (tokens, limits, event age judged by
the real clock), and keep what they accepted in memory only.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

from tests.fakes.braze import FakeBraze
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.klaviyo import FakeKlaviyo
from tests.fakes.meta import FakeMeta
from tests.fakes.pinterest import FakePinterest
from tests.fakes.server import FakeApp, _Handler, _Server
from tests.fakes.snapchat import FakeSnapchat
from tests.fakes.the_trade_desk import FakeTheTradeDesk
from tests.fakes.tiktok import FakeTikTok
from tests.fakes.uid2_operator import FakeUid2Operator

BASE_PORT = 18081
HOST = "127.0.0.1"
# A fixed dummy UID2 secret, so --print-env prints what a running instance accepts.
UID2_SECRET = bytes(range(32))


@dataclass
class Fake:
    name: str
    app: FakeApp
    # The environment that points `ship` at the fake, given its URL.
    env: Callable[[str], dict[str, str]]


def fakes() -> list[Fake]:
    """One fake per platform, in port order (BASE_PORT, BASE_PORT + 1, ...)."""
    meta = FakeMeta()
    tiktok = FakeTikTok()
    google = FakeGoogleAds()
    pinterest = FakePinterest()
    snapchat = FakeSnapchat()
    braze = FakeBraze()
    klaviyo = FakeKlaviyo()
    operator = FakeUid2Operator(secret=UID2_SECRET)
    ttd = FakeTheTradeDesk(valid_uid2=operator.issued)
    return [
        Fake("meta", meta, lambda url: {
            "META_BASE_URL": url, "META_ACCESS_TOKEN": meta.token,
            "META_DATASET_ID": meta.dataset_id}),
        Fake("tiktok", tiktok, lambda url: {
            "TIKTOK_BASE_URL": url, "TIKTOK_ACCESS_TOKEN": tiktok.token,
            "TIKTOK_EVENT_SOURCE_ID": tiktok.event_source_id}),
        Fake("google_ads", google, lambda url: {
            "GOOGLE_ADS_BASE_URL": url, "GOOGLE_ADS_ACCESS_TOKEN": str(google.token),
            "GOOGLE_ADS_CUSTOMER_ID": google.customer_id,
            "GOOGLE_ADS_CONVERSION_ACTION_ID": google.conversion_action_id}),
        Fake("pinterest", pinterest, lambda url: {
            "PINTEREST_BASE_URL": url, "PINTEREST_ACCESS_TOKEN": pinterest.token,
            "PINTEREST_AD_ACCOUNT_ID": pinterest.ad_account_id}),
        Fake("snapchat", snapchat, lambda url: {
            "SNAPCHAT_BASE_URL": url, "SNAPCHAT_ACCESS_TOKEN": snapchat.token,
            "SNAPCHAT_PIXEL_ID": snapchat.pixel_id}),
        Fake("braze", braze, lambda url: {
            "BRAZE_BASE_URL": url, "BRAZE_API_KEY": braze.api_key}),
        Fake("klaviyo", klaviyo, lambda url: {
            "KLAVIYO_BASE_URL": url, "KLAVIYO_API_KEY": klaviyo.api_key}),
        Fake("the_trade_desk", ttd, lambda url: {
            "TTD_BASE_URL": url, "TTD_AUTH_TOKEN": ttd.token,
            "TTD_DATA_PROVIDER_ID": ttd.data_provider_id,
            "TTD_TRACKING_TAG_ID": ttd.tracking_tag_id}),
        Fake("uid2_operator", operator, lambda url: {
            "UID2_BASE_URL": url, "UID2_API_KEY": operator.api_key,
            "UID2_SECRET_KEY": operator.secret_b64}),
    ]


class _FixedPortServer(_Server):
    """tests.fakes.server's server, on a port chosen here instead of a free one."""

    def __init__(self, app: FakeApp, port: int) -> None:
        ThreadingHTTPServer.__init__(self, (HOST, port), _Handler)
        self.app = app


def environment(base_port: int = BASE_PORT) -> list[tuple[Fake, int, dict[str, str]]]:
    return [(fake, base_port + index, fake.env(f"http://{HOST}:{base_port + index}"))
            for index, fake in enumerate(fakes())]


def export_lines(env: dict[str, str]) -> list[str]:
    return [f"export {name}={value}" for name, value in env.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes",
        description="Serve every platform fake on loopback and print the environment "
                    "that points `ship` at them.")
    parser.add_argument("--base-port", type=int, default=BASE_PORT,
                        help=f"first port; the fakes take 9 in a row (default {BASE_PORT})")
    parser.add_argument("--print-env", action="store_true",
                        help="print the export lines only, and serve nothing")
    args = parser.parse_args(argv)

    fakes_env = environment(args.base_port)
    if args.print_env:
        for _, _, env in fakes_env:
            print("\n".join(export_lines(env)))
        print(f"export NO_PROXY={HOST},localhost")
        return 0

    servers: list[_Server] = []
    try:
        for fake, port, _ in fakes_env:
            servers.append(_FixedPortServer(fake.app, port))
    except OSError as error:
        for server in servers:
            server.server_close()
        print(f"cannot listen on {HOST}:{port} ({error.strerror}): stop what uses it, "
              "or choose other ports with --base-port", file=sys.stderr)
        return 2
    for server in servers:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    print("# Loopback fakes of the platforms; point `ship` at them with:")
    for fake, port, env in fakes_env:
        print(f"\n# {fake.name}: http://{HOST}:{port}")
        print("\n".join(export_lines(env)))
    print(f"\nexport NO_PROXY={HOST},localhost")
    print("\n# Serving until Ctrl-C.", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    for server in servers:
        server.shutdown()
        server.server_close()
    accepted = [(fake.name, len(fake.app.requests)) for fake, _, _ in fakes_env]
    print("\n# requests received: " + ", ".join(f"{name} {count}" for name, count in accepted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
