"""``podmill search`` on the data directory ``podmill run`` wrote, with no extra step;
``podmill index rebuild`` brings a lost database back from the artifacts.

The feed's episodes carry publisher transcripts (SRT), so no ASR runs: the topic,
index and publish stages are the real ones.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from podmill.cli.search import open_index
from podmill.errors import PodmillError
from podmill.search.query import parse_time, resolve_feed
from podmill.search.searcher import Searcher
from podmill.settings import Settings
from podmill.storage import db

from support.cli import CliResult, run_cli

TOPICS = {
    "coffee": [
        "Today we start with brewing coffee at home.",
        "Fresh beans with a roast date make the biggest difference.",
        "Grind the beans just before brewing for the best flavour.",
        "A pour over needs a medium coarse grind and water just off the boil.",
        "Espresso machines need a fine grind and careful tamping.",
        "Store your coffee beans in an airtight container away from light.",
    ],
    "mars": [
        "Now let us turn to the exploration of Mars.",
        "The Perseverance rover landed in Jezero crater in 2021.",
        "It collects rock samples that a future mission will return to Earth.",
        "The Ingenuity helicopter made the first powered flight on another planet.",
        "Scientists look for signs of ancient microbial life in the dried lake bed.",
        "Dust storms on Mars can cover the whole planet for weeks.",
    ],
    "tax": [
        "The city council approved a new property tax plan on Tuesday.",
        "The tax rate rises by two percent for commercial buildings.",
        "Homeowners get a rebate if their income is below the median.",
        "Critics say the budget still leaves the transit system underfunded.",
        "The mayor promised to publish the full spending report next month.",
        "A public hearing on the budget is scheduled for December.",
    ],
    "garden": [
        "Let us talk about growing tomatoes in a small garden.",
        "Tomatoes need at least six hours of direct sunlight every day.",
        "Water the plants deeply at the base rather than on the leaves.",
        "Pinch off the suckers so the plant puts energy into fruit.",
        "Blight spreads in wet weather, so leave space between plants.",
        "Harvest the fruit when it is fully colored and slightly soft.",
    ],
}


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _srt(lines: list[str]) -> str:
    cues, t = [], 0.0
    for n, line in enumerate(lines, 1):
        length = max(2.0, 0.4 * len(line.split()))
        cues.append(f"{n}\n{_clock(t)} --> {_clock(t + length)}\n{line}\n")
        t += length + 0.3
    return "\n".join(cues)


def _feed(folder: Path, title: str, episodes: list[tuple[str, str, list[str]]]) -> Path:
    items = []
    for n, (guid, ep_title, lines) in enumerate(episodes, 1):
        (folder / f"{guid}.srt").write_text(_srt(lines))
        items.append(
            f"<item><title>{ep_title}</title><guid>{guid}</guid>"
            f"<pubDate>Mon, 0{n} Nov 2026 10:00:00 GMT</pubDate>"
            f'<podcast:transcript url="{guid}.srt" type="application/srt"/></item>'
        )
    path = folder / f"{guid}-feed.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:podcast="https://podcastindex.org/namespace/1.0"><channel>'
        f"<title>{title}</title><link>https://example.invalid/</link>"
        f"<description>t</description>{''.join(items)}</channel></rss>"
    )
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two feeds processed by ``podmill run`` into one data directory."""
    folder = tmp_path_factory.mktemp("search-cli")
    data = folder / "data"
    science = _feed(
        folder, "Weekend Science", [("sci-1", "Coffee and Mars", TOPICS["coffee"] + TOPICS["mars"])]
    )
    city = _feed(
        folder, "City Hour", [("city-1", "Taxes and tomatoes", TOPICS["tax"] + TOPICS["garden"])]
    )
    # both at once, as two users' runs would: the embedded engine shares the SQLite file
    with ThreadPoolExecutor(2) as pool:
        runs = list(
            pool.map(
                lambda feed: run_cli("run", feed, "--data-dir", data, timeout=300), [science, city]
            )
        )
    for result in runs:
        assert result.code == 0, result.stderr
    return data


def _search(data: Path, *args: str) -> CliResult:
    return run_cli("search", *args, "--data-dir", data, timeout=120)


def test_search_json_after_run(data_dir: Path) -> None:
    result = _search(data_dir, "robot vehicle on the red planet", "--json", "--limit", "3")
    assert result.code == 0, result.stderr
    hits = json.loads(result.stdout)
    assert 0 < len(hits) <= 3
    top = hits[0]
    assert {"episode_key", "episode_title", "node_id", "level", "start", "end", "score"} <= set(top)
    assert top["episode_title"] == "Coffee and Mars"
    about = (top["snippet"] + " " + top["title"]).lower()
    assert any(word in about for word in ("mars", "rover", "planet"))  # not the coffee half
    assert top["snippet"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_feed_filter_and_plain_output(data_dir: Path) -> None:
    result = _search(data_dir, "tomatoes sunlight", "--feed", "city hour")
    assert result.code == 0, result.stderr
    assert "Taxes and tomatoes" in result.stdout
    assert "Coffee and Mars" not in result.stdout
    # piped: the matches keep the JSON snippet's markers, and no escape codes
    assert "«sunlight»" in result.stdout and "\x1b" not in result.stdout
    # one line per place: the garden topic and its passages are not both shown
    shown = json.loads(_search(data_dir, "tomatoes sunlight", "--json").stdout)
    where = re.findall(r"^ +(\S+)–(\S+)  (passage|node) in .*\[(\w+)\]", result.stdout, re.M)
    json_where = [(h["kind"], h["episode_key"]) for h in shown if h["feed_title"] == "City Hour"]
    assert [(kind, key) for _, _, kind, key in where] == json_where
    garden = [h for h in shown if "tomato" in h["title"].lower()]
    assert garden and {h["kind"] for h in garden} == {"passage"}, shown
    for node in (h for h in shown if h["kind"] == "node"):
        for passage in (h for h in shown if h["kind"] == "passage"):
            middle = (passage["start"] + passage["end"]) / 2
            same = passage["episode_key"] == node["episode_key"]
            assert not (same and node["start"] <= middle < node["end"]), (node, passage)


def test_terminal_output_shows_matches_in_bold(data_dir: Path) -> None:
    """On a terminal the matched words are bold, without the «» markers."""
    main, other = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODMILL_")}
    env.update({"TERM": "xterm-256color", "COLUMNS": "200"})
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        env.pop(name, None)
    command = [sys.executable, "-m", "podmill", "search", "tomatoes sunlight"]
    proc = subprocess.Popen(
        [*command, "--data-dir", str(data_dir), "--limit", "2"],
        stdout=other,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.close(other)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    os.close(main)
    shown = b"".join(chunks).decode()
    assert "\x1b[" in shown and "sunlight" in shown
    assert "«" not in shown


def test_errors_are_one_clear_line(data_dir: Path, tmp_path: Path) -> None:
    fresh = _search(tmp_path / "nothing", "coffee")
    assert fresh.code == 1 and "run `podmill run" in fresh.error_line
    assert "Traceback" not in fresh.stderr
    # the other messages, in-process (each subprocess costs seconds of imports)
    with pytest.raises(PodmillError, match=r"--since 'last tuesday' is not a time"):
        parse_time("last tuesday", "--since")
    engine = open_index(Settings(data_dir=data_dir))
    try:
        with engine.connect() as conn, pytest.raises(PodmillError, match="matches no feed"):
            resolve_feed(conn, "no such show")
        with pytest.raises(PodmillError, match="empty query"):
            Searcher(engine, data_dir).search(" ")
    finally:
        engine.dispose()
    with pytest.raises(PodmillError, match=r"the search index is empty but .* index rebuild"):
        copy = tmp_path / "copy"
        shutil.copytree(data_dir / "episodes", copy / "episodes")
        db.upgrade(Settings(data_dir=copy).database_url)
        open_index(Settings(data_dir=copy))


def test_rebuild_brings_a_lost_database_back(data_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(data_dir / "episodes", copy / "episodes")  # artifacts only, no database
    rebuilt = run_cli("index", "rebuild", "--data-dir", copy, timeout=120)
    assert rebuilt.code == 0, rebuilt.stderr
    assert "indexed 2 episodes" in rebuilt.stderr and "(0 vectors computed)" in rebuilt.stderr
    result = _search(copy, "grind the beans", "--json", "--limit", "1")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)[0]["episode_title"] == "Coffee and Mars"
