"""What more than one subcommand needs: which destinations, and their classes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from shipper import destinations
from shipper.config import Config, ConfigError
from shipper.destinations.base import Destination


def check_known(requested: Sequence[str]) -> None:
    known = destinations.known_names()
    for name in requested:
        if name not in known:
            raise ConfigError(f"unknown destination {name!r}: use one of {', '.join(known)}.")


def select_destinations(requested: Sequence[str], config: Config) -> list[str]:
    """Named destinations (checked), or every enabled one that has a module."""
    check_known(requested)
    implemented = destinations.implemented()
    for name in requested:
        if name not in implemented:
            why = destinations.unavailable(name)
            if why:
                raise ConfigError(f"{name} cannot be shipped: {why}; install it.")
            raise ConfigError(
                f"{name} has no shipper module yet: the implemented destinations are "
                f"{', '.join(implemented)}."
            )
    if requested:
        return list(dict.fromkeys(requested))
    return [name for name in implemented if config.settings_for(name).enabled]


def destination_class(name: str) -> type[Destination]:
    """The module class of a destination `select_destinations` returned."""
    cls = destinations.get(name)
    if cls is None:  # select_destinations returns only implemented destinations
        raise ConfigError(f"{name} has no shipper module.")
    return cls


def event_clock(as_of: float | None, wallclock: Callable[[], float]) -> Callable[[], float]:
    """What event age is judged by: `--as-of`, else the real clock."""
    if as_of is None:
        return wallclock
    return lambda: as_of
