"""A two-voice synthetic conversation, built with espeak-ng and sox at test time.

Two espeak-ng voices pitched far apart take alternating turns of a few sentences with
short pauses. The reference speaker turns come from exact sample counts, so they are
known to the millisecond without listening to the audio.
"""

from __future__ import annotations

import array
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

SAMPLE_RATE = 16_000
VOICES = {
    "host": ["-v", "en-us", "-p", "20", "-s", "160"],
    "guest": ["-v", "en-gb+f3", "-p", "80", "-s", "165"],
}
SENTENCE_PAUSE_S = 0.35  # inside a turn
TURN_PAUSE_S = 0.7  # between turns
QUIET = 200  # |sample| below which espeak's lead-in and tail count as silence

TURNS: list[tuple[str, str]] = [
    (
        "host",
        "Welcome to the garden hour. Today we talk about growing tomatoes on a balcony. "
        "My guest has grown them in pots for ten years.",
    ),
    (
        "guest",
        "Thanks for having me. The first thing to know is that tomatoes need a lot of sun. "
        "Six hours a day is the minimum.",
    ),
    (
        "host",
        "What about the pots themselves? Do they need to be big?",
    ),
    (
        "guest",
        "Bigger than most people think. A single plant wants at least twenty litres of soil. "
        "Small pots dry out in one afternoon in July.",
    ),
    (
        "host",
        "And watering? I always seem to get that wrong.",
    ),
    (
        "guest",
        "Water deeply in the morning, and let the top of the soil dry a little before the "
        "next time. Uneven watering is what splits the fruit.",
    ),
    (
        "host",
        "That is really useful advice. Thank you for joining us on the garden hour.",
    ),
    (
        "guest",
        "It was a pleasure. Good luck with your tomatoes this summer.",
    ),
]


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


def _need_tools() -> None:
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} required (scripts/test installs them)")


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in text.replace("?", "?|").replace(".", ".|").split("|")]
    return [p for p in parts if p]


def _speak(sentence: str, voice: list[str], tmp: Path) -> array.array:
    raw, resampled = tmp / "raw.wav", tmp / "16k.wav"
    subprocess.run(["espeak-ng", *voice, "-w", str(raw), sentence], check=True)
    subprocess.run(
        ["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(resampled)],
        check=True,
    )
    with wave.open(str(resampled), "rb") as f:
        samples = array.array("h", f.readframes(f.getnframes()))
    loud = [i for i, s in enumerate(samples) if abs(s) >= QUIET]
    return samples[loud[0] : loud[-1] + 1] if loud else samples


def two_voice_episode(target: Path) -> list[Turn]:
    """Write the conversation to ``target`` (16 kHz mono WAV); returns the reference turns."""
    _need_tools()
    work = target.parent / f".{target.stem}-parts"
    work.mkdir(parents=True, exist_ok=True)
    audio = array.array("h")
    turns: list[Turn] = []
    for speaker, text in TURNS:
        if audio:
            audio.extend([0] * int(TURN_PAUSE_S * SAMPLE_RATE))
        start = len(audio)
        for i, sentence in enumerate(_sentences(text)):
            if i:
                audio.extend([0] * int(SENTENCE_PAUSE_S * SAMPLE_RATE))
            audio.extend(_speak(sentence, VOICES[speaker], work))
        turns.append(Turn(start / SAMPLE_RATE, len(audio) / SAMPLE_RATE, speaker))
    audio.extend([0] * int(0.5 * SAMPLE_RATE))
    shutil.rmtree(work, ignore_errors=True)
    with wave.open(str(target), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(audio.tobytes())
    return turns


def attributed_share(
    reference: list[Turn], hypothesis: list[tuple[float, float, str]], step: float = 0.01
) -> float:
    """Share of reference speech time whose hypothesis label maps to a speaker talking then.

    Hypothesis labels map to reference speakers by the best one-to-one assignment (most
    overlapping time); in overlapped speech either active speaker counts as right.
    """
    import itertools

    end = max(t.end for t in reference)
    frames = int(end / step) + 1

    def active(spans, label_of):
        per_frame: list[set[str]] = [set() for _ in range(frames)]
        for start, stop, label in spans:
            for i in range(int(start / step), min(frames, int(stop / step))):
                per_frame[i].add(label_of(label))
        return per_frame

    ref = active([(t.start, t.end, t.speaker) for t in reference], str)
    hyp = active(hypothesis, str)
    ref_speakers = sorted({t.speaker for t in reference})
    hyp_speakers = sorted({label for _, _, label in hypothesis})
    speech = [i for i in range(frames) if ref[i]]
    best = 0
    pad = ref_speakers + [None] * max(0, len(hyp_speakers) - len(ref_speakers))
    for perm in itertools.permutations(pad, len(hyp_speakers)):
        mapping = dict(zip(hyp_speakers, perm))
        right = sum(1 for i in speech if any(mapping[h] in ref[i] for h in hyp[i]))
        best = max(best, right)
    return best / len(speech) if speech else 1.0


def speaker_recall(
    reference: list[Turn], hypothesis: list[tuple[float, float, str]], step: float = 0.01
) -> dict[str, float]:
    """Per reference speaker: the share of their speech time during which the hypothesis
    label mapped to them (best one-to-one assignment) is active. Strict where voices
    overlap: each speaker must be found in their own right."""
    import itertools

    end = max(t.end for t in reference)
    frames = int(end / step) + 1

    def active(spans: list[tuple[float, float, str]]) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for start, stop, label in spans:
            found.setdefault(label, set()).update(
                range(int(start / step), min(frames, int(stop / step)))
            )
        return found

    ref = active([(t.start, t.end, t.speaker) for t in reference])
    hyp = active(hypothesis)
    labels = sorted(hyp) + [None] * max(0, len(ref) - len(hyp))
    best: dict[str, float] = {}
    for perm in itertools.permutations(labels, len(ref)):
        recall = {
            speaker: len(ref[speaker] & hyp.get(label, set())) / len(ref[speaker])
            for speaker, label in zip(sorted(ref), perm)
        }
        if sum(recall.values()) > sum(best.values()):
            best = recall
    return best
