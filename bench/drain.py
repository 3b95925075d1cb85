"""Model swaps per job with drain order and without it, under a memory budget that holds
Whisper or the LLM but not both.

Six short episodes (the 11 s JFK clip, each copy padded with a different length of
silence so every file is its own episode; short, because the 0.5B LLM on two cores
takes most of the time) run in embedded mode: SQLite, one in-process
worker with the embedded pools (io=2, asr=1, cpu=1, llm=1), real models — Whisper for
``transcribe``, MiniLM for embeddings, and the local Qwen2.5 0.5B GGUF for the topic
tree (``topics.backend = "llm"``, ``llm.backend = "local"``, extra ``llm-local``). The
process arbiter's ``cpu`` budget is set between "the LLM and MiniLM" and "Whisper and
the LLM", so every time the worker turns from audio to LLM work or back, one model has
to leave.

The same six episodes run in a fresh process and data directory per order: drain order
(``order=auto``, the default for a worker with both an asr and an llm pool), FIFO with
the arbiter's default (a load waits up to 60 s for room, then goes over budget), and
``fifo-strict``: FIFO with an arbiter that never goes over budget (as on a GPU, where
over budget means out of memory). Prints, per order: Whisper, LLM and MiniLM loads, evictions,
loads that went over budget, seconds waited for room, model swaps per job (loads of
Whisper and the LLM after their first, per job) and wall time.

    python bench/drain.py [--episodes 6] [--asr-model tiny.en] [--asr-slots 1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIPS = [ROOT / "src/podmill/demo/jfk.flac"]


def make_episodes(folder: Path, count: int) -> list[Path]:
    """``count`` distinct audio files: the clips in turn, each with its own silence pad."""
    paths = []
    for i in range(count):
        clip = CLIPS[i % len(CLIPS)]
        out = folder / f"episode-{i + 1}.wav"
        subprocess.run(
            [
                *("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(clip)),
                *("-af", f"apad=pad_dur={0.25 * (i + 1)}", "-ar", "16000", "-ac", "1", str(out)),
            ],
            check=True,
        )
        paths.append(out)
    return paths


def run_one(
    order: str, audio: list[str], data_dir: str, asr_model: str, asr_slots: int
) -> dict[str, object]:
    """In this process: the episodes through the embedded engine with ``order``
    (``fifo-strict``: FIFO with an arbiter that never loads over budget)."""
    strict = order.endswith("-strict")
    order = order.removesuffix("-strict")
    from podmill.engine.runner import Runner
    from podmill.feeds.sources import resolve
    from podmill.ml import asr, embed, llm
    from podmill.ml.arbiter import process_arbiter
    from podmill.settings import Settings

    settings = Settings(
        data_dir=Path(data_dir),
        asr={"model": asr_model},
        topics={"backend": "llm"},
        llm={"backend": "local"},
    )
    arbiter = process_arbiter()
    whisper = asr.model_name(asr.resolve_model(asr_model), settings.asr)
    minilm = embed.model_name()
    qwen = llm.local_model_name(llm.gguf_path(settings.llm), settings.llm)
    size = {name: arbiter.estimate(name) for name in (whisper, minilm, qwen)}
    fits = max(size[qwen] + size[minilm], size[whisper] + size[minilm])
    too_much = size[whisper] + size[qwen]
    if fits >= too_much:
        raise SystemExit(f"no budget separates the models: sizes {size}")
    arbiter.budgets = {"cpu": (fits + too_much) // 2}
    if strict:  # never load over budget: wait for room however long it takes
        arbiter.wait_seconds = 24 * 3600.0
    episodes = []
    for path in audio:
        episodes.extend(resolve(path, settings).episodes)
    started = time.perf_counter()
    pools = {"io": 2, "asr": asr_slots, "cpu": 1, "llm": 1}
    runner = Runner(settings, order=order, pools=pools)  # type: ignore[arg-type]
    results = runner.run_many(episodes)
    seconds = time.perf_counter() - started
    jobs = [runner.store.job(r.job_id) for r in results if r.job_id is not None]
    done_after = sorted(
        (job["finished_at"] - job["created_at"]).total_seconds() for job in jobs if job
    )
    failed = [r.status for r in results if r.status != "done"]
    if failed:
        raise SystemExit(f"{order}: {len(failed)} episode(s) did not finish: {failed}")
    stats = arbiter.stats
    loads = stats.loads_by_model
    swaps = max(0, loads.get(whisper, 0) - 1) + max(0, loads.get(qwen, 0) - 1)
    return {
        "order": order + ("-strict" if strict else ""),
        "jobs": len(results),
        "budget_mb": arbiter.budgets["cpu"] >> 20,
        "sizes_mb": {name.split(":")[0]: n >> 20 for name, n in size.items()},
        "whisper_loads": loads.get(whisper, 0),
        "llm_loads": loads.get(qwen, 0),
        "minilm_loads": loads.get(minilm, 0),
        "evictions": stats.evictions,
        "over_budget": stats.over_budget,
        "waited_s": round(stats.wait_seconds, 1),
        "swaps": swaps,
        "swaps_per_job": swaps / len(results),
        "seconds": seconds,
        "first_done_s": done_after[0],
        "mean_done_s": sum(done_after) / len(done_after),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--asr-model", default="tiny.en", choices=["tiny.en", "base"])
    parser.add_argument("--orders", nargs="+", default=["drain", "fifo", "fifo-strict"])
    parser.add_argument("--asr-slots", type=int, default=1, help="slots of the asr pool")
    parser.add_argument("--one", nargs=3, metavar=("ORDER", "DATA_DIR", "AUDIO_JSON"))
    args = parser.parse_args()
    if args.one:  # the child process: one order, fresh arbiter
        order, data_dir, audio = args.one
        print(
            json.dumps(run_one(order, json.loads(audio), data_dir, args.asr_model, args.asr_slots))
        )
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        audio = [str(p) for p in make_episodes(Path(tmp), args.episodes)]
        for order in args.orders:
            data_dir = Path(tmp) / f"data-{order}"
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--asr-model",
                    args.asr_model,
                    "--asr-slots",
                    str(args.asr_slots),
                    "--one",
                    order,
                    str(data_dir),
                    json.dumps(audio),
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = rows[0]
    print(
        f"{first['jobs']} episodes, Whisper {args.asr_model} (asr pool {args.asr_slots}), "
        "topics by the local LLM; "
        f"cpu budget {first['budget_mb']} MB, model estimates {first['sizes_mb']} MB"
    )
    header = (
        *("order", "whisper", "llm", "minilm", "evict", "over", "waited s", "swaps/job"),
        *("1st done", "mean done", "total s"),
    )
    print("".join(f"{h:>11}" for h in header))
    for r in rows:
        print(
            f"{r['order']:>11}{r['whisper_loads']:>11}{r['llm_loads']:>11}{r['minilm_loads']:>11}"
            f"{r['evictions']:>11}{r['over_budget']:>11}{r['waited_s']:>11}"
            f"{r['swaps_per_job']:>11.2f}{r['first_done_s']:>11.1f}{r['mean_done_s']:>11.1f}"
            f"{r['seconds']:>11.1f}"
        )


if __name__ == "__main__":
    main()
