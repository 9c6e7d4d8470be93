"""Typed settings: the checked-in TOML file, then environment overrides.

Precedence, lowest to highest: dataclass defaults, `shipper.toml` (or the file
named by `SHIP_CONFIG`), environment variables. Environment names are the
section and setting upper-cased: `META_BATCH_SIZE`, `TIKTOK_EVENT_SOURCE_ID`,
`META_BASE_URL`; the `[ship]` section uses `SHIP_` (`SHIP_LEDGER_PATH`), and
`DUCKDB_PATH` names the mart database as it does for dbt.

Secrets never come from the file: each destination names the environment
variables holding its credentials (`META_ACCESS_TOKEN`), and a credential-like
key in the file is a configuration error.

Every problem is raised as `ConfigError` with one sentence saying what to fix;
the CLI prints it and exits 2.

Which destinations exist is not this module's knowledge: the caller hands
`load_config` a `Catalog` (`shipper.destinations.catalog()`), so the
configuration never imports the destinations.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from shipper.settings import (
    ConfigError,
    DestinationSettings,
    ShipSettings,
    check_secret,
    secrets_from_env,
    setting,
)

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["Catalog", "Config", "ConfigError", "DestinationSettings", "DestinationSpec",
           "ShipSettings", "check_secret", "describe", "load_config", "require", "setting"]

DEFAULT_CONFIG_FILE = "shipper.toml"

# Keys that look like credentials: refused in the file with a pointer to the env var.
_SECRET_WORDS = ("token", "secret", "password", "api_key", "apikey", "private_key")

# A setting's value as read from the file or the environment, before its dataclass
# takes it: what the setting's type hint (`kind`) asks for.
SettingValue: TypeAlias = bool | int | float | str | tuple["SettingValue", ...] | None
SettingsT = TypeVar("SettingsT", bound="DataclassInstance")


@dataclass(frozen=True)
class DestinationSpec:
    """What the configuration needs of a destination that has a module."""

    settings_class: type[DestinationSettings]
    # The environment variables holding its credentials: refused as file keys.
    credential_env: tuple[str, ...]
    max_batch_size: int
    # Its credentials from the environment, or None when they are not all set.
    credentials_from_env: Callable[[DestinationSettings, Mapping[str, str]],
                                   dict[str, str] | None]


@dataclass(frozen=True)
class Catalog:
    """The destinations a configuration may name: every known name, in a stable order,
    and the spec of each that has a module (the others are kept unparsed)."""

    known: tuple[str, ...]
    specs: Mapping[str, DestinationSpec]


@dataclass(frozen=True)
class Config:
    """Everything the shipper was configured with, secrets excluded."""

    path: Path | None
    ship: ShipSettings
    # Implemented destinations, parsed into their own settings class.
    destinations: Mapping[str, DestinationSettings]
    # Known but not implemented destinations: kept raw until a module parses them.
    unparsed: Mapping[str, Mapping[str, object]]
    env: Mapping[str, str]
    catalog: Catalog

    def settings_for(self, name: str) -> DestinationSettings:
        return self.destinations[name]

    def secrets_for(self, env_names: tuple[str, ...]) -> dict[str, str] | None:
        """The credentials named by `env_names`, or None when any is unset or empty."""
        return secrets_from_env(env_names, self.env)

    def credentials_for(self, name: str) -> dict[str, str] | None:
        """Destination `name`'s credentials from the environment, or None when they are
        not all there (the destination's own `credentials_from_env` decides)."""
        spec = self.catalog.specs.get(name)
        if spec is None:
            return None
        return spec.credentials_from_env(self.settings_for(name), self.env)


def describe(settings_class: type) -> list[tuple[str, str, object, str]]:
    """(name, type, default, description) of every setting of a settings dataclass."""
    hints = typing.get_type_hints(settings_class)
    rows = []
    for item in dataclasses.fields(settings_class):
        rows.append((item.name, _type_name(hints[item.name]), item.default, item.metadata["help"]))
    return rows


def load_config(path: str | os.PathLike[str] | None, env: Mapping[str, str] | None, *,
                catalog: Catalog) -> Config:
    """Read the config file and the environment (None: this process's) into typed
    settings for the destinations of `catalog`, or raise ConfigError."""
    env = dict(os.environ if env is None else env)
    config_path = _config_path(path, env)
    raw = _read_toml(config_path) if config_path else {}
    where = config_path.name if config_path else "shipper.toml"
    base_dir = config_path.parent if config_path else Path.cwd()

    unknown_tables = sorted(set(raw) - {"ship", "destinations"})
    if unknown_tables:
        raise ConfigError(
            f"{where} has an unknown table [{unknown_tables[0]}]: "
            "use [ship] for shared settings and [destinations.<name>] per destination."
        )
    ship = _ship_settings(_table(raw.get("ship", {}), "[ship]", where), base_dir, env, where)
    parsed, unparsed = _destination_settings(
        _table(raw.get("destinations", {}), "[destinations]", where), env, where, catalog)
    return Config(path=config_path, ship=ship, destinations=parsed, unparsed=unparsed, env=env,
                  catalog=catalog)


def _ship_settings(table: Mapping[str, object], base_dir: Path, env: Mapping[str, str],
                   where: str) -> ShipSettings:
    """The [ship] table and the SHIP_ variables, checked, with every path absolute."""
    ship = _parse(ShipSettings, table, section="ship", env_prefix="SHIP", env=env, where=where)
    ship = _resolve_paths(ship, table, base_dir, env)
    if ship.read_batch_rows < 1:
        raise ConfigError(f"read_batch_rows must be at least 1: fix it under [ship] in {where} "
                          "or in SHIP_READ_BATCH_ROWS.")
    if not 0 <= ship.max_shrink < 1:
        raise ConfigError(f"max_shrink must be at least 0 and below 1 (a share of rows): fix "
                          f"it under [ship] in {where} or in SHIP_MAX_SHRINK.")
    if ship.progress_interval_seconds <= 0:
        raise ConfigError(f"progress_interval_seconds must be above 0: fix it under [ship] in "
                          f"{where} or in SHIP_PROGRESS_INTERVAL_SECONDS.")
    if ship.source not in ("duckdb", "parquet"):
        raise ConfigError(
            f"source must be 'duckdb' or 'parquet', not {ship.source!r}: fix it under [ship] "
            f"in {where} or in SHIP_SOURCE."
        )
    return ship


def _destination_settings(tables: Mapping[str, object], env: Mapping[str, str], where: str,
                          catalog: Catalog) -> tuple[dict[str, DestinationSettings],
                                                     dict[str, Mapping[str, object]]]:
    """Each implemented destination's settings, parsed by its module's settings class,
    and the tables of the known destinations without a module, kept raw."""
    known = catalog.known
    for name in tables:
        if name not in known:
            raise ConfigError(
                f"{where} configures an unknown destination [destinations.{name}]: "
                f"use one of {', '.join(known)}."
            )
    parsed: dict[str, DestinationSettings] = {}
    unparsed: dict[str, Mapping[str, object]] = {}
    for name in known:
        table = _table(tables.get(name, {}), f"[destinations.{name}]", where)
        spec = catalog.specs.get(name)
        if spec is None:
            unparsed[name] = table
            continue
        _refuse_secrets(name, table, where, spec.credential_env)
        settings: DestinationSettings = _parse(
            spec.settings_class, table, section=f"destinations.{name}",
            env_prefix=name.upper(), env=env, where=where)
        given = "batch_size" in table or f"{name.upper()}_BATCH_SIZE" in env
        if not given and settings.batch_size > spec.max_batch_size:
            # An unset batch size means "as large as the platform allows".
            settings = dataclasses.replace(settings, batch_size=spec.max_batch_size)
        _check_limits(name, settings, spec.max_batch_size, where)
        parsed[name] = settings
    return parsed, unparsed


def require(name: str, settings: DestinationSettings, required: tuple[str, ...],
            where: str = "shipper.toml") -> None:
    """Raise ConfigError when a setting a live send needs (a dataset id ...) is empty."""
    for key in required:
        if not getattr(settings, key):
            raise ConfigError(
                f"{name} needs {key} to send: set {name.upper()}_{key.upper()} or {key} "
                f"under [destinations.{name}] in {where}."
            )


def _config_path(path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path | None:
    if path is not None:
        chosen, named = Path(path), True
    elif env.get("SHIP_CONFIG"):
        chosen, named = Path(env["SHIP_CONFIG"]), True
    else:
        chosen, named = Path(DEFAULT_CONFIG_FILE), False
    if chosen.is_file():
        return chosen.resolve()
    if named:
        raise ConfigError(f"config file {chosen} does not exist: fix SHIP_CONFIG or --config.")
    return None


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML ({exc}): fix the syntax.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror}): check the path.") from None


def _table(value: object, label: str, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ConfigError(f"{label} in {where} must be a table of settings.")
    return value


def _refuse_secrets(name: str, table: Mapping[str, object], where: str,
                    credential_env: tuple[str, ...]) -> None:
    for key in table:
        if any(word in key.lower() for word in _SECRET_WORDS):
            hint = " or ".join(credential_env) or f"{name.upper()}_{key.upper()}"
            raise ConfigError(
                f"{key} under [destinations.{name}] looks like a credential: remove it from "
                f"{where} and set {hint} in the environment."
            )


def _parse(settings_class: type[SettingsT], table: Mapping[str, object], *, section: str,
           env_prefix: str, env: Mapping[str, str], where: str) -> SettingsT:
    hints = typing.get_type_hints(settings_class)
    names = {item.name: item for item in dataclasses.fields(settings_class)}
    unknown = sorted(set(table) - set(names))
    if unknown:
        raise ConfigError(
            f"[{section}] in {where} has an unknown setting {unknown[0]!r}: "
            f"use one of {', '.join(sorted(names))}."
        )
    values: dict[str, SettingValue] = {}
    for name, item in names.items():
        kind = hints[name]
        env_names = [f"{env_prefix}_{name.upper()}"]
        if item.metadata.get("env"):
            env_names.insert(0, item.metadata["env"])
        env_name = next((candidate for candidate in env_names if candidate in env), None)
        if env_name is not None:
            value = _from_env(env[env_name], kind, env_name)
            label = env_name
        elif name in table:
            label = f"{name} under [{section}] in {where}"
            value = _from_file(table[name], kind, label)
        else:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            # nan compares false with every limit, so it would switch a check off.
            raise ConfigError(f"{label} must be a finite number, got {value!r}.")
        values[name] = value
    return settings_class(**values)


def _from_file(value: object, kind: object, label: str) -> SettingValue:
    base, optional = _unwrap_optional(kind)
    if value is None and optional:
        return None
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif base is str:
        if isinstance(value, str):
            return value
    elif typing.get_origin(base) is tuple:
        item_type = typing.get_args(base)[0]
        if isinstance(value, list):
            return tuple(_from_file(item, item_type, label) for item in value)
    raise ConfigError(f"{label} must be {_type_name(kind)}, got {value!r}.")


def _from_env(raw: str, kind: object, env_name: str) -> SettingValue:
    base, optional = _unwrap_optional(kind)
    text = raw.strip()
    if optional and text == "":
        return None
    if typing.get_origin(base) is tuple:
        item_type = typing.get_args(base)[0]
        parts = [part for part in text.split(",") if part.strip()]
        try:
            return tuple(_parse_scalar(part.strip(), item_type) for part in parts)
        except ValueError:
            raise ConfigError(f"{env_name} must be {_type_name(kind)}, got {raw!r}.") from None
    try:
        return _parse_scalar(text, base)
    except ValueError:
        raise ConfigError(f"{env_name} must be {_type_name(kind)}, got {raw!r}.") from None


def _parse_scalar(text: str, kind: object) -> bool | int | float | str:
    if kind is bool:
        lowered = text.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if kind is int:
        return int(text)
    if kind is float:
        return float(text)
    if kind is str:
        return text
    raise TypeError(f"unsupported setting type {kind!r}")


def _unwrap_optional(kind: object) -> tuple[object, bool]:
    args = typing.get_args(kind)
    if type(None) in args:
        others = [arg for arg in args if arg is not type(None)]
        return others[0], True
    return kind, False


def _type_name(kind: object) -> str:
    base, optional = _unwrap_optional(kind)
    if typing.get_origin(base) is tuple:
        name = f"a list of {_type_name(typing.get_args(base)[0])}s"
    else:
        names: dict[object, str] = {bool: "true or false", int: "an integer",
                                    float: "a number", str: "a string"}
        name = names.get(base, str(base))
    return f"{name} (or empty)" if optional else name


def _check_limits(name: str, settings: DestinationSettings, max_batch_size: int,
                  where: str) -> None:
    def fix(key: str) -> str:
        return f"set {name.upper()}_{key.upper()} or {key} under [destinations.{name}] in {where}"

    if settings.batch_size > max_batch_size:
        raise ConfigError(
            f"batch_size {settings.batch_size} for {name} is over the platform maximum of "
            f"{max_batch_size}: {fix('batch_size')} to {max_batch_size} or less."
        )
    positive_ints = ("batch_size", "concurrency", "max_attempts", "max_event_age_days")
    for key in positive_ints:
        if getattr(settings, key) < 1:
            raise ConfigError(f"{key} for {name} must be at least 1: {fix(key)}.")
    positive_floats = ("connect_timeout_seconds", "timeout_seconds", "give_up_after_seconds",
                       "backoff_max_seconds")
    for key in positive_floats:
        if getattr(settings, key) <= 0:
            raise ConfigError(f"{key} for {name} must be above 0: {fix(key)}.")
    for key in ("requests_per_second", "backoff_base_seconds"):
        if getattr(settings, key) < 0:
            raise ConfigError(f"{key} for {name} must not be negative: {fix(key)}.")
    if not settings.mart:
        raise ConfigError(f"{name} has no mart to read: {fix('mart')}.")
    if not settings.base_url.startswith(("https://", "http://")):
        raise ConfigError(f"base_url for {name} must start with https://: {fix('base_url')}.")


def _resolve_paths(ship: ShipSettings, table: Mapping[str, object], base_dir: Path,
                   env: Mapping[str, str]) -> ShipSettings:
    # Paths written in the file are relative to the file, so `SHIP_CONFIG=/x/shipper.toml`
    # works from any directory; paths from the environment are relative to the cwd, but
    # the ledger's: it is the memory of what was sent, and a run started from another
    # directory must find the same one. Every path is made absolute once, here.
    # Strings, but typed Any: mypy checks `replace`'s keywords field by field, and which
    # fields these are (the *_path and *_dir ones) is known only at run time.
    updates: dict[str, Any] = {}
    for item in dataclasses.fields(ShipSettings):
        key = item.name
        if not key.endswith(("_path", "_dir")):
            continue
        value = getattr(ship, key)
        overridden = f"SHIP_{key.upper()}" in env or item.metadata.get("env") in env
        relative_to_file = key == "ledger_path" or (key in table and not overridden)
        base = base_dir if relative_to_file else Path.cwd()
        updates[key] = str((base / value).absolute())
    return dataclasses.replace(ship, **updates)
