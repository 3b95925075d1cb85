"""ASR overhead: raw faster-whisper vs podmill's transcribe stage on the same audio.

Both use the same model instance options and decoding settings, in one process, after a
warm-up, alternating runs so machine noise hits both. Prints ``overhead_ratio`` =
podmill seconds / raw seconds (goal ≤ 1.05).

    python bench/asr_overhead.py [AUDIO ...] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from podmill.domain import Episode
from podmill.ml import asr
from podmill.pipeline.context import StageContext
from podmill.pipeline.stages import transcribe as transcribe_stage
from podmill.settings import Settings
from podmill.storage.artifacts import ArtifactStore

DEFAULT_AUDIO = Path(__file__).resolve().parents[1] / "src" / "podmill" / "demo"


def raw(model, path: Path, settings: Settings) -> float:
    started = time.perf_counter()
    segments, _ = model.transcribe(
        str(path),
        language=settings.asr.language,
        beam_size=settings.asr.beam_size,
        vad_filter=settings.asr.vad,
        word_timestamps=True,
        condition_on_previous_text=False,
    )
    for segment in segments:  # decoding happens while iterating
        _ = segment.words
    return time.perf_counter() - started


def podmill_stage(path: Path, settings: Settings, store: ArtifactStore) -> float:
    """The whole transcribe stage: decode, words, and the four transcript artifacts."""
    episode = Episode(episode_key="bench", title=path.stem, audio_url=None)
    ctx = StageContext(settings=settings, episode=episode, fingerprint="bench", store=store)
    rel = path.relative_to(settings.data_dir) if path.is_relative_to(settings.data_dir) else None
    source = {"kind": "audio", "path": str(rel or path), "duration": 0.0}
    ctx.write_json("source.json", source)
    started = time.perf_counter()
    transcribe_stage(ctx)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    files = args.audio or sorted(
        p for p in DEFAULT_AUDIO.iterdir() if p.suffix in {".flac", ".mp3", ".ogg", ".opus"}
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        store = ArtifactStore(settings.data_dir)
        info = asr.resolve_model(settings.asr.model)
        model = asr.load_model(info, settings.asr)  # the same instance podmill uses
        files = [f.resolve() for f in files]
        raw(model, files[0], settings)  # warm-up
        raw_times, ours = [], []
        for _ in range(args.repeat):
            for f in files:
                raw_times.append(raw(model, f, settings))
                ours.append(podmill_stage(f, settings, store))
        raw_total, ours_total = sum(raw_times), sum(ours)
        print(f"files={len(files)} repeat={args.repeat}")
        print(f"raw_seconds={raw_total:.3f} podmill_seconds={ours_total:.3f}")
        print(
            f"raw_median={statistics.median(raw_times):.3f} "
            f"podmill_median={statistics.median(ours):.3f}"
        )
        print(f"overhead_ratio={ours_total / raw_total:.3f}")


if __name__ == "__main__":
    main()
