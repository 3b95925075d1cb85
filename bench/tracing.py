"""What tracing costs: steps/s of the engine with tracing off and on, in the same run.

The real stage graph (10 steps per job, with the join) with no-op stage functions, run
in this process through the engine's real path (``Store.claim_pools`` →
``run_claimed``: the step span, queue wait, claim, run and the fenced completion) on a
SQLite store, one claimer filling 8 slots at a time. Rounds alternate off/on (each on a
fresh database) so drift on a shared machine hits both; "on" exports every span over
OTLP/HTTP to a local receiver that reads and counts the requests (the BatchSpanProcessor
thread runs as in production). Prints steps/s per round and the medians.

    python bench/tracing.py [--jobs 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from podmill.engine.execute import run_claimed
from podmill.engine.store import Store
from podmill.obs import tracing
from podmill.pipeline.dag import PROFILES, STAGE_NAMES
from podmill.storage import db


class Receiver:
    """Accepts ``POST /v1/traces`` and counts requests and bytes."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests += 1
                outer.bytes += len(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run_round(folder: Path, jobs: int, traced: bool) -> float:
    """Steps/s for ``jobs`` jobs drained in this process."""
    url = f"sqlite:///{folder / ('on' if traced else 'off')}-{time.monotonic_ns()}.db"
    db.upgrade(url)
    store = Store(url)
    try:
        for i in range(jobs):
            with tracing.span("submit"):  # what submit_episode does: steps join its trace
                trace = tracing.current_traceparent()
                payload = {"episode": {"episode_key": f"ep-{i}", "title": "t"}, "settings": {}}
                if trace is not None:
                    payload[tracing.PAYLOAD_KEY] = {"traceparent": trace}
                store.submit(f"ep-{i}", "fp", payload)
        steps = 0
        started = time.perf_counter()
        while True:
            began = time.time()
            [claimed] = store.claim_pools("bench", [(STAGE_NAMES, 8, PROFILES)])
            window = (began, time.time())
            if not claimed:
                break
            for step in claimed:
                outcome = run_claimed(store, step, run_step=lambda s: [], claim_window=window)
                assert outcome == "done", outcome
                steps += 1
        seconds = time.perf_counter() - started
    finally:
        store.engine.dispose()
    assert steps == jobs * len(STAGE_NAMES), steps
    return steps / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    receiver = Receiver()
    results: dict[str, list[float]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory(prefix="podmill-bench-tracing-") as tmp:
        for n in range(args.rounds):
            for mode in ("off", "on"):
                if mode == "on":
                    tracing.configure(True, endpoint=receiver.endpoint, service_name="bench")
                rate = run_round(Path(tmp), args.jobs, mode == "on")
                if mode == "on":
                    tracing.shutdown()  # flushes; off again for the next round
                results[mode].append(rate)
                print(f"round {n + 1} tracing {mode:>3}: {rate:8.1f} steps/s", flush=True)
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    print(
        f"median: off {off:.1f} steps/s, on {on:.1f} steps/s "
        f"({(on / off - 1) * 100:+.1f}%); {receiver.requests} export requests, "
        f"{receiver.bytes / 1e6:.2f} MB of spans"
    )
    if receiver.requests == 0:
        sys.exit("tracing on exported nothing: the comparison is void")


if __name__ == "__main__":
    main()
