"""Settings: file, then environment; bad configuration stops with exit 2 and one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper import config as config_module
from shipper import destinations
from shipper.config import ConfigError, DestinationSettings, describe, load_config
from shipper.destinations import KNOWN_DESTINATIONS
from shipper.destinations.meta import MetaSettings
from shipper.destinations.tiktok import TikTokSettings
from tests.shipper.marts import meta_row

REPO_CONFIG = Path(__file__).resolve().parents[2] / "shipper.toml"


def _one_sentence(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith("ship: ") and line.endswith(".")
    return line


def test_the_checked_in_file_loads_with_documented_defaults():
    config = load_config(REPO_CONFIG, env={}, catalog=destinations.catalog())
    meta = config.settings_for("meta")
    assert isinstance(meta, MetaSettings)
    assert (meta.mart, meta.batch_size, meta.api_version) == ("meta_conversions", 1000, "v26.0")
    assert meta.base_url == "https://graph.facebook.com"
    tiktok = config.settings_for("tiktok")
    assert isinstance(tiktok, TikTokSettings)
    assert tiktok.max_event_age_days == 28
    assert tiktok.retryable_codes == (40100, 50000, 50002)
    assert config.ship.ledger_path == str(REPO_CONFIG.parent / "delivery_ledger.duckdb")
    # Every planned destination is accepted, whether its module exists yet or not.
    assert set(config.unparsed) | set(config.destinations) >= set(KNOWN_DESTINATIONS)
    assert not set(config.unparsed) & set(config.destinations)


def test_every_setting_has_a_description():
    for settings_class in (config_module.ShipSettings, DestinationSettings, MetaSettings,
                           TikTokSettings):
        for name, _kind, _default, help_text in describe(settings_class):
            assert help_text, name


def test_environment_overrides_win_over_the_file(tmp_path):
    path = tmp_path / "ship.toml"
    path.write_text('[destinations.meta]\nbatch_size = 1000\ndataset_id = "from-file"\n'
                    'enabled = true\n[destinations.tiktok]\nretryable_codes = [1]\n')
    config = load_config(path, env={
        "META_BATCH_SIZE": "250", "META_DATASET_ID": "from-env", "META_ENABLED": "false",
        "META_BASE_URL": "http://127.0.0.1:9", "META_REQUESTS_PER_SECOND": "2.5",
        "TIKTOK_RETRYABLE_CODES": "40100, 7", "SHIP_LEDGER_PATH": "elsewhere.duckdb",
        "SHIP_OUTBOX_DIR": "out",
    }, catalog=destinations.catalog())
    meta = config.settings_for("meta")
    assert (meta.batch_size, meta.dataset_id, meta.enabled) == (250, "from-env", False)
    assert meta.base_url == "http://127.0.0.1:9"
    assert meta.requests_per_second == 2.5
    assert config.settings_for("tiktok").retryable_codes == (40100, 7)
    # Paths are made absolute once: from the environment relative to the cwd, but the
    # ledger's, which is relative to the file so that every run finds the same one.
    assert config.ship.outbox_dir == str(Path.cwd() / "out")
    assert config.ship.ledger_path == str(tmp_path / "elsewhere.duckdb")


def test_env_override_changes_the_batching_of_a_real_run(workspace):
    fake = workspace.meta()
    workspace.env(META_BATCH_SIZE="7")
    workspace.meta_mart(meta_row(i) for i in range(20))
    assert workspace.ship("run", "meta") == 0
    assert sorted(fake.batch_sizes) == [6, 7, 7]


@pytest.mark.parametrize(("toml", "env", "expected"), [
    ("[destinations.metaa]\nenabled = true\n", {},
     "configures an unknown destination [destinations.metaa]"),
    ('[destinations.meta]\nbatch_size = "many"\n', {},
     "batch_size under [destinations.meta] in ship.toml must be an integer, got 'many'."),
    ("", {"META_BATCH_SIZE": "ten"}, "META_BATCH_SIZE must be an integer, got 'ten'."),
    ("[destinations.meta]\nbatch_size = 5000\n", {},
     "batch_size 5000 for meta is over the platform maximum of 1000"),
    ("", {"TIKTOK_BATCH_SIZE": "1001"},
     "batch_size 1001 for tiktok is over the platform maximum of 1000"),
    ('[destinations.meta]\naccess_token = "abc"\n', {},
     "access_token under [destinations.meta] looks like a credential"),
    ("[destinations.meta]\nbatchsize = 10\n", {},
     "[destinations.meta] in ship.toml has an unknown setting 'batchsize'"),
    ("[destinations.meta]\nconcurrency = 0\n", {}, "concurrency for meta must be at least 1"),
    ('[ship]\nsource = "s3"\n', {}, "source must be 'duckdb' or 'parquet'"),
    ("[destinations.meta\n", {}, "ship.toml is not valid TOML"),
    ("[warehouse]\nx = 1\n", {}, "unknown table [warehouse]"),
    ("", {"META_TIMEOUT_SECONDS": "nan"}, "META_TIMEOUT_SECONDS must be a finite number"),
    ("", {"META_GIVE_UP_AFTER_SECONDS": "inf"},
     "META_GIVE_UP_AFTER_SECONDS must be a finite number"),
    ("[destinations.meta]\ngive_up_after_seconds = nan\n", {},
     "give_up_after_seconds under [destinations.meta] in ship.toml must be a finite number"),
    ("[ship]\nread_batch_rows = 0\n", {}, "read_batch_rows must be at least 1"),
    ("", {"SHIP_READ_BATCH_ROWS": "-5"}, "read_batch_rows must be at least 1"),
])
def test_bad_config_raises_one_sentence(tmp_path, toml, env, expected):
    path = tmp_path / "ship.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as raised:
        load_config(path, env=env, catalog=destinations.catalog())
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message and message.endswith(".")


def test_an_outbox_that_is_a_file_is_one_sentence(workspace, capsys):
    workspace.meta_mart([])
    (workspace.root / "not-a-folder").write_text("x")
    assert workspace.ship("run", "meta", "--dry-run", "--outbox", "not-a-folder") == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_bad_config_exits_2_with_one_sentence(workspace, capsys):
    workspace.meta()
    workspace.meta_mart([meta_row(1)])
    workspace.env(META_BATCH_SIZE="abc")
    assert workspace.ship("run") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert line == "ship: META_BATCH_SIZE must be an integer, got 'abc'."


def test_batch_size_over_the_maximum_exits_2(workspace, capsys):
    workspace.meta()
    workspace.meta_mart([meta_row(1)])
    workspace.env(META_BATCH_SIZE="2000")
    assert workspace.ship("run", "meta") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert "over the platform maximum of 1000" in line


def test_missing_dataset_id_exits_2_before_sending(workspace, capsys):
    fake = workspace.meta()
    workspace.meta_mart([meta_row(1)])
    workspace.env(META_DATASET_ID="")
    assert workspace.ship("run", "meta") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert line == ("ship: meta needs dataset_id to send: set META_DATASET_ID or dataset_id "
                    "under [destinations.meta] in shipper.toml.")
    assert fake.requests == []


def test_unknown_destination_on_the_command_line_exits_2(workspace, capsys):
    assert workspace.ship("run", "myspace") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert "unknown destination 'myspace'" in line


def test_planned_but_unimplemented_destination_exits_2(workspace, capsys):
    # A name planned in the registry whose module does not exist (yet).
    workspace.monkeypatch.setattr(destinations, "KNOWN_DESTINATIONS",
                                  (*KNOWN_DESTINATIONS, "future_ads"))
    assert workspace.ship("run", "future_ads") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert "future_ads has no shipper module yet" in line


def test_missing_config_file_named_by_ship_config(workspace, capsys):
    workspace.env(SHIP_CONFIG=str(workspace.root / "nope.toml"))
    assert workspace.ship("status") == 2
    _one_sentence(capsys.readouterr().err)


def test_bad_memory_limit_exits_2(workspace, capsys):
    workspace.meta()
    workspace.meta_mart([meta_row(1)])
    workspace.env(SHIP_DUCKDB_MEMORY_LIMIT="lots")
    assert workspace.ship("run", "meta") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert "duckdb_memory_limit 'lots' is not a size DuckDB understands" in line


def test_missing_mart_database_exits_2(workspace, capsys):
    workspace.meta()
    assert workspace.ship("run", "meta") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert "there is no DuckDB file at" in line


def test_disabled_destination_is_not_shipped_by_default(workspace):
    meta = workspace.meta()
    tiktok = workspace.tiktok()
    workspace.env(TIKTOK_ENABLED="false")
    workspace.meta_mart([meta_row(1)])
    assert workspace.ship("run") == 0
    assert len(meta.accepted_ids) == 1
    assert tiktok.requests == []


def test_a_module_missing_its_dependency_does_not_take_the_others_down(workspace, capsys):
    import importlib

    real_import = importlib.import_module

    def import_module(name, *args):
        if name == "shipper.destinations.future_ads":
            raise ModuleNotFoundError("No module named 'future_sdk'", name="future_sdk")
        return real_import(name, *args)

    class FakeModuleInfo:
        name = "future_ads"

    real_iter = destinations.pkgutil.iter_modules
    workspace.monkeypatch.setattr(destinations.importlib, "import_module", import_module)
    workspace.monkeypatch.setattr(destinations.pkgutil, "iter_modules",
                                  lambda path: [*real_iter(path), FakeModuleInfo()])
    workspace.monkeypatch.setattr(destinations, "KNOWN_DESTINATIONS",
                                  (*KNOWN_DESTINATIONS, "future_ads"))
    workspace.monkeypatch.setattr(destinations, "_loaded", False)
    workspace.monkeypatch.setattr(destinations, "_unavailable", {})

    fake = workspace.meta()
    workspace.meta_mart([meta_row(1)])
    assert workspace.ship("run", "meta") == 0
    assert fake.accepted_ids == ["evt-1"]
    capsys.readouterr()

    assert workspace.ship("run", "future_ads") == 2
    line = _one_sentence(capsys.readouterr().err)
    assert "needs the package 'future_sdk', which is not installed" in line
