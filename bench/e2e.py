"""End to end: the bundled demo through every stage; per-stage seconds and throughput.

Runs the demo twice in one process, a cold run in a fresh data directory and a warm
re-run that must skip every stage (artifacts reused), and prints both side by side.

    python bench/e2e.py
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from importlib import resources
from pathlib import Path

from podmill.engine.runner import Runner
from podmill.feeds.sources import resolve
from podmill.pipeline.dag import STAGE_NAMES
from podmill.settings import Settings


def run_once(settings: Settings, feed: Path) -> tuple[float, list]:
    resolved = resolve(str(feed), settings)
    started = time.perf_counter()
    results = Runner(settings).run_many(resolved.episodes, feed=resolved.feed)
    return time.perf_counter() - started, results


def main() -> None:
    with (
        tempfile.TemporaryDirectory() as tmp,
        resources.as_file(resources.files("podmill") / "demo" / "feed.xml") as feed,
    ):
        settings = Settings(data_dir=Path(tmp))
        cold_wall, cold = run_once(settings, feed)
        warm_wall, _ = run_once(settings, feed)
    audio = sum(r.audio_seconds for r in cold)
    per_stage: dict[str, float] = defaultdict(float)
    for r in cold:
        for stage, seconds in r.timings.items():
            per_stage[stage] += seconds
    print(f"episodes={len(cold)} done={sum(r.status == 'done' for r in cold)}")
    print(f"audio_seconds={audio:.1f}")
    for stage in STAGE_NAMES:
        print(f"stage_seconds.{stage}={per_stage.get(stage, 0.0):.3f}")
    print(f"cold_wall_seconds={cold_wall:.2f} warm_wall_seconds={warm_wall:.2f}")
    print(f"audio_seconds_per_wall_second={audio / cold_wall:.2f}")
    print(f"rerun_speedup={cold_wall / warm_wall:.1f}")


if __name__ == "__main__":
    main()
