"""Every ``podmill …`` command the README and docs/ show is one the real CLI accepts.

The commands are read from the Markdown (fenced shell and plain blocks, and inline code
spans), so a doc that gains a command is checked without editing this file. Each is
parsed in-process by the command's own Click parser, walked from the Typer app: the
command path must exist and every flag must be one that command has, with a value where
it takes one. A few are also run as ``podmill … --help`` in a subprocess, as a user would.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from podmill.cli import app

from support.cli import run_cli
from support.paths import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# the info strings of fenced blocks that hold shell lines (a plain ``` block is a shell
# session or a listing: only lines that run podmill count there)
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console", "text"}
_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")
_INLINE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
_PROMPT = re.compile(r"^\s*[$#>] ")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SEPARATORS = {"|", "||", "&&", ";", "&"}
_REDIRECT = re.compile(r"^\d?(>>?|<|>&)")
# the words a synopsis uses for "and more of these"
_ELLIPSIS = {"...", "…"}


@dataclass(frozen=True)
class DocCommand:
    """One ``podmill`` invocation shown in a doc: where, the text, and its words after
    ``podmill``."""

    where: str
    text: str
    words: tuple[str, ...]


def _spans(prose: list[tuple[int, str]]) -> Iterator[tuple[int, str, bool]]:
    """The inline code spans of a run of prose lines (a span may wrap onto the next
    line), each with the line it starts on."""
    text = "\n".join(line for _, line in prose)
    starts = [number for number, _ in prose]
    for match in _INLINE.finditer(text):
        yield starts[text.count("\n", 0, match.start())], match.group(1), False


def _lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, shell text, from a fenced block) for every line that may hold a
    command: fenced shell/plain block lines (continuations joined, prompts dropped; in a
    ``console`` block only prompted lines) and inline code spans elsewhere."""
    fence: str | None = None
    info = ""
    pending: tuple[int, str] | None = None
    prose: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        opened = _FENCE.match(line)
        if fence is None:
            if opened:
                yield from _spans(prose)
                prose = []
                fence, info = opened.group(1), opened.group(2).lower()
            else:
                prose.append((number, line))
            continue
        if line.strip().startswith(fence) and not line.strip()[len(fence) :].strip():
            fence = None
            continue
        if info not in SHELL_BLOCKS:
            continue
        if pending is not None:
            start, text = pending
            line = text + " " + line.strip()
        else:
            start = number
            prompted = _PROMPT.match(line)
            if info == "console" and not prompted:
                continue  # a console block's output lines
            if prompted:
                line = line[prompted.end() :]
        if line.rstrip().endswith("\\"):
            pending = (start, line.rstrip()[:-1])
            continue
        pending = None
        yield start, line, True
    yield from _spans(prose)


def _segments(tokens: list[str]) -> Iterator[list[str]]:
    """The simple commands of a shell line: split at ``|``, ``&&``, ``;``…, without
    redirections."""
    current: list[str] = []
    skip_target = False
    for token in tokens:
        if skip_target:
            skip_target = False
            continue
        if token in _SEPARATORS:
            yield current
            current = []
            continue
        if _REDIRECT.match(token):
            skip_target = token.rstrip("&0123456789") in {">", ">>", "<", "&>"}
            continue
        if token.endswith(";") and token != ";":
            current.append(token[:-1])
            yield current
            current = []
            continue
        current.append(token)
    yield current


def _podmill_words(segment: list[str]) -> list[str] | None:
    """The words after ``podmill`` when ``segment`` runs it: as its program (after
    ``VAR=value`` prefixes; ``.venv/bin/podmill`` too) or as the command of ``docker
    compose exec [-T] SERVICE`` / ``docker run … IMAGE``; else None."""
    words = list(segment)
    while words and _ASSIGNMENT.match(words[0]):
        words.pop(0)
    if not words:
        return None
    if words[0] == "docker" and "exec" in words:
        rest = words[words.index("exec") + 1 :]
        while rest and rest[0].startswith("-"):
            rest.pop(0)
        words = rest[1:]  # past the service name
    if words and (words[0] == "podmill" or words[0].endswith("bin/podmill")):
        return words[1:]
    return None


def doc_commands() -> list[DocCommand]:
    """Every podmill command shown in README.md and docs/*.md."""
    found: list[DocCommand] = []
    for path in DOCS:
        for number, line, fenced in _lines(path):
            if not re.search(r"(^|[\s/])podmill(\s|$)", line):
                continue
            where = f"{path.relative_to(ROOT)}:{number}"
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as exc:
                if fenced:  # a shell line a user cannot paste
                    found.append(DocCommand(where, line.strip(), ("<unparseable>", str(exc))))
                continue
            # an inline span is one command (or a message that mentions podmill)
            segments = list(_segments(tokens)) if fenced else [next(_segments(tokens))]
            for segment in segments:
                words = _podmill_words(segment)
                if words is not None:
                    found.append(DocCommand(where, " ".join(["podmill", *words]), tuple(words)))
    return found


ROOT_COMMAND = typer.main.get_command(app)


def _synopsis_word(word: str) -> str | None:
    """A word as a user types it: ``[--json]`` is the optional ``--json``; ``[`` / ``]``
    on their own are synopsis marks, not words."""
    return word.strip("[]") or None


def problems(command: DocCommand) -> list[str]:
    """What the real CLI would refuse in ``command`` (empty: it parses)."""
    if command.words[:1] == ("<unparseable>",):
        return [f"not a shell line: {command.words[1]}"]
    words = [w for w in map(_synopsis_word, command.words) if w is not None]
    if any("|" in w and not w.startswith("-") for w in words[:3]):
        return ["'a|b' is a synopsis, not a command: show one command per line"]
    node = ROOT_COMMAND
    path = ["podmill"]
    while hasattr(node, "commands") and words and not words[0].startswith("-"):
        name = words.pop(0)
        if name in _ELLIPSIS:
            return []  # "podmill …": any command
        sub = node.commands.get(name)
        if sub is None:
            known = ", ".join(sorted(node.commands))
            return [f"no command {' '.join([*path, name])!r} (it has: {known})"]
        node, path = sub, [*path, name]
    if "--help" in words:
        return []
    context = node.context_class(node, info_name=" ".join(path))
    try:
        _, extra, _ = node.make_parser(context).parse_args(args=list(words))
    except Exception as exc:  # NoSuchOption, BadOptionUsage (typer's vendored click)
        format_message = getattr(exc, "format_message", None)
        message = format_message() if format_message is not None else str(exc)
        return [f"{' '.join(path)}: {message}"]
    extra = [w for w in extra if w not in _ELLIPSIS]  # "FEED ..." repeats FEED
    if extra:
        return [f"{' '.join(path)} takes no more arguments, got {' '.join(extra)!r}"]
    return []


COMMANDS = doc_commands()


def test_the_docs_show_commands() -> None:
    """The extraction finds what the README shows (so an empty list cannot pass)."""
    shown = {c.text for c in COMMANDS}
    assert "podmill db upgrade" in shown
    assert "podmill jobs list --json" in shown  # from 'podmill jobs list --json; podmill …'
    assert "podmill dead list" in shown
    assert any(c.text.startswith("podmill config show") for c in COMMANDS)  # VAR=… podmill
    assert "podmill demo" in shown  # .venv/bin/podmill demo, after &&
    assert "podmill keys create ops" in shown  # docker compose exec api podmill …
    assert len(COMMANDS) > 60, len(COMMANDS)


def test_every_command_in_the_docs_parses_with_the_real_cli() -> None:
    broken = [f"{c.where}: {c.text}\n    {problem}" for c in COMMANDS for problem in problems(c)]
    assert not broken, "commands in the docs the CLI refuses:\n" + "\n".join(broken)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("podmill jobs lst", "no command 'podmill jobs lst'"),
        ("podmill search tax --unknown-flag", "No such option: --unknown-flag"),
        ("podmill search tax --limit", "requires an argument"),
        ("podmill jobs --json", "No such option: --json"),
        ("podmill jobs list|show ID", "synopsis"),
        ("podmill db upgrade extra", "takes no more arguments"),
    ],
)
def test_a_broken_command_is_reported(text: str, expected: str) -> None:
    """The checker refuses what the CLI refuses (so the docs test can fail)."""
    words = tuple(shlex.split(text)[1:])
    found = problems(DocCommand("doc.md:1", text, words))
    assert found and expected in found[0], found


def test_shell_lines_are_read_as_a_shell_would(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(
        "Run `podmill run FILE` first, then `podmill search QUERY\n"
        "[--json]`.\n"
        "```console\n"
        "$ PODMILL_DB=sqlite:///x.db podmill jobs list \\\n"
        "    --json | jq .  # all jobs\n"
        "podmill output line, not a command\n"
        "```\n"
        "```python\n"
        "podmill = 1\n"
        "```\n",
        encoding="utf-8",
    )
    lines = list(_lines(doc))
    assert lines == [
        (1, "podmill run FILE", False),
        (1, "podmill search QUERY\n[--json]", False),
        (4, "PODMILL_DB=sqlite:///x.db podmill jobs list  --json | jq .  # all jobs", True),
    ]
    tokens = shlex.split(lines[2][1], comments=True)
    assert [_podmill_words(s) for s in _segments(tokens)] == [["jobs", "list", "--json"], None]


@pytest.mark.parametrize("words", [("search",), ("jobs", "list"), ("digest",), ("stress", "ab")])
def test_documented_commands_answer_help_in_a_subprocess(words: tuple[str, ...]) -> None:
    assert any(c.words[: len(words)] == words for c in COMMANDS), words
    result = run_cli(*words, "--help")
    assert result.code == 0, result.stderr
    assert "Usage:" in result.stdout and "--db" in result.stdout
