"""Whether the configured models could load, without loading them: health's ``models``
and ``gpu`` checks (docs/observability.md), and :func:`require_models`, the check before
a process runs stages itself.

Each backend knows its own packages and weights (``asr.preflight``, ``embed.preflight``,
``llm.preflight_local``); this module asks the ones the settings use and turns the
answers into :class:`~podmill.obs.health.Check` verdicts. Cheap enough for every probe,
and cached a minute.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from podmill.obs.health import DEGRADED, HEALTHY, Check
from podmill.settings import Settings


def require_models(settings: Settings) -> None:
    """Raise the first reason this process could not run the stages with ``settings``'
    models: a missing extra (:class:`~podmill.errors.MissingExtraError`, one line naming
    it) or installed models other than the pinned ones. Loads nothing.

    For what runs the stages in-process (``podmill run``, the demo) before any work;
    queueing work (``podmill submit``, the API) needs none of the models (docs/pipeline.md).
    """
    from podmill.ml import asr, embed

    asr.resolve_model(settings.asr.model)
    embed.installed_model()
    if settings.diarization.enabled:
        from podmill.ml import diarize

        diarize.check_installed()
    if settings.topics.titles == "phrases":  # auto without the extra: keyphrases
        from podmill.ml import phrases

        phrases.check_installed()


def check_models(settings: Settings) -> Check:
    """Whether the configured models could load: packages importable, weights on disk.
    Loads nothing (cheap enough for every probe; cached a minute)."""
    problems, models = _model_problems(_models_key(settings))
    data = {"models": models}
    if problems:
        return Check(DEGRADED, "; ".join(problems), data)
    return Check(HEALTHY, f"{len(models)} model(s) loadable", data)


def check_gpu(settings: Settings) -> Check | None:
    """Only when a device is configured as ``cuda``: does CTranslate2 see a GPU?"""
    if "cuda" not in (settings.asr.device, settings.diarization.device):
        return None
    try:
        import ctranslate2

        count = int(ctranslate2.get_cuda_device_count())
    except Exception as exc:
        return Check(DEGRADED, f"cannot ask CTranslate2 for CUDA devices: {exc}", {"devices": 0})
    if count == 0:
        return Check(
            DEGRADED, "device is 'cuda' but CTranslate2 sees no CUDA device", {"devices": 0}
        )
    return Check(HEALTHY, f"{count} CUDA device(s)", {"devices": count})


def _models_key(settings: Settings) -> tuple[Any, ...]:
    llm_local = settings.topics.backend == "llm" and settings.llm.backend == "local"
    gguf = str(settings.llm.gguf_path) if settings.llm.gguf_path else None
    return (settings.asr.model, llm_local, gguf, settings.llm.local_model)


_models_cache: dict[tuple[Any, ...], tuple[float, tuple[list[str], list[str]]]] = {}
_models_lock = threading.Lock()


def _model_problems(key: tuple[Any, ...]) -> tuple[list[str], list[str]]:
    with _models_lock:
        hit = _models_cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < 60:
            return hit[1]
    answer = _inspect_models(*key)
    with _models_lock:
        _models_cache[key] = (time.monotonic(), answer)
    return answer


def _inspect_models(
    asr_model: str, llm_local: bool, gguf: str | None, local_model: str
) -> tuple[list[str], list[str]]:
    from podmill.ml import asr, embed

    models = [f"whisper:{asr_model}", "minilm"]
    problems = asr.preflight(asr_model) + embed.preflight()
    if llm_local:
        from podmill.ml import llm

        models.append("llm:local")
        problems += llm.preflight_local(gguf, local_model)
    return problems, models
