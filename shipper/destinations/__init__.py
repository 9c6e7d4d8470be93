"""The destination registry.

Every platform module in this package (all but `base.py` and `rest.py`, which
hold the base classes) is imported on first use; a module joins the registry
by decorating its `Destination` subclass with `@register`. The names
below are the destinations the project plans for; a name is accepted in
`shipper.toml` and on the command line even before its module exists, and
`ship run` without names ships every enabled destination that has a module.
"""

from __future__ import annotations

import importlib
import pkgutil

from shipper.config import Catalog, DestinationSpec
from shipper.destinations.base import _REGISTRY, Destination, register, unregister

__all__ = ["KNOWN_DESTINATIONS", "Destination", "catalog", "get", "implemented", "known_names",
           "register", "unavailable", "unregister"]

KNOWN_DESTINATIONS = (
    "meta",
    "tiktok",
    "the_trade_desk",
    "google_ads",
    "pinterest",
    "snapchat",
    "criteo",
    "braze",
    "klaviyo",
)

_loaded = False
# Modules that could not be imported because a third-party package is missing.
_unavailable: dict[str, str] = {}


def _load_modules() -> None:
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(__path__):
        if module.name in ("base", "rest") or module.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{module.name}")
        except ModuleNotFoundError as exc:
            # One module's missing dependency must not take every destination down;
            # a missing module of our own package is a bug and still raises.
            if not exc.name or exc.name.split(".")[0] == "shipper":
                raise
            _unavailable[module.name] = (
                f"its module needs the package {exc.name!r}, which is not installed"
            )
    _loaded = True


def unavailable(name: str) -> str | None:
    """Why the module of `name` could not be loaded, or None."""
    _load_modules()
    return _unavailable.get(name)


def known_names() -> tuple[str, ...]:
    """Planned destinations first, in a stable order, then any other registered one."""
    _load_modules()
    extra = sorted(set(_REGISTRY) - set(KNOWN_DESTINATIONS))
    return KNOWN_DESTINATIONS + tuple(extra)


def get(name: str) -> type[Destination] | None:
    """The module class for `name`, or None when no module implements it yet."""
    _load_modules()
    return _REGISTRY.get(name)


def catalog() -> Catalog:
    """What the configuration needs to know of the destinations (`load_config`)."""
    return Catalog(known_names(), {
        name: DestinationSpec(cls.settings_class, cls.credential_env, cls.max_batch_size,
                              cls.credentials_from_env)
        for name, cls in implemented().items()
    })


def implemented() -> dict[str, type[Destination]]:
    _load_modules()
    return {name: _REGISTRY[name] for name in known_names() if name in _REGISTRY}
