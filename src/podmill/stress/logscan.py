"""Error lines in worker log files, limited to what was written during a scenario.

The API cannot show worker logs, so the harness reads the files it is given
(``--worker-log``, or the logs of the workers it spawned itself). Each file's size is
recorded when the scenario starts and only bytes appended after that are read, which
works for JSON and text logs alike; JSON lines that carry a ``ts`` are also checked
against the scenario's time window.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from podmill.stress.records import parse_time

ERROR_LEVELS = ("ERROR", "CRITICAL", "FATAL")
# Text logs: "2026-11-24 04:00:00,123 ERROR podmill.engine…", "ERROR:podmill…", "[ERROR]".
_TEXT_LEVEL = re.compile(r"(?:^|[\s\[|])(ERROR|CRITICAL|FATAL)(?:[\s\]:|]|$)")
_MAX_KEPT = 20


@dataclass(frozen=True)
class LogError:
    path: str
    line: str


def line_error(line: str, since: datetime | None, until: datetime | None) -> bool:
    """Whether one log line reports an error (level ERROR or worse, or a traceback)."""
    stripped = line.strip()
    if not stripped:
        return False
    if stripped.startswith("{"):
        try:
            record = json.loads(stripped)
        except ValueError:
            record = None
        if isinstance(record, dict):
            level = str(record.get("level") or record.get("levelname") or "").upper()
            if level not in ERROR_LEVELS:
                return False
            try:
                when = parse_time(str(record["ts"])) if record.get("ts") else None
            except ValueError:
                when = None
            early = when is not None and since is not None and when < since
            late = when is not None and until is not None and when > until
            return not (early or late)
    return bool(_TEXT_LEVEL.search(stripped)) or stripped.startswith("Traceback (most recent")


class LogWatch:
    """Remembers where each log file ended; :meth:`errors` reads what came after."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = list(paths)
        self.offsets = {p: (p.stat().st_size if p.exists() else 0) for p in self.paths}

    def errors(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> tuple[int, list[LogError]]:
        """``(count, first few)`` error lines written since the watch began."""
        count = 0
        kept: list[LogError] = []
        for path in self.paths:
            if not path.exists():
                continue
            offset = self.offsets.get(path, 0)
            if path.stat().st_size < offset:  # truncated or rotated: read it all
                offset = 0
            with path.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", errors="replace")
            for line in text.splitlines():
                if line_error(line, since, until):
                    count += 1
                    if len(kept) < _MAX_KEPT:
                        kept.append(LogError(str(path), line.strip()[:300]))
        return count, kept
