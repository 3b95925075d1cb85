"""ASR choice: Whisper tiny.en against base, and the vocabulary prompt, measured.

1. **Real clips**, per model: WER and real-time factor (wall seconds of
   ``podmill.ml.asr.transcribe`` per second of audio, the model loaded first) on JFK,
   LibriVox Sonnet 1 and the four-speaker AMI excerpt (``bench/quality.py``'s
   ``asr_rows``, imported), plus the demo's synthetic three-topics episode (espeak-ng;
   its Mars part names Perseverance and Jezero crater).
2. **The vocabulary prompt on the demo feed**: the demo's JFK and Sonnet episodes
   (``--demo-three-topics``: the third too) as podmill reads the bundled feed, each
   transcribed with ``asr.vocabulary_prompt`` off, initial and hotwords and the prompt
   its metadata gives: does a real prompt (which names nothing in these clips) cost WER?
3. **Names**: two scripts full of proper names (written for podmill, CC0), each with
   the feed metadata a publisher would give (show title, ``podcast:person`` names,
   episode title), spoken by espeak-ng in two voices (en-us, en-gb), about 70 s each so
   that names fall after Whisper's first 30-s window too. Per model and prompt mode:
   the overall WER, and the **name-word error rate**: of the reference words that
   belong to a name the prompt carries, the share not matched in the WER alignment
   (substituted or deleted); and the same for names the prompt does not carry.

Every call is timed in wall seconds and in this process's CPU seconds (all threads):
on a shared machine the CPU seconds are what contention does not inflate.

    python bench/asr_choice.py [--models tiny.en base] [--skip-real] [--skip-demo]
                               [--skip-names] [--demo-three-topics] [--out FILE]

Needs the ``ml`` extra, ``whisper-base`` for the base rows and espeak-ng on PATH for
the names rows; the AMI rows need the shared corpus (as bench/quality.py). docs/quality.md
("ASR choice") has a run and the decision it supports.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/quality.py

import quality
from podmill.domain import Episode, Person
from podmill.ml import asr
from podmill.ml.vocabulary import episode_vocabulary
from podmill.settings import AsrSettings, Settings
from quality import AsrRow, asr_rows, commit, machine

from support.paths import DEMO
from support.wer import normalise, wer

MODES = ("off", "initial", "hotwords")
# the same prompt with a full stop after it (what the builder no longer writes), on the
# names clips with tiny.en: the first window's lost sentences (docs/quality.md)
PUNCTUATED = ("initial.", "hotwords.")
VOICES = ("en-us", "en-gb")
WPM = 165
PAUSE = 0.6  # seconds after every sentence


# ------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Call:
    model: str
    audio: str  # file name
    mode: str
    wall: float
    cpu: float  # this process's CPU seconds, all threads: what contention does not inflate
    audio_seconds: float


CALLS: list[Call] = []


def record_calls() -> None:
    """Time every ``asr.transcribe`` call, wall and CPU, whoever makes it (also
    ``asr_rows`` in bench/quality.py, which times wall seconds only): on a shared
    machine the CPU seconds are what a laptop with free cores would spend."""
    real = asr.transcribe

    def timed(audio_path: Path, settings: AsrSettings, **kwargs: object):  # type: ignore[no-untyped-def]
        wall, cpu = time.perf_counter(), time.process_time()
        transcript = real(audio_path, settings, **kwargs)  # type: ignore[arg-type]
        CALLS.append(
            Call(
                settings.model,
                Path(audio_path).name,
                settings.vocabulary_prompt,
                time.perf_counter() - wall,
                time.process_time() - cpu,
                transcript.duration,
            )
        )
        return transcript

    asr.transcribe = timed  # type: ignore[assignment]


def cpu_seconds(model: str, audio: str, mode: str = "off") -> float:
    """The CPU seconds of the last such call."""
    found = [c for c in CALLS if (c.model, c.audio, c.mode) == (model, audio, mode)]
    return found[-1].cpu if found else 0.0


REAL_AUDIO = {
    "JFK": "jfk.flac",
    "Sonnet 1": "sonnet001.mp3",
    "AMI, 4 speakers": "ami_mixture.wav",
    "demo three topics (espeak-ng)": "three-topics.ogg",
}


# ------------------------------------------------------------------ real clips


def three_topics_row(model: str, settings: AsrSettings) -> AsrRow:
    truth = json.loads((DEMO / "three-topics.json").read_text())
    reference = " ".join(t["text"] for t in truth["topics"])
    started = time.perf_counter()
    transcript = asr.transcribe(DEMO / "three-topics.ogg", settings)
    seconds = time.perf_counter() - started
    ref = normalise(reference)
    errors = round(wer(reference, transcript.text) * len(ref))
    return AsrRow(
        model, "demo three topics (espeak-ng)", len(ref), errors, seconds, transcript.duration
    )


def real_rows(model: str) -> list[AsrRow]:
    settings = AsrSettings(model=model)
    rows = asr_rows(model)  # loads the model first, untimed
    rows.append(three_topics_row(model, settings))
    return rows


# ------------------------------------------------------- the demo feed's prompts


@dataclass
class PromptRow:
    model: str
    clip: str
    mode: str
    ref_words: int
    errors: int
    name_words: int = 0
    name_errors: int = 0
    other_name_words: int = 0
    other_name_errors: int = 0
    seconds: float = 0.0
    audio_seconds: float = 0.0
    cpu: float = 0.0

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.ref_words)

    @property
    def name_wer(self) -> float:
        return self.name_errors / max(1, self.name_words)

    @property
    def other_name_wer(self) -> float:
        return self.other_name_errors / max(1, self.other_name_words)


def demo_feed_rows(
    model: str, with_three_topics: bool = False
) -> tuple[list[PromptRow], list[str]]:
    from podmill.feeds.sources import resolve

    references = {
        "jfk.flac": (DEMO.parent.parent.parent / "tests" / "fixtures" / "audio" / "jfk.txt"),
        "sonnet001.mp3": (
            DEMO.parent.parent.parent / "tests" / "fixtures" / "audio" / "sonnet001.txt"
        ),
    }
    truth = json.loads((DEMO / "three-topics.json").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        episodes = resolve(str(DEMO / "feed.xml"), Settings(data_dir=Path(tmp))).episodes
    rows, prompts = [], []
    for ep in episodes:
        name = Path(ep.audio_url or "").name
        if name not in references and not with_three_topics:
            continue
        if name in references:
            reference = references[name].read_text()
        else:
            reference = " ".join(t["text"] for t in truth["topics"])
        prompt = episode_vocabulary(ep)
        prompts.append(f"{name}: {prompt!r}")
        for mode in MODES:
            settings = AsrSettings(model=model, vocabulary_prompt=mode)
            started = time.perf_counter()
            transcript = asr.transcribe(DEMO / name, settings, vocabulary=prompt)
            seconds = time.perf_counter() - started
            ref = normalise(reference)
            errors = round(wer(reference, transcript.text) * len(ref))
            rows.append(
                PromptRow(
                    model, name, mode, len(ref), errors, seconds=seconds,
                    audio_seconds=transcript.duration,
                )
            )  # fmt: skip
    return rows, prompts


# ----------------------------------------------------------------------- names


@dataclass(frozen=True)
class NamesScript:
    name: str
    feed_title: str
    persons: tuple[str, ...]
    episode_title: str
    other_names: tuple[str, ...]  # proper names spoken that the metadata does not give
    sentences: tuple[str, ...]

    def episode(self) -> Episode:
        return Episode(
            episode_key="bench",
            title=self.episode_title,
            audio_url=None,
            feed_title=self.feed_title,
            persons=[Person(name=n) for n in self.persons],
        )

    @property
    def prompt_names(self) -> list[str]:
        """The names the prompt carries, as they are spoken: the persons, the show, and
        the capitalised words of the episode title."""
        title_words = [w.strip(",.") for w in self.episode_title.split()]
        return [
            *self.persons,
            self.feed_title,
            *(w for w in title_words if w[:1].isupper() and w.lower() not in {"the", "on"}),
        ]


SCRIPTS = (
    NamesScript(
        "mars",
        feed_title="Red Planet Dispatch",
        persons=("Tamsin Okafor", "Bartholomew Quist"),
        episode_title="Jezero Crater, Perseverance and the Ingenuity helicopter",
        other_names=("Curiosity", "Gale Crater", "Mount Sharp"),
        sentences=(
            "Welcome to Red Planet Dispatch, I am Tamsin Okafor.",
            "My guest today is Bartholomew Quist, a geologist who studies Jezero Crater.",
            "Bartholomew, thank you for joining me.",
            "Thank you Tamsin, it is a pleasure to be on Red Planet Dispatch.",
            "Jezero Crater once held a lake, and Perseverance has been driving across its "
            "old river delta.",
            "The Ingenuity helicopter flew above Jezero Crater more than seventy times.",
            "Tamsin Okafor asked whether the samples from Jezero will ever reach Earth.",
            "Bartholomew Quist said the plan depends on a future mission to collect the tubes.",
            "Perseverance leaves each tube on the ground for that mission to pick up.",
            "Before Jezero, the Curiosity rover explored Gale Crater and climbed Mount Sharp.",
            "Quist compared the clay in Gale Crater with the rocks near Jezero.",
            "Okafor ended by asking what Ingenuity taught engineers about flying on Mars.",
            "That was Bartholomew Quist on Red Planet Dispatch. I am Tamsin Okafor, thanks "
            "for listening.",
        ),
    ),
    NamesScript(
        "violins",
        feed_title="The Fiddle and Bow Hour",
        persons=("Lachlan Whitcombe", "Anneliese Marchetti"),
        episode_title="Anneliese Marchetti on Stradivari and the violins of Cremona",
        other_names=("Antonio", "Guarneri", "Amati", "Balkans", "Dolomites", "Mittenwald"),
        sentences=(
            "This is The Fiddle and Bow Hour with Lachlan Whitcombe.",
            "Today Anneliese Marchetti joins me from Cremona.",
            "Anneliese, you have spent ten years studying the violins of Antonio Stradivari.",
            "Yes Lachlan, Cremona was home to Stradivari, Guarneri and the Amati family.",
            "Marchetti explained that Stradivari varnished his instruments in thin layers.",
            "Whitcombe wondered whether the maple came from forests near Cremona.",
            "Anneliese Marchetti said most of it came from the Balkans.",
            "The spruce for the tops grew high in the Dolomites.",
            "Lachlan Whitcombe played a recording of a Guarneri violin for comparison.",
            "Marchetti heard the difference at once and laughed.",
            "Next week on The Fiddle and Bow Hour, we visit a workshop in Mittenwald.",
            "Thanks to Anneliese Marchetti, and thank you for listening to Lachlan Whitcombe.",
        ),
    ),
)


def speak(sentences: Sequence[str], voice: str, target: Path) -> None:
    """The sentences spoken by espeak-ng into one WAV, a pause after each."""
    frames, params = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i, sentence in enumerate(sentences):
            part = Path(tmp) / f"{i}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(WPM), "-w", str(part), sentence],
                check=True,
                capture_output=True,
            )
            with wave.open(str(part), "rb") as w:
                params, rate = w.getparams(), w.getframerate()
                frames.append(w.readframes(w.getnframes()))
                frames.append(b"\0\0" * round(PAUSE * rate))
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(b"".join(frames))


def alignment_hits(ref: list[str], hyp: list[str]) -> list[bool]:
    """For every reference word, whether the minimum-edit alignment matches it exactly."""
    n, m = len(ref), len(hyp)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1,
                cost[i][j - 1] + 1,
                cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]),
            )
    hits = [False] * n
    i, j = n, m
    while i > 0 and j > 0:
        same = ref[i - 1] == hyp[j - 1]
        if cost[i][j] == cost[i - 1][j - 1] + (not same):
            hits[i - 1] = same
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return hits


def name_positions(ref: list[str], names: Sequence[str]) -> set[int]:
    """Positions in ``ref`` of every occurrence of every name's words."""
    found: set[int] = set()
    for name in names:
        words = normalise(name)
        for i in range(len(ref) - len(words) + 1):
            if ref[i : i + len(words)] == words:
                found.update(range(i, i + len(words)))
    return found


def names_rows(
    model: str, clips: dict[tuple[str, str], Path], punctuated: bool = False
) -> list[PromptRow]:
    rows = []
    for script in SCRIPTS:
        prompt = episode_vocabulary(script.episode())
        reference = " ".join(script.sentences)
        ref = normalise(reference)
        in_prompt = name_positions(ref, script.prompt_names)
        other = name_positions(ref, script.other_names) - in_prompt
        for voice in VOICES:
            for mode in (*MODES, *(PUNCTUATED if punctuated else ())):
                settings = AsrSettings(model=model, vocabulary_prompt=mode.rstrip("."))
                sent = prompt + "." if mode.endswith(".") else prompt
                started = time.perf_counter()
                transcript = asr.transcribe(clips[script.name, voice], settings, vocabulary=sent)
                seconds = time.perf_counter() - started
                hits = alignment_hits(ref, normalise(transcript.text))
                rows.append(
                    PromptRow(
                        model,
                        f"{script.name} ({voice})",
                        mode,
                        len(ref),
                        round(wer(reference, transcript.text) * len(ref)),
                        name_words=len(in_prompt),
                        name_errors=sum(not hits[i] for i in in_prompt),
                        other_name_words=len(other),
                        other_name_errors=sum(not hits[i] for i in other),
                        seconds=seconds,
                        audio_seconds=transcript.duration,
                        cpu=CALLS[-1].cpu if CALLS else 0.0,
                    )
                )
    return rows


# ---------------------------------------------------------------------- output


def mode_ran(rows: Sequence[PromptRow], model: str, mode: str) -> bool:
    return any(r.model == model and r.mode == mode for r in rows)


def total(rows: Sequence[PromptRow], model: str, mode: str) -> PromptRow:
    chosen = [r for r in rows if r.model == model and r.mode == mode]
    return PromptRow(
        model,
        "all",
        mode,
        sum(r.ref_words for r in chosen),
        sum(r.errors for r in chosen),
        sum(r.name_words for r in chosen),
        sum(r.name_errors for r in chosen),
        sum(r.other_name_words for r in chosen),
        sum(r.other_name_errors for r in chosen),
        sum(r.seconds for r in chosen),
        sum(r.audio_seconds for r in chosen),
        sum(r.cpu for r in chosen),
    )


def render(
    real: list[AsrRow], demo: list[PromptRow], prompts: list[str], names: list[PromptRow],
    models: Sequence[str], notes: list[str],
) -> str:  # fmt: skip
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"Run of {now} on {machine()}, podmill {commit()}, load average "
        f"{os.getloadavg()[2]:.1f} over the last 15 minutes; Whisper int8 on the CPU, "
        f"beam 5, VAD on, {os.cpu_count()} threads.",
        "",
    ]
    if real:
        out += [
            "Real clips: WER, and real-time factor (wall seconds per audio second; lower is "
            "faster).",
            "",
            "| model | clip | ref words | WER | RTF (wall) | RTF (CPU) |",
            "|---|---|---|---|---|---|",
        ]
        for r in real:
            rtf = cpu = ""
            if r.audio_seconds:
                rtf = f"{r.seconds / r.audio_seconds:.3f}"
                cpu = f"{cpu_seconds(r.model, REAL_AUDIO.get(r.clip, '')) / r.audio_seconds:.3f}"
            out.append(f"| {r.model} | {r.clip} | {r.ref_words} | {r.wer:.3f} | {rtf} | {cpu} |")
        out += [
            "",
            "All real clips together (JFK + Sonnet 1 + AMI + three topics): WER over all "
            "their words, RTF over all their audio.",
            "",
            "| model | ref words | WER | RTF (wall) | RTF (CPU) |",
            "|---|---|---|---|---|",
        ]
        for model in models:
            mine = [r for r in real if r.model == model and r.audio_seconds]
            words = sum(r.ref_words for r in mine)
            errors = sum(r.errors for r in mine)
            seconds = sum(r.seconds for r in mine)
            cpu = sum(cpu_seconds(model, REAL_AUDIO.get(r.clip, "")) for r in mine)
            audio = max(1e-9, sum(r.audio_seconds for r in mine))
            out.append(
                f"| {model} | {words} | {errors / max(1, words):.3f} | "
                f"{seconds / audio:.3f} | {cpu / audio:.3f} |"
            )
        out.append("")
    if demo:
        out += [
            "The demo feed's own prompts (" + "; ".join(prompts) + "): WER per mode.",
            "",
            "| model | clip | off | initial | hotwords |",
            "|---|---|---|---|---|",
        ]
        for model in models:
            for clip in dict.fromkeys(r.clip for r in demo if r.model == model):
                by_mode = {r.mode: r for r in demo if r.model == model and r.clip == clip}
                cells = " | ".join(f"{by_mode[m].wer:.3f}" for m in MODES)
                out.append(f"| {model} | {clip} | {cells} |")
        out.append("")
    if names:
        out += [
            "Names: espeak-ng clips of two scripts (voices " + ", ".join(VOICES) + "). "
            "name WER: of the reference words of names the prompt carries, the share not "
            "matched; other names: the same for names it does not carry. Modes ending in "
            "'.' (tiny.en only) send the same prompt with a full stop after it.",
            "",
        ]
        for script in SCRIPTS:
            out.append(f"- {script.name}: prompt {episode_vocabulary(script.episode())!r}")
        out += [
            "",
            "| model | clip | mode | WER | name WER | other names WER | RTF (wall) | RTF (CPU) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        modes = list(dict.fromkeys(r.mode for r in names))
        shown = [
            *names,
            *(total(names, m, mode) for m in models for mode in modes if mode_ran(names, m, mode)),
        ]
        for r in shown:
            out.append(
                f"| {r.model} | {r.clip} | {r.mode} | {r.wer:.3f} | "
                f"{r.name_wer:.3f} ({r.name_words - r.name_errors}/{r.name_words}) | "
                f"{r.other_name_wer:.3f} ({r.other_name_words - r.other_name_errors}/"
                f"{r.other_name_words}) | {r.seconds / max(1e-9, r.audio_seconds):.3f} | "
                f"{r.cpu / max(1e-9, r.audio_seconds):.3f} |"
            )
        out.append("")
    out += [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["tiny.en", "base"])
    parser.add_argument("--skip-real", action="store_true", help="no real-clip table")
    parser.add_argument("--skip-demo", action="store_true", help="no demo-feed prompt table")
    parser.add_argument("--skip-names", action="store_true", help="no names table")
    parser.add_argument(
        "--demo-three-topics",
        action="store_true",
        help="the demo-feed prompt table also on the 204-s three-topics episode",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    record_calls()
    notes: list[str] = []
    if not (quality.AMI / "ami_mixture.wav").is_file():
        notes.append(f"AMI rows skipped: {quality.AMI} not found")
    started = time.perf_counter()
    real: list[AsrRow] = []
    demo: list[PromptRow] = []
    prompts: list[str] = []
    names: list[PromptRow] = []
    with tempfile.TemporaryDirectory() as tmp:
        clips: dict[tuple[str, str], Path] = {}
        if not args.skip_names:
            for script in SCRIPTS:
                for voice in VOICES:
                    clips[script.name, voice] = Path(tmp) / f"{script.name}-{voice}.wav"
                    speak(script.sentences, voice, clips[script.name, voice])
        for model in args.models:
            print(f"{model} ...", file=sys.stderr, flush=True)
            if not args.skip_real:
                real += real_rows(model)
            else:
                asr.load_model(asr.resolve_model(model), AsrSettings(model=model))
            if not args.skip_demo:
                rows, prompts = demo_feed_rows(model, args.demo_three_topics)
                demo += rows
            if clips:
                names += names_rows(model, clips, punctuated=model == "tiny.en")
    notes.append(f"whole run: {time.perf_counter() - started:.0f} s")
    text = render(real, demo, prompts, names, args.models, notes)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
