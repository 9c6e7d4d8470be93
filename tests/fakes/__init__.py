"""Loopback fakes of the platforms, shared by every test that needs one."""

from tests.fakes.meta import FakeMeta
from tests.fakes.server import Drip, FakeApp, FakeRequest, FakeServer, Later, Reply, Reset, Stall
from tests.fakes.tiktok import FakeTikTok

__all__ = ["Drip", "FakeApp", "FakeMeta", "FakeRequest", "FakeServer", "FakeTikTok", "Later", "Reply",
           "Reset", "Stall"]
