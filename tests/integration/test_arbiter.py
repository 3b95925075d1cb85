"""The model arbiter with real models: Whisper tiny.en (CTranslate2) and MiniLM (onnxruntime).

Budgets are set so that only one of the two fits; the clock is injected for idle unload.
"""

from __future__ import annotations

import functools
import threading
from pathlib import Path

import pytest

from podmill.errors import PodmillError
from podmill.ml import asr, embed
from podmill.ml.arbiter import Arbiter, ModelSpec, process_arbiter
from podmill.settings import AsrSettings

from support.paths import DEMO

MB = 1 << 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def specs() -> dict[str, ModelSpec]:
    whisper = asr.resolve_model("tiny.en")
    return {
        "whisper": ModelSpec(
            "whisper", functools.partial(asr._load_model, str(whisper.path), "int8", 1), 100 * MB
        ),
        "minilm": ModelSpec("minilm", functools.partial(embed._load, 1), 60 * MB),
    }


def _arbiter(specs: dict[str, ModelSpec], budget_mb: int, **kwargs: object) -> Arbiter:
    arbiter = Arbiter({"cpu": budget_mb * MB}, **kwargs)  # type: ignore[arg-type]
    for spec in specs.values():
        arbiter.register(spec)
    return arbiter


def test_a_model_loads_once_for_many_concurrent_users(specs: dict[str, ModelSpec]) -> None:
    arbiter = _arbiter(specs, budget_mb=1000)
    barrier = threading.Barrier(8)
    seen: list[int] = []

    def use() -> None:
        barrier.wait()
        with arbiter.acquire("minilm") as model:
            seen.append(id(model))
            assert model.embed(["a sentence"]).shape == (1, 384)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(seen) == 8 and len(set(seen)) == 1
    assert arbiter.stats.loads == 1
    with arbiter.acquire("minilm"):
        pass
    assert arbiter.stats.loads == 1  # still resident: not loaded again


def test_the_budget_evicts_the_least_recently_used_idle_model(
    specs: dict[str, ModelSpec],
) -> None:
    arbiter = _arbiter(specs, budget_mb=150)  # one fits, not both

    with arbiter.acquire("whisper"):
        pass
    assert arbiter.resident() == ["whisper"]
    with arbiter.acquire("minilm") as model:
        assert model.embed(["hello"]).shape == (1, 384)
    assert arbiter.resident() == ["minilm"]
    with arbiter.acquire("whisper"):
        pass

    assert arbiter.resident() == ["whisper"]
    assert (arbiter.stats.loads, arbiter.stats.evictions) == (3, 2)
    cpu = arbiter.residency()["cpu"]
    assert cpu["budget"] == 150 * MB and cpu["used"] == 100 * MB
    assert [m["name"] for m in cpu["models"]] == ["whisper"]


def test_a_model_in_use_is_never_evicted_a_load_waits_for_it(
    specs: dict[str, ModelSpec],
) -> None:
    arbiter = _arbiter(specs, budget_mb=150, wait_seconds=60)
    holding = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def hold_whisper() -> None:
        with arbiter.acquire("whisper"):
            holding.set()
            release.wait(30)
            order.append("whisper released")

    holder = threading.Thread(target=hold_whisper)
    holder.start()
    assert holding.wait(30)
    loader = threading.Thread(target=lambda: _use(arbiter, "minilm", order))
    loader.start()
    loader.join(0.5)
    assert loader.is_alive()  # waiting: the only model it could evict is in use
    assert arbiter.resident() == ["whisper"]

    release.set()
    holder.join(30)
    loader.join(30)

    assert order == ["whisper released", "minilm used"]
    assert arbiter.resident() == ["minilm"]
    assert arbiter.stats.over_budget == 0


def _use(arbiter: Arbiter, name: str, order: list[str]) -> None:
    with arbiter.acquire(name):
        order.append(f"{name} used")


def test_a_load_that_cannot_fit_in_time_goes_ahead_over_budget(
    specs: dict[str, ModelSpec],
) -> None:
    arbiter = _arbiter(specs, budget_mb=150, wait_seconds=0.2)

    with arbiter.acquire("whisper"), arbiter.acquire("minilm") as model:
        assert model.embed(["still works"]).shape == (1, 384)
        assert arbiter.resident() == ["minilm", "whisper"]

    assert arbiter.stats.over_budget == 1


def test_idle_models_unload_after_the_idle_time(specs: dict[str, ModelSpec]) -> None:
    clock = Clock()
    arbiter = _arbiter(specs, budget_mb=1000, idle_seconds=600, clock=clock)
    with arbiter.acquire("whisper"):
        clock.now += 3600  # in use for an hour: never unloaded while held
        assert arbiter.sweep() == []
    with arbiter.acquire("minilm"):
        pass

    clock.now += 599
    assert arbiter.sweep() == []
    clock.now += 2
    assert sorted(arbiter.sweep()) == ["minilm", "whisper"]
    assert arbiter.resident() == []
    assert arbiter.residency()["cpu"]["used"] == 0


def test_a_failed_load_leaves_nothing_and_the_next_acquire_tries_again(
    tmp_path: Path, specs: dict[str, ModelSpec]
) -> None:
    arbiter = _arbiter(specs, budget_mb=1000)
    arbiter.register(
        ModelSpec("broken", functools.partial(asr._load_model, str(tmp_path), "int8", 1), MB)
    )

    for _ in range(2):
        with pytest.raises(RuntimeError), arbiter.acquire("broken"):
            pass
        assert arbiter.resident() == []

    with pytest.raises(KeyError, match="not registered"), arbiter.acquire("nope"):
        pass


def test_the_pipeline_models_are_resident_in_the_process_arbiter() -> None:
    asr.transcribe(DEMO / "jfk.flac", AsrSettings())
    embed.embed(["one sentence"])

    cpu = process_arbiter().residency()["cpu"]
    names = {m["name"] for m in cpu["models"]}
    assert any(n.startswith("whisper:tiny.en:cpu:int8:") for n in names), names
    assert any(n.startswith("minilm:") for n in names), names
    assert all(m["in_use"] == 0 for m in cpu["models"])
    assert cpu["budget"] and cpu["budget"] > cpu["used"] > 0


def test_without_a_gpu_auto_runs_on_the_cpu_and_cuda_is_one_clear_error() -> None:
    assert asr.placement(AsrSettings()) == ("cpu", "int8")  # this machine has no GPU
    assert asr.placement(AsrSettings(device="cpu", compute_type="int8_float32")) == (
        "cpu",
        "int8_float32",
    )
    with pytest.raises(PodmillError, match="sees no CUDA device") as err:
        asr.placement(AsrSettings(device="cuda"))
    assert "\n" not in str(err.value)
    with pytest.raises(PodmillError, match="sees no CUDA device"):
        asr.transcribe(DEMO / "jfk.flac", AsrSettings(device="cuda"))


def test_a_swap_is_counted_and_the_device_shows_its_tenant(
    specs: dict[str, ModelSpec], tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from podmill.obs.metrics import WorkerMetrics, install

    metrics = WorkerMetrics(tmp_path)
    previous = install(metrics)
    try:
        arbiter = _arbiter(specs, budget_mb=120)  # one of the two fits
        with arbiter.acquire("whisper"):
            pass
        with arbiter.acquire("minilm"):
            pass
    finally:
        install(previous)
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.exposition()[0].decode())
        for s in f.samples
    }
    assert found[("podmill_model_swaps_total", (("from", "whisper"), ("to", "minilm")))] == 1
    assert ("podmill_model_swaps_total", (("from", "minilm"), ("to", "whisper"))) not in found
    assert found[("podmill_device_tenant", (("device", "cpu"), ("tenant", "whisper")))] == 0
    assert found[("podmill_device_tenant", (("device", "cpu"), ("tenant", "minilm")))] == 1
