"""A worker process: claims steps for its pools, runs them in threads, keeps leases alive.

One main loop claims; each claimed step runs in its own thread; a heartbeat thread
extends the leases of running steps and reaps the steps of dead workers; on Postgres a
listener thread turns ``NOTIFY podmill_steps`` into an immediate claim attempt (SQLite,
and Postgres between notifications, poll). The database is the truth: a wake-up only
triggers a claim.

Concurrency is bounded at claim time: a pool (a profile such as ``asr``, or one stage)
claims at most as many steps as it has free slots, so a worker never holds a lease on a
step it cannot start.

Shutdown (``stop()``, called by the CLI's SIGTERM/SIGINT handlers): stop claiming, let
running steps finish for up to ``grace`` seconds, release the rest to ``pending``
(fenced, keeping their attempt count), mark the worker ``stopped`` and return.

A full disk (:class:`~podmill.errors.DiskFullError`) is not a step's fault: the step is
released, the worker reports itself degraded (:attr:`Worker.degraded`, its health) and
claims nothing for a while (``disk_full_pause``, doubling up to 5 minutes), so other
workers can take the step; the first step that finishes afterwards clears it.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from podmill.engine.claim import ClaimedStep
from podmill.engine.execute import Outcome, StepHooks, StepRunner, log_step, run_claimed
from podmill.engine.store import StepStore
from podmill.errors import DiskFullError, PodmillError
from podmill.errors import first_line as _first_line
from podmill.obs.metrics import recorder
from podmill.pipeline.dag import PROFILES, STAGE_NAMES, STAGES
from podmill.retry import Backoff
from podmill.settings import Settings
from podmill.storage.db import DATABASE_ERRORS as _DB_ERRORS

log = logging.getLogger(__name__)

# The main loop re-checks for a stop request at least this often (signal handlers only
# set a flag: taking a lock inside a handler could deadlock with the interrupted code).
_TICK = 0.1
_DISK_FULL_PAUSE_MAX = 300.0
# Waiting for a database that went away (the claim loop, LISTEN): 0.5 s doubling to 5 s.
_DB_RETRY = Backoff(0.5, cap=5.0)


def default_pools() -> dict[str, int]:
    """Every profile, sized for one machine: io=4, asr=1, cpu=cores-1, llm=1."""
    return {"io": 4, "asr": 1, "cpu": max(1, (os.cpu_count() or 1) - 1), "llm": 1}


def make_worker_id() -> str:
    """``host:pid:random`` — unique per process, readable in ``podmill jobs show``."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(eq=False)
class Pool:
    """A bounded set of slots serving some stages."""

    name: str
    size: int
    stages: tuple[str, ...]
    profiles: tuple[str, ...] = PROFILES  # a step's profile must be one of these
    running: set[int] = field(default_factory=set)

    @property
    def free(self) -> int:
        return self.size - len(self.running)


def resolve_pools(pools: Mapping[str, int]) -> list[Pool]:
    """Pools named by profile (the steps of that profile) or by stage (that stage's steps,
    whatever their profile).

    A step's profile is its stage's, except that a job whose topics use the LLM runs its
    tree stages in ``llm`` (:func:`podmill.pipeline.dag.step_profiles`), so the ``llm``
    pool serves the tree stages' steps of such jobs and the ``cpu`` pool those of the
    others. A stage with a pool of its own is not also served by a profile's pool.
    """
    known_profiles = set(PROFILES) | {s.profile for s in STAGES}
    own = {name for name in pools if name in STAGE_NAMES}
    resolved: list[Pool] = []
    for name, size in pools.items():
        if size < 1:
            raise ValueError(f"pool {name}={size}: a pool needs at least 1 slot")
        profiles = PROFILES
        if name in STAGE_NAMES:
            stages: tuple[str, ...] = (name,)
        elif name in known_profiles:
            stages = tuple(
                s.name
                for s in STAGES
                if (s.profile == name or (name == "llm" and s.tree)) and s.name not in own
            )
            profiles = (name,)
        else:
            raise ValueError(
                f"unknown pool {name!r}: name a profile ({', '.join(sorted(known_profiles))}) "
                f"or a stage ({', '.join(STAGE_NAMES)})"
            )
        resolved.append(Pool(name, size, stages, profiles))
    return resolved


class Completions:
    """Records the completions of steps that finish together in one transaction.

    A step thread calls :meth:`complete` and waits for its own answer. One thread writes:
    it takes every completion queued so far and records them with
    :meth:`Store.complete_many` (each fenced on its own lease), so under load the cost of
    a transaction is shared, and with one completion at a time nothing waits for a batch
    to fill. A database error reaches every waiter of that batch, whose caller retries.
    Once closed, completions are written directly.
    """

    MAX_BATCH = 256

    def __init__(self, store: StepStore) -> None:
        self.store = store
        self._queue: queue.SimpleQueue[tuple[int, str, float | None, Future[bool]] | None] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._closed = True
        self._thread: threading.Thread | None = None
        self.batches = 0  # transactions written, for tests and benchmarks

    def start(self) -> None:
        with self._lock:
            self._closed = False
        self._thread = threading.Thread(target=self._loop, name="completions", daemon=True)
        self._thread.start()

    def complete(self, step_id: int, lease_token: str, *, duration: float | None = None) -> bool:
        future: Future[bool] = Future()
        with self._lock:
            queued = not self._closed
            if queued:
                self._queue.put((step_id, lease_token, duration, future))
        if queued:
            return future.result()
        return bool(self.store.complete(step_id, lease_token, duration=duration))

    def close(self) -> None:
        """Write what is queued, then stop the writer thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write(batch)
            if stop:
                return

    def _write(self, batch: list[tuple[int, str, float | None, Future[bool]]]) -> None:
        try:
            answer = self.store.complete_many([(i, token, d) for i, token, d, _ in batch])
        except BaseException as exc:
            for *_, future in batch:
                future.set_exception(exc)
            return
        with self._lock:
            self.batches += 1
        for step_id, _, _, future in batch:
            future.set_result(answer[step_id])


class Worker:
    """Claims and runs steps from ``store`` until :meth:`stop` (or ``max_idle``).

    ``run_step(claimed)`` runs one step and raises on failure; by default it is
    :func:`podmill.engine.execute.execute_step` with ``settings_base``. ``hooks`` (test
    hooks around every step) default to the ones the environment names, read here, once
    (:class:`~podmill.engine.execute.StepHooks`).
    """

    def __init__(
        self,
        store: StepStore,
        pools: Mapping[str, int] | None = None,
        grace: float = 30.0,
        poll_interval: float | None = None,
        run_step: StepRunner | None = None,
        *,
        worker_id: str | None = None,
        max_idle: float | None = None,
        order: Literal["auto", "fifo", "drain"] = "auto",
        settings_base: Settings | None = None,
        disk_full_pause: float = 30.0,
        on_disk_full: Callable[[DiskFullError], None] | None = None,
        hooks: StepHooks | None = None,
    ) -> None:
        self.store = store
        self.hooks = hooks if hooks is not None else StepHooks.from_env()
        self.pool_sizes = dict(pools or default_pools())
        self.pools = resolve_pools(self.pool_sizes)
        self.grace = grace
        self.poll_interval = poll_interval or (1.0 if store.dialect == "postgresql" else 0.2)
        self.run_step = run_step
        self.worker_id = worker_id or make_worker_id()
        self.max_idle = max_idle
        by_name = {pool.name: pool for pool in self.pools}
        # One device, two model families: a worker with both an asr and an llm pool
        # drains (see _claim_round) unless told otherwise.
        self._device: tuple[Pool, Pool] | None = None
        if "asr" in by_name and "llm" in by_name and order in ("auto", "drain"):
            self._device = (by_name["asr"], by_name["llm"])
        self.order: Literal["fifo", "drain"] = (
            "drain" if order == "drain" or self._device is not None else "fifo"
        )
        self.settings_base = settings_base
        self.outcomes: dict[str, int] = {"done": 0, "retry": 0, "dead": 0, "lost": 0}
        self.released = 0
        # Disk full: why this worker is degraded (None when it is not), and until when
        # (monotonic) it claims nothing. ``on_disk_full`` replaces the log line (the
        # embedded run reports it as its own error).
        self.degraded: str | None = None
        self.disk_full_pause = disk_full_pause
        self.on_disk_full = on_disk_full
        self._disk_pause = Backoff(disk_full_pause, cap=_DISK_FULL_PAUSE_MAX, jitter=False)
        self._disk_fulls = 0  # in a row, without a step finishing in between
        self._claims_paused_until = 0.0
        self.last_heartbeat: float | None = None  # unix time of the last one written

        self._stop_requests = 0  # written by signal handlers: a plain int, no locks
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._running: dict[int, ClaimedStep] = {}
        self._wake = threading.Event()
        # Which pools the next claim round asks for (see _claim_round): stages named by
        # NOTIFY, pools with a freed slot, pools whose last claim came back full.
        self._hinted: set[str] = set()
        self._full_scan = True
        self._threads_stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._completions = Completions(store)

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Ask the worker to shut down gracefully; a second call skips the grace period.

        Safe to call from a signal handler.
        """
        self._stop_requests += 1

    @property
    def stopping(self) -> bool:
        return self._stop_requests > 0

    def running_ids(self) -> list[int]:
        with self._lock:
            return list(self._running)

    def in_flight(self) -> list[dict[str, Any]]:
        """The steps running now: step id, job id, stage, attempt (for health)."""
        with self._lock:
            steps = list(self._running.values())
        return [
            {"step_id": s.step_id, "job_id": s.job_id, "stage": s.stage, "attempt": s.attempt}
            for s in steps
        ]

    # -------------------------------------------------------------------- loop

    def run(self) -> None:
        """Register, claim and run steps until stopped, then shut down gracefully."""
        self.store.register_worker(
            self.worker_id, socket.gethostname(), os.getpid(), self.pool_sizes
        )
        self._heartbeat_written()
        self._completions.start()
        self._start_thread(self._heartbeat_loop, "heartbeat")
        if self.store.dialect == "postgresql":
            self._start_thread(self._listen_loop, "listen")
        log.info("worker %s started, pools %s", self.worker_id, self.pool_sizes)
        try:
            self._claim_loop()
        finally:
            self._shutdown()

    def _claim_loop(self) -> None:
        failures = 0  # claim rounds failed in a row
        last_busy = time.monotonic()
        while not self.stopping:
            self._wake.clear()
            try:
                claimed = self._claim_round()
            except _DB_ERRORS as exc:
                failures += 1
                delay = _DB_RETRY.delay(failures)
                log.warning("database unavailable (%s); retrying in %.1fs", _first_line(exc), delay)
                self._sleep(delay)
                continue
            failures = 0
            if claimed or self.running_ids():
                last_busy = time.monotonic()
            elif self.max_idle is not None and time.monotonic() - last_busy >= self.max_idle:
                log.info("worker %s idle for %.1fs; stopping", self.worker_id, self.max_idle)
                return
            if not claimed and not self._sleep(self.poll_interval, wake=True):
                with self._lock:
                    self._full_scan = True  # the poll: ask every pool

    def _claim_round(self) -> int:
        """Fill free slots, in one transaction; returns how many steps were claimed.

        Asks only the pools that may have work: every pool on a poll (and the first
        round); otherwise the pools serving stages that NOTIFY said became ready, pools
        that just freed a slot, and pools whose last claim came back full (there may be
        more). With several workers on one database, every wake-up reaches all of them,
        so asking every pool each time would multiply the selects.

        Drain order on a worker with both an asr and an llm pool (one device, two model
        families): the device runs one family at a time, later stages first. No new
        audio starts while LLM steps run, and none while LLM steps are waiting: the llm
        pool is asked first and the asr pool only when that claim came back empty; no
        LLM step starts while audio is being transcribed. So a job's LLM stages follow
        its transcription without the models trading places in between.
        """
        if self.stopping or time.monotonic() < self._claims_paused_until:
            return 0
        with self._lock:
            full, hinted = self._full_scan, self._hinted
            self._full_scan, self._hinted = False, set()
            hungry = [
                (pool, pool.free)
                for pool in self.pools
                if pool.free > 0 and pool.stages and (full or hinted.intersection(pool.stages))
            ]
            held_back: list[tuple[Pool, int]] = []
            if self._device is not None:
                asr, llm = self._device
                if asr.running:
                    hungry = [(p, free) for p, free in hungry if p is not llm]
                elif (
                    any(p is asr for p, _ in hungry)
                    and all(p is not llm for p, _ in hungry)
                    and not llm.running
                ):
                    # before new audio, look for LLM work (a wake-up may not have named it)
                    hungry.append((llm, llm.free))
                if llm.running or any(p is llm for p, _ in hungry):
                    held_back = [(p, free) for p, free in hungry if p is asr]
                    hungry = [(p, free) for p, free in hungry if p is not asr]
        if (
            self._device is not None
            and any(p is self._device[0] for p, _ in hungry)
            and self._device[0].running
        ):
            # Audio is being transcribed and the asr pool has a free slot: start more
            # audio only if no LLM work is waiting (it goes first once the audio is done).
            asr, llm = self._device
            if self.store.has_ready(llm.stages, llm.profiles):
                hungry = [(p, free) for p, free in hungry if p is not asr]
        claimed = self._claim_for(hungry)
        total = sum(claimed.values())
        if held_back:
            llm = self._device[1] if self._device else None
            with self._lock:
                # the llm pool was asked (not busy) and found nothing, and is still idle
                device_free = llm in claimed and claimed[llm] == 0 and not llm.running
            if device_free:
                total += sum(self._claim_for(held_back).values())
            else:
                self._hint(held_back[0][0].stages)  # ask again when the LLM work is done
        return total

    def _claim_for(self, hungry: list[tuple[Pool, int]]) -> dict[Pool, int]:
        """Claim for ``hungry`` pools in one transaction and start the steps; how many
        each pool got."""
        if not hungry:
            return {}
        started = time.perf_counter()
        began = time.time()  # the claim span's window (tracing)
        try:
            answers = self.store.claim_pools(
                self.worker_id,
                [(pool.stages, free, pool.profiles) for pool, free in hungry],
                order=self.order,
            )
        except BaseException:
            with self._lock:
                self._full_scan = True  # nothing was claimed: ask everyone next time
            raise
        # one transaction serves every pool asked: each pool waited that long
        seconds = time.perf_counter() - started
        window = (began, began + seconds)
        metrics = recorder()
        for pool, _ in hungry:
            metrics.claim(pool.name, seconds)
        got: dict[Pool, int] = {}
        for (pool, free), claimed in zip(hungry, answers):
            if len(claimed) == free:
                self._hint(pool.stages)  # it took all it could: there may be more
            for step in claimed:
                self._start_step(pool, step, window)
            got[pool] = len(claimed)
        return got

    def _hint(self, stages: Collection[str]) -> None:
        with self._lock:
            self._hinted.update(stages)

    def _sleep(self, seconds: float, *, wake: bool = False) -> bool:
        """Sleep in short ticks so a stop request (and, if ``wake``, a wake-up) cuts it
        short; ``True`` if a wake-up (or a stop request) ended it."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if wake:
                if self._wake.wait(min(remaining, _TICK)):
                    return True
            else:
                time.sleep(min(remaining, _TICK))
        return True

    # ------------------------------------------------------------------- steps

    def _start_step(
        self, pool: Pool, step: ClaimedStep, claim_window: tuple[float, float] | None = None
    ) -> None:
        with self._lock:
            pool.running.add(step.step_id)
            self._running[step.step_id] = step
        # Daemon threads: a step still running when the grace period ends has been
        # released, and must not keep the process alive.
        threading.Thread(
            target=self._run_step,
            args=(pool, step, claim_window),
            name=f"step-{step.step_id}-{step.stage}",
            daemon=True,
        ).start()

    def _run_step(
        self, pool: Pool, step: ClaimedStep, claim_window: tuple[float, float] | None = None
    ) -> None:
        outcome: Outcome | None = None
        try:
            outcome = run_claimed(
                self.store,
                step,
                self.settings_base,
                worker_id=self.worker_id,
                run_step=self.run_step,
                complete=self._completions.complete,
                hooks=self.hooks,
                claim_window=claim_window,
            )
        except DiskFullError as exc:
            self._disk_full(step, exc)
        except Exception as exc:
            # The outcome could not be recorded: the lease will expire and the reaper
            # will hand the step to another worker. A traceback for bugs only.
            log.error(
                "step %s (%s): could not record its outcome: %s",
                step.step_id,
                step.stage,
                _first_line(exc),
                exc_info=exc if not isinstance(exc, PodmillError) else None,
            )
        finally:
            if self.store.dialect == "postgresql":
                # a slot is free: ask this pool again; NOTIFY names the successors' stages
                self._hint(pool.stages)
            else:
                with self._lock:  # no NOTIFY: its successors may be in any pool
                    self._full_scan = True
            with self._changed:
                pool.running.discard(step.step_id)
                self._running.pop(step.step_id, None)
                if outcome is not None:
                    self.outcomes[outcome] += 1
                if outcome == "done" and self.degraded is not None:
                    log.warning("worker %s: a step finished; no longer degraded", self.worker_id)
                    self.degraded, self._disk_fulls = None, 0
                self._changed.notify_all()
            self._wake.set()

    def _disk_full(self, step: ClaimedStep, exc: DiskFullError) -> None:
        """Degraded: claim nothing for a pause (doubling while the disk stays full)."""
        with self._lock:
            if exc.released:
                self.released += 1
            self.degraded = str(exc)
            self._disk_fulls += 1
            pause = self._disk_pause.delay(self._disk_fulls)
            self._claims_paused_until = time.monotonic() + pause
        if exc.released:
            recorder().step_released(step.stage)
        if self.on_disk_full is not None:
            self.on_disk_full(exc)
        else:
            log.error(
                "%s; step %s %s; claiming nothing for %.0fs (health: degraded)",
                exc,
                step.step_id,
                "released" if exc.released else "not released (its lease will expire)",
                pause,
            )

    # --------------------------------------------------------- background threads

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"{name}-{self.worker_id}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _heartbeat_loop(self) -> None:
        """Extend this worker's leases and reap dead workers' steps, every lease/3.

        Its own thread, so a stage holding the CPU (or the GIL in short bursts) cannot
        make this worker's leases expire.
        """
        interval = max(0.05, self.store.lease_seconds / 3)
        self._beat(reap=True)
        while not self._threads_stop.wait(interval):
            self._beat(reap=True)

    def _beat(self, *, reap: bool) -> None:
        try:
            self.store.heartbeat(self.worker_id, self.running_ids())
            self._heartbeat_written()
            if reap:
                reaped = self.store.reap(self.worker_id)
                if reaped:
                    log.warning("reaped %d step(s) of dead workers: %s", len(reaped), reaped)
                    with self._lock:
                        self._full_scan = True
                    self._wake.set()
        except Exception as exc:  # the database may be restarting; try again next beat
            log.warning("heartbeat failed: %s", _first_line(exc))

    def _heartbeat_written(self) -> None:
        self.last_heartbeat = time.time()
        recorder().heartbeat(self.last_heartbeat)

    def _listen_loop(self) -> None:
        """Postgres: wake the claim loop on NOTIFY; reconnect with backoff when it drops."""
        failures = 0  # connections lost in a row
        while not self._threads_stop.is_set():
            try:
                with self.store.listen() as waiter:
                    failures = 0
                    while not self._threads_stop.is_set():
                        if waiter.wait(1.0):
                            self._hint(getattr(waiter, "ready_stages", STAGE_NAMES))
                            self._wake.set()
            except Exception as exc:
                log.warning("LISTEN lost (%s); polling until it is back", _first_line(exc))
                failures += 1
                self._threads_stop.wait(_DB_RETRY.delay(failures))

    # ---------------------------------------------------------------- shutdown

    def _shutdown(self) -> None:
        self._set_status("stopping")
        deadline = time.monotonic() + self.grace
        with self._changed:
            while self._running and self._stop_requests < 2:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, _TICK))
            leftover = list(self._running.values())
        for step in leftover:
            self._release(step)
        self._completions.close()
        self._threads_stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._set_status("stopped")
        log.info("worker %s stopped: %s, released %d", self.worker_id, self.outcomes, self.released)

    def _release(self, step: ClaimedStep) -> None:
        try:
            # fenced: if the step finished (or was reaped) meanwhile, this changes nothing
            if self.store.release(step.step_id, step.lease_token):
                self.released += 1
                recorder().step_released(step.stage)
                log_step(step, "released", why=" at shutdown", worker_id=self.worker_id)
        except Exception as exc:
            log.warning(
                "could not release step %s (%s): %s; it returns to pending when its lease expires",
                step.step_id,
                step.stage,
                _first_line(exc),
            )

    def _set_status(self, status: str) -> None:
        try:
            self.store.set_worker_status(self.worker_id, status)
        except Exception as exc:
            log.warning("could not mark worker %s %s: %s", self.worker_id, status, _first_line(exc))
