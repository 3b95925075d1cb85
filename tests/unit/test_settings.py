"""Settings: defaults < podmill.toml < PODMILL_* env < CLI flags, with provenance."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmill.errors import PodmillError
from podmill.settings import load_settings

from support.cli import run_cli


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    import os

    for key in list(os.environ):
        if key.startswith("PODMILL_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_precedence_and_provenance(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "podmill.toml").write_text(
        "allow_private_networks = true\n[topics]\nmin_topic_seconds = 40\n"
        "[asr]\nbeam_size = 2\n[download]\nmax_bytes = 1000\n"
    )
    monkeypatch.setenv("PODMILL_TOPICS__MIN_TOPIC_SECONDS", "45")
    monkeypatch.setenv("PODMILL_DOWNLOAD__MAX_BYTES", "2000")
    settings, source = load_settings({"download.max_bytes": 3000, "asr.model": None})

    assert settings.allow_private_networks is True
    assert source["allow_private_networks"].startswith("file ")
    assert settings.asr.beam_size == 2
    assert settings.topics.min_topic_seconds == 45
    assert source["topics.min_topic_seconds"] == "env PODMILL_TOPICS__MIN_TOPIC_SECONDS"
    assert settings.download.max_bytes == 3000 and source["download.max_bytes"] == "cli"
    assert settings.asr.model == "tiny.en" and source["asr.model"] == "default"


def test_bad_values_name_the_setting_and_source(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PODMILL_DOWNLOAD__MAX_BYTES", "lots")
    with pytest.raises(PodmillError, match=r"download\.max_bytes.*PODMILL_DOWNLOAD__MAX_BYTES"):
        load_settings()


def test_broken_toml_is_one_clear_error(clean_env: Path) -> None:
    (clean_env / "podmill.toml").write_text("data_dir = [unclosed\n")
    with pytest.raises(PodmillError, match="podmill.toml"):
        load_settings()


def test_config_show_cli(clean_env: Path) -> None:
    (clean_env / "podmill.toml").write_text("[topics]\nkey_points = 6\n")
    result = run_cli("config", "show", "--json", cwd=clean_env, env={"PODMILL_ASR__BEAM_SIZE": "3"})
    assert result.code == 0, result.stderr
    import json

    shown = json.loads(result.stdout)
    assert shown["topics.key_points"]["value"] == 6
    assert shown["topics.key_points"]["source"].startswith("file ")
    assert shown["asr.beam_size"] == {"value": 3, "source": "env PODMILL_ASR__BEAM_SIZE"}
    assert shown["download.max_bytes"] == {"value": 1024**3, "source": "default"}


def test_model_budget_settings_are_validated_and_reach_the_arbiter(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from podmill.ml.arbiter import configure_process_arbiter, process_arbiter, total_memory

    monkeypatch.setenv("PODMILL_MODELS__MEMORY_BUDGET", "1.5")  # a share, at most 1
    with pytest.raises(PodmillError, match=r"models\.memory_budget"):
        load_settings()

    monkeypatch.setenv("PODMILL_MODELS__MEMORY_BUDGET", "0.25")
    monkeypatch.setenv("PODMILL_MODELS__IDLE_UNLOAD_SECONDS", "30")
    settings, _ = load_settings()
    arbiter = process_arbiter()
    before = (arbiter.budgets, arbiter.idle_seconds)
    try:
        configure_process_arbiter(
            settings.models.memory_budget, settings.models.idle_unload_seconds
        )
        ram = total_memory()
        assert ram and arbiter.budgets["cpu"] == int(ram * 0.25)
        assert arbiter.idle_seconds == 30
    finally:
        arbiter.budgets, arbiter.idle_seconds = before
