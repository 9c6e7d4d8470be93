"""The end-to-end tests run the real `ship` in the shipper tests' workspace."""

from tests.shipper.conftest import workspace  # noqa: F401 (a fixture)
