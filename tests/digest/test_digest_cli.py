"""``podmill digest`` on an embedded data directory: as a user runs it (a subprocess)
where the process boundary matters (exit codes, one-line errors), in-process otherwise
(Typer's runner; starting podmill costs seconds on a busy machine)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from digest_library import CABLES, OTHER, STORM, Library, days_ago, timed
from typer.testing import CliRunner

from podmill.cli import app
from podmill.digest import json_schema
from podmill.errors import PodmillError
from podmill.storage.db import upgrade

from support.cli import run_cli


def invoke(*args: str | Path) -> tuple[int, str, BaseException | None]:
    """Exit code, stdout and the exception of ``podmill ARGS`` run in this process."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.exception


WINDOW = ("--since", "2026-11-16T12:00", "--until", "2026-11-23T12:00")  # NOW - 7d .. NOW


@pytest.fixture
def data_dir(sqlite_library: Library) -> Path:
    sqlite_library.add("Byte Sized", "Tech <1>", days_ago(1), timed([STORM[0], OTHER[0]]))
    sqlite_library.add("World Desk", "World 1", days_ago(2), timed([STORM[1], CABLES[1]]))
    sqlite_library.add("World Desk", "World 2", days_ago(3), timed([OTHER[1]]), processed=False)
    return sqlite_library.settings.data_dir


def test_json_digest_validates_against_the_schema(data_dir: Path) -> None:
    result = run_cli(
        "digest", *WINDOW, "--budget", "7m", "--format", "json", "--data-dir", data_dir
    )
    assert result.code == 0, result.stderr
    doc = json.loads(result.stdout)
    jsonschema.Draft202012Validator(json_schema()).validate(doc)
    assert [e["title"] for e in doc["episodes"]] == ["Tech <1>", "World 1"]
    assert doc["stats"]["not_processed"] == 1
    assert len(doc["stories"]) == 1
    assert doc["listen"]["budget_seconds"] == 420
    assert [i["story_id"] for i in doc["listen"]["items"]] == [doc["stories"][0]["id"]]


def test_markdown_by_default_and_html_to_a_file(data_dir: Path, tmp_path: Path) -> None:
    code, stdout, exc = invoke("digest", *WINDOW, "--feed", "World Desk", "--data-dir", data_dir)
    assert code == 0, exc
    assert stdout.startswith("# Digest 2026-11-16 – 2026-11-23")
    assert "World 1" in stdout and "Tech" not in stdout
    page = tmp_path / "digest.html"
    code, stdout, exc = invoke(
        "digest", *WINDOW, "--format", "html", "-o", page, "--data-dir", data_dir
    )
    assert code == 0, exc
    assert "<html" not in stdout
    assert "Tech &lt;1&gt;" in page.read_text()


def test_an_empty_window_says_so(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from podmill.cli.digest import digest

    digest(since="2026-11-20T11:00", until="2026-11-21T00:00", data_dir=data_dir)
    captured = capsys.readouterr()
    said = " ".join(captured.err.split())
    assert "no processed episodes published between 2026-11-20 11:00 and 2026-11-21 00:00" in said
    assert "1 still being processed" in said
    assert "No new processed episodes in this window." in captured.out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "lastweek"), "--since 'lastweek' is not a time: use e.g. 7d, 24h"),
        (("--budget", "half an hour"), "--budget 'half an hour' is not a duration"),
        (("--budget", "0"), "--budget '0' must be more than 0"),
        (("--feed", "Nope"), "--feed 'Nope': no such feed (feeds: 1 Byte Sized; 2 World Desk)"),
    ],
)
def test_bad_options_are_one_clear_error(
    data_dir: Path, args: tuple[str, ...], message: str
) -> None:
    code, _, exc = invoke("digest", *args, "--data-dir", data_dir)
    assert code == 1
    assert isinstance(exc, PodmillError)  # main() prints it as one line, no traceback
    assert str(exc).startswith(message)


def test_no_data_and_nothing_processed_say_what_to_do(tmp_path: Path) -> None:
    missing = run_cli("digest", "--data-dir", tmp_path / "nowhere")
    assert missing.code == 1
    assert "Traceback" not in missing.stderr
    assert missing.error_line.startswith(
        f"error: no podmill data in {tmp_path / 'nowhere'}: process something first"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    upgrade(f"sqlite:///{empty / 'podmill.db'}")
    code, _, exc = invoke("digest", "--data-dir", empty)
    assert code == 1
    assert str(exc) == f"nothing processed yet in {empty}: run `podmill run FEED_OR_FILE` first"
