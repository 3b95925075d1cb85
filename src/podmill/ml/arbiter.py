"""The model arbiter: which models are resident in this process, and for how long.

One per process (:func:`process_arbiter`). Backends register a :class:`ModelSpec` (how
to load it, roughly how many bytes it holds, on which device) and use a model inside
``with arbiter.acquire(name) as model:``. The arbiter guarantees:

- **load once**: a model is loaded at most once while resident, however many threads
  ask for it at the same time (they wait for the one load);
- **a memory budget per device** (default 70% of RAM; of VRAM for ``cuda``): before a
  load that would not fit, idle models are unloaded, least recently used first. Models
  in use are never unloaded; if only they stand in the way, the load waits for them up
  to ``wait_seconds`` and then goes ahead over budget (logged and counted), because a
  worker that waits forever is worse than one that uses a little more memory;
- **idle unload**: :meth:`Arbiter.sweep` (run on every acquire, and by whoever calls it
  periodically) unloads models unused for ``idle_seconds``;
- **observable residency**: :meth:`Arbiter.residency` lists, per device, the budget,
  the bytes in use and every resident model, for the health endpoint and metrics.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from podmill.obs import tracing
from podmill.obs.metrics import recorder

log = logging.getLogger(__name__)

DEFAULT_BUDGET_FRACTION = 0.7
DEFAULT_IDLE_SECONDS = 900.0
DEFAULT_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class ModelSpec:
    """How to load one model, and what it costs to keep it."""

    name: str
    load: Callable[[], Any]
    nbytes: int  # estimated resident size
    device: str = "cpu"
    unload: Callable[[Any], None] | None = None  # default: drop the reference


@dataclass
class _Resident:
    spec: ModelSpec
    model: Any = None
    loaded: bool = False
    users: int = 0
    last_used: float = 0.0
    loading: threading.Event = field(default_factory=threading.Event)


@dataclass
class ArbiterStats:
    loads: int = 0
    unloads: int = 0
    evictions: int = 0  # unloads to make room
    over_budget: int = 0  # loads that went ahead without room
    loads_by_model: dict[str, int] = field(default_factory=dict)
    wait_seconds: float = 0.0  # spent waiting for room (models in use)


class Arbiter:
    """Model residency for one process; thread-safe."""

    def __init__(
        self,
        budgets: dict[str, int] | None = None,
        *,
        idle_seconds: float = DEFAULT_IDLE_SECONDS,
        wait_seconds: float = DEFAULT_WAIT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budgets = dict(budgets) if budgets is not None else default_budgets()
        self.idle_seconds = idle_seconds
        self.wait_seconds = wait_seconds
        self.clock = clock
        self.stats = ArbiterStats()
        self._specs: dict[str, ModelSpec] = {}
        self._resident: dict[str, _Resident] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def register(self, spec: ModelSpec) -> None:
        """Make ``spec`` acquirable; registering the same name again is a no-op."""
        with self._lock:
            self._specs.setdefault(spec.name, spec)

    def estimate(self, name: str) -> int:
        """The estimated resident bytes of the registered model ``name``."""
        with self._lock:
            return self._specs[name].nbytes

    def is_registered(self, name: str) -> bool:
        with self._lock:
            return name in self._specs

    @contextmanager
    def acquire(self, name: str) -> Iterator[Any]:
        """The model ``name``, loaded if it is not resident; it stays resident while held."""
        self.sweep()
        entry = self._enter(name)
        try:
            yield entry.model
        finally:
            with self._changed:
                entry.users -= 1
                entry.last_used = self.clock()
                self._changed.notify_all()

    def sweep(self) -> list[str]:
        """Unload the models nobody has used for ``idle_seconds``; returns their names."""
        now = self.clock()
        with self._lock:
            idle = [
                name
                for name, entry in self._resident.items()
                if entry.loaded and entry.users == 0 and now - entry.last_used >= self.idle_seconds
            ]
            dropped = [self._drop(name) for name in idle]
        for entry in dropped:
            self._unload(entry)
        return idle

    def residency(self) -> dict[str, dict[str, Any]]:
        """Per device: ``budget`` and ``used`` bytes, and each resident model."""
        now = self.clock()
        with self._lock:
            devices = {spec.device for spec in self._specs.values()} | set(self.budgets)
            return {
                device: {
                    "budget": self.budgets.get(device),
                    "used": self._used(device),
                    "models": [
                        {
                            "name": name,
                            "bytes": entry.spec.nbytes,
                            "in_use": entry.users,
                            "idle_seconds": round(now - entry.last_used, 3),
                        }
                        for name, entry in sorted(self._resident.items())
                        if entry.spec.device == device and entry.loaded
                    ],
                }
                for device in sorted(devices)
            }

    def resident(self) -> list[str]:
        with self._lock:
            return sorted(name for name, e in self._resident.items() if e.loaded)

    def clear(self) -> None:
        """Unload every model not in use (tests, shutdown)."""
        with self._lock:
            dropped = [self._drop(name) for name, e in list(self._resident.items()) if e.users == 0]
        for entry in dropped:
            self._unload(entry)

    # ---------------------------------------------------------------- internals

    def _enter(self, name: str) -> _Resident:
        with self._changed:
            spec = self._specs.get(name)
            if spec is None:
                known = ", ".join(sorted(self._specs)) or "none"
                raise KeyError(f"model {name!r} is not registered (registered: {known})")
            while True:
                entry = self._resident.get(name)
                if entry is None:
                    break  # not resident: this thread loads it
                if entry.loaded:
                    entry.users += 1
                    entry.last_used = self.clock()
                    return entry
                self._changed.wait()  # another thread is loading it, or it failed
            entry = _Resident(spec=spec, users=1)
            self._resident[name] = entry  # claims the load: others wait for it
            evicted = self._make_room(entry)
        for old in evicted:
            self._unload(old)
            recorder().model_swapped(old.spec.name, name)
        try:
            started = time.perf_counter()
            with tracing.span(
                "model load",
                {"model": name, "device": spec.device, "evicted": [o.spec.name for o in evicted]},
            ):
                model = spec.load()
        except BaseException:
            with self._changed:
                del self._resident[name]
                self._changed.notify_all()
            raise
        seconds = time.perf_counter() - started
        log.info("loaded model %s on %s in %.2fs", name, spec.device, seconds)
        recorder().model_loaded(name, seconds)
        recorder().device_tenant(spec.device, name, True)
        with self._changed:
            entry.model = model
            entry.loaded = True
            entry.last_used = self.clock()
            self.stats.loads += 1
            self.stats.loads_by_model[name] = self.stats.loads_by_model.get(name, 0) + 1
            self._changed.notify_all()
        return entry

    def _make_room(self, loading: _Resident) -> list[_Resident]:
        """Called with the lock held, ``loading`` already counted: drop idle models (least
        recently used first) until the device is within its budget."""
        spec = loading.spec
        budget = self.budgets.get(spec.device)
        evicted: list[_Resident] = []
        if budget is None:
            return evicted
        deadline = self.clock() + self.wait_seconds
        while self._used(spec.device) > budget:
            idle = sorted(
                (e for e in self._resident.values() if e.spec.device == spec.device),
                key=lambda e: e.last_used,
            )
            victim = next((e for e in idle if e.loaded and e.users == 0), None)
            if victim is not None:
                evicted.append(self._drop(victim.spec.name))
                self.stats.evictions += 1
                continue
            busy = any(e is not loading and (e.users > 0 or not e.loaded) for e in idle)
            remaining = deadline - self.clock()
            if not busy or remaining <= 0:
                self.stats.over_budget += 1
                log.warning(
                    "model %s (%d MB) does not fit the %s budget (%d MB; %d MB resident "
                    "with it, in use); loading it anyway",
                    spec.name,
                    spec.nbytes >> 20,
                    spec.device,
                    budget >> 20,
                    self._used(spec.device) >> 20,
                )
                break
            waited = self.clock()
            self._changed.wait(min(remaining, 1.0))
            self.stats.wait_seconds += self.clock() - waited
        return evicted

    def _used(self, device: str) -> int:
        return sum(e.spec.nbytes for e in self._resident.values() if e.spec.device == device)

    def _drop(self, name: str) -> _Resident:
        entry = self._resident.pop(name)
        self.stats.unloads += 1
        return entry

    def _unload(self, entry: _Resident) -> None:
        model, entry.model = entry.model, None
        if entry.spec.unload is not None and model is not None:
            entry.spec.unload(model)
        del model
        gc.collect()
        recorder().model_unloaded(entry.spec.name)
        recorder().device_tenant(entry.spec.device, entry.spec.name, False)
        log.info("unloaded model %s from %s", entry.spec.name, entry.spec.device)


def total_memory() -> int | None:
    """Physical RAM in bytes, if the platform says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_budgets(fraction: float = DEFAULT_BUDGET_FRACTION) -> dict[str, int]:
    """``fraction`` of RAM for ``cpu``; of the first GPU's memory for ``cuda`` when one
    is visible to CTranslate2 and ``nvidia-smi`` reports its size."""
    budgets: dict[str, int] = {}
    ram = total_memory()
    if ram:
        budgets["cpu"] = int(ram * fraction)
    vram = _cuda_memory()
    if vram:
        budgets["cuda"] = int(vram * fraction)
    return budgets


def cuda_available() -> bool:
    """Whether CTranslate2 sees a CUDA device (never raises)."""
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:
        return False


def _cuda_memory() -> int | None:
    if not cuda_available():
        return None
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return int(out.splitlines()[0].strip()) << 20  # MiB
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


_process_arbiter: Arbiter | None = None
_process_lock = threading.Lock()


def process_arbiter() -> Arbiter:
    """This process's arbiter, created on first use with the default budgets."""
    global _process_arbiter
    with _process_lock:
        if _process_arbiter is None:
            _process_arbiter = Arbiter()
        return _process_arbiter


def configure_process_arbiter(budget_fraction: float, idle_seconds: float) -> Arbiter:
    """Apply the settings ``models.memory_budget`` and ``models.idle_unload_seconds``
    (the CLI does, for ``run`` and ``worker``). Resident models stay; the new budget
    applies from the next load."""
    arbiter = process_arbiter()
    budgets = default_budgets(budget_fraction)
    with arbiter._lock:
        arbiter.budgets = budgets
        arbiter.idle_seconds = idle_seconds
    return arbiter
