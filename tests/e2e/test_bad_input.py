"""Bad input: a clear error, a non-zero exit, nothing half-written, other episodes fine."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.cli import run_cli
from support.feeds import item, rss
from support.paths import DEMO, FIXTURES

pytestmark = pytest.mark.slow

HTML = b"<!DOCTYPE html><html><head><title>Oops</title></head><body>Not here</body></html>"


def _leftovers(data: Path, episode_key: str) -> list[Path]:
    """Files an episode left behind (the run's database does not count)."""
    folder = data / "episodes" / episode_key
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_bad_items_fail_alone_and_leave_nothing(http_server, tmp_path: Path) -> None:
    sonnet = (DEMO / "sonnet001.mp3").read_bytes()
    http_server.add_file("/good.flac", DEMO / "jfk.flac", "audio/flac")
    http_server.add_bytes("/html.mp3", HTML, "text/html")
    http_server.add_bytes("/damaged.mp3", sonnet[:600], "audio/mpeg")
    http_server.add_truncated("/cut.mp3", sonnet, "audio/mpeg", send_bytes=len(sonnet) // 3)
    http_server.add_status("/gone.mp3", 404)
    http_server.add_bytes("/huge.mp3", sonnet * 4, "audio/mpeg")  # 1.7 MB > the 1.3 MB cap
    feed = rss(
        [
            item("good", "Good", "good.flac", "audio/flac"),
            item("html", "HTML page", "html.mp3"),
            item("damaged", "Damaged mp3", "damaged.mp3"),
            item("cut", "Cut transfer", "cut.mp3"),
            item("gone", "Gone", "gone.mp3"),
            item("huge", "Huge", "huge.mp3"),
        ]
    )
    url = http_server.add_bytes("/feed.xml", feed, "application/rss+xml")
    data = tmp_path / "data"

    result = run_cli(
        "run",
        url,
        "--data-dir",
        data,
        "--json",
        "--allow-private-networks",
        env={
            "PODMILL_DOWNLOAD__MAX_BYTES": "1300000",
            "PODMILL_DOWNLOAD__BACKOFF_SECONDS": "0.01",
            "PODMILL_PIPELINE__RETRY_DELAY_SCALE": "0.01",
        },
    )

    assert result.code != 0
    assert "Traceback" not in result.stderr
    lines = {line["title"]: line for line in result.json_lines()}
    assert lines["Good"]["status"] == "done"
    expected = {
        "HTML page": "html",
        "Damaged mp3": "decode",
        "Cut transfer": "truncated",
        "Gone": "404",
        "Huge": "max_bytes",
    }
    for title, needle in expected.items():
        line = lines[title]
        assert line["status"] == "failed"
        assert needle in line["error"].lower(), line["error"]
        assert line["error"].startswith("fetch:")
        assert "\n" not in line["error"]
        assert _leftovers(data, line["episode_key"]) == [], title
    assert http_server.count("/gone.mp3", "GET") == 1  # a 404 is not retried
    assert http_server.count("/cut.mp3", "GET") > 1  # a cut transfer is


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("malformed", "malformed"),
        ("empty", "no items"),
        ("video", "video"),
        ("not-a-feed", "html"),
    ],
)
def test_bad_feed_alone_is_one_clear_line(
    http_server, tmp_path: Path, case: str, needle: str
) -> None:
    bodies = {
        "malformed": (
            FIXTURES / "feeds" / "feedparser__bozo_invalid-bytes-with-bom.xml"
        ).read_bytes(),
        "empty": rss([]),
        # video enclosures only, and the one audio alternate is a torrent
        "video": rss(
            [
                item(
                    f"v{i}",
                    f"Clip {i}",
                    f"https://cdn.example.invalid/v{i}.mp4",
                    "video/mp4",
                    extra='<podcast:alternateEnclosure type="audio/mp4">'
                    f'<podcast:source uri="https://cdn.example.invalid/a{i}.torrent" '
                    'contentType="application/x-bittorrent"/></podcast:alternateEnclosure>',
                )
                for i in range(3)
            ]
        ),
        "not-a-feed": HTML,
    }
    url = http_server.add_bytes("/feed.xml", bodies[case], "application/rss+xml")
    result = run_cli("run", url, "--data-dir", tmp_path / "d", "--allow-private-networks")
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert needle in result.error_line.lower(), result.stderr
    assert not (tmp_path / "d" / "episodes").exists()


def test_missing_local_file(tmp_path: Path) -> None:
    result = run_cli("run", tmp_path / "nope.mp3", "--data-dir", tmp_path / "d")
    assert result.code == 1
    assert "no such file" in result.error_line and "Traceback" not in result.stderr


def test_local_non_audio_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.pdf"
    notes.write_bytes(b"%PDF-1.4\n" + bytes(200))
    result = run_cli("run", notes, "--data-dir", tmp_path / "d")
    assert result.code == 1
    assert "neither audio nor a feed" in result.error_line


def test_html_at_an_audio_url_alone(http_server, tmp_path: Path) -> None:
    url = http_server.add_bytes("/episode.mp3", HTML, "text/html")
    result = run_cli("run", url, "--data-dir", tmp_path / "d", "--json", "--allow-private-networks")
    assert result.code == 1
    (line,) = result.json_lines()
    assert line["status"] == "failed" and "html" in line["error"].lower()


def test_private_address_refused_by_default(http_server, tmp_path: Path) -> None:
    url = http_server.add_file("/jfk.flac", DEMO / "jfk.flac", "audio/flac")
    result = run_cli("run", url, "--data-dir", tmp_path / "d", "--json")
    assert result.code == 1
    (line,) = result.json_lines()
    assert "allow_private_networks" in line["error"]
    assert http_server.count("/jfk.flac") == 0
