"""Quality: podmill's word error rate and topic segmentation, with their cost.

1. **WER** of podmill's ASR entry point (``podmill.ml.asr.transcribe``) per Whisper model
   on JFK, LibriVox Sonnet 1 and, when the shared corpus is present, the four-speaker
   AMI excerpt scored per speaker (hypothesis words attributed to speakers by the RTTM).
2. **Pk and WindowDiff** of podmill's ``segment`` stage (run through ``run_stage``, as
   the pipeline does) on ten synthetic multi-topic episodes built from
   ``bench/data/topics/``, read as word-timed transcripts; for each topic backend, beside
   two baselines that need no model (one topic; even split into the true number). The
   same episodes also spoken by espeak-ng and put through the transcribe stage first
   (``--spoken N``: the first N; 0: none).
3. **Seconds per minute** of audio (ASR) or of episode (segmentation), models loaded.

    python bench/quality.py [--models tiny.en base] [--skip-llm] [--gguf PATH …] [--spoken N]
                            [--out FILE]

Prints the tables as markdown; ``--out`` also writes them to a file. docs/quality.md
explains every number.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from podmill.domain import Episode, Segment, Transcript, Word
from podmill.errors import PodmillError
from podmill.ml import asr
from podmill.pipeline.context import StageContext
from podmill.pipeline.stages import run_stage, write_transcript
from podmill.settings import AsrSettings, LlmSettings, Settings, TopicSettings
from podmill.storage.artifacts import ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the WER rule and data paths the tests use

from support.paths import CORPUS, DEMO, FIXTURES  # noqa: E402
from support.wer import normalise, wer  # noqa: E402

TOPIC_TEXTS = ROOT / "bench" / "data" / "topics"
AMI = CORPUS / "audio"
# ami_mixture.<X>.words_joined.txt -> RTTM speaker, as inferred in the corpus MANIFEST
AMI_SPEAKERS = {"A": "MEO015", "B": "FEE013", "C": "MEE014", "D": "FEE016"}

SEED = 5  # the episodes are a fixed choice: change it and every number changes
EPISODES = 10
TOPICS_PER_EPISODE = (3, 5)
SENTENCES_PER_TOPIC = (5, 8)  # each paragraph has 8
WORDS_PER_SECOND = 2.6  # a calm podcast pace (~155 words a minute)
WORD_SECONDS = 0.3  # each word's own duration; the rest of 1/2.6 s is the gap after it
SENTENCE_PAUSE = 0.6  # the same after every sentence, topic changes included

ESPEAK_VOICE = "en-us"
ESPEAK_WPM = 165


# ----------------------------------------------------------------------------- WER

_ACRONYM = re.compile(r"\b(?:[A-Za-z]_)+")  # AMI spells acronyms L_C_D_
_FILLERS = {"uh", "um", "mm", "mmm", "hmm", "mhm", "huh", "ah", "er", "erm"}
_SINGLE_LETTER_WORDS = {"a", "i"}


def ami_tokens(text: str) -> list[str]:
    """Words for scoring the AMI excerpt, the same rule for reference and hypothesis.

    On top of the tests' normalisation (case, punctuation, hyphens, numbers): acronyms
    joined (``L_C_D_`` -> ``lcd``, as Whisper writes LCD), fillers and backchannel
    sounds dropped (``Mm-hmm``, ``uh``, ``um``: Whisper leaves them out by design), and
    AMI's cut-off word starts dropped: a token that is a strict prefix of the next
    (``b buttons``, ``di display``) or a lone letter other than a and I (``h``).
    """
    text = _ACRONYM.sub(lambda m: m.group(0).replace("_", ""), text)
    words = [w for w in normalise(text) if w not in _FILLERS]
    words = " ".join(words).replace("all right", "alright").split()
    return [
        w
        for i, w in enumerate(words)
        if not (len(w) == 1 and w not in _SINGLE_LETTER_WORDS)
        and not (i + 1 < len(words) and len(w) < len(words[i + 1]) and words[i + 1].startswith(w))
    ]


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


def read_rttm(path: Path) -> list[Turn]:
    turns = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "SPEAKER":
            start, length = float(parts[3]), float(parts[4])
            turns.append(Turn(start, start + length, parts[7]))
    return turns


def speaker_of(word: Word, turns: Sequence[Turn]) -> str:
    """The speaker whose turns overlap the word longest; in no turn, the nearest one."""

    def overlap(t: Turn) -> float:
        return min(t.end, word.end) - max(t.start, word.start)

    best = max(turns, key=overlap)
    if overlap(best) > 0:
        return best.speaker
    return min(turns, key=lambda t: max(t.start - word.end, word.start - t.end)).speaker


@dataclass
class AsrRow:
    model: str
    clip: str
    ref_words: int
    errors: int
    seconds: float
    audio_seconds: float

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.ref_words)


def _errors(reference: str, hypothesis: str, tokens: Callable[[str], list[str]]) -> int:
    ref, hyp = " ".join(tokens(reference)), " ".join(tokens(hypothesis))
    return round(wer(ref, hyp) * len(normalise(ref)))


def asr_rows(model: str) -> list[AsrRow]:
    """podmill's transcription of every clip with ``model``, scored."""
    settings = AsrSettings(model=model)
    asr.load_model(asr.resolve_model(model), settings)  # loading is not what we time
    rows = []
    for clip, audio, reference in (
        ("JFK", DEMO / "jfk.flac", FIXTURES / "audio" / "jfk.txt"),
        ("Sonnet 1", DEMO / "sonnet001.mp3", FIXTURES / "audio" / "sonnet001.txt"),
    ):
        started = time.perf_counter()
        transcript = asr.transcribe(audio, settings)
        seconds = time.perf_counter() - started
        ref = reference.read_text()
        rows.append(
            AsrRow(
                model,
                clip,
                len(normalise(ref)),
                _errors(ref, transcript.text, normalise),
                seconds,
                transcript.duration,
            )
        )
    if (AMI / "ami_mixture.wav").is_file():
        rows.extend(ami_rows(model, settings))
    return rows


def ami_rows(model: str, settings: AsrSettings) -> list[AsrRow]:
    started = time.perf_counter()
    transcript = asr.transcribe(AMI / "ami_mixture.wav", settings)
    seconds = time.perf_counter() - started
    turns = read_rttm(AMI / "ami_mixture.rttm")
    said: dict[str, list[str]] = {speaker: [] for speaker in AMI_SPEAKERS.values()}
    for word in transcript.words:
        said[speaker_of(word, turns)].append(word.text)
    rows = []
    for letter, speaker in AMI_SPEAKERS.items():
        reference = (AMI / f"ami_mixture.{letter}.words_joined.txt").read_text()
        hypothesis = " ".join(said[speaker])
        rows.append(
            AsrRow(
                model,
                f"AMI {letter} ({speaker})",
                len(ami_tokens(reference)),
                _errors(reference, hypothesis, ami_tokens),
                0.0,
                0.0,
            )
        )
    total = AsrRow(
        model,
        "AMI, 4 speakers",
        sum(r.ref_words for r in rows),
        sum(r.errors for r in rows),
        seconds,
        transcript.duration,
    )
    return [total, *rows]


# -------------------------------------------------------------------- segmentation


@dataclass
class EpisodeScript:
    """A synthetic episode: its topics' sentences, in order."""

    name: str
    topics: list[tuple[str, list[str]]]

    @property
    def sentences(self) -> list[str]:
        return [s for _, sentences in self.topics for s in sentences]

    @property
    def boundaries(self) -> list[int]:
        """Sentence indices where topics 2, 3, ... start."""
        starts, n = [], 0
        for _, sentences in self.topics[:-1]:
            n += len(sentences)
            starts.append(n)
        return starts


def episode_scripts() -> list[EpisodeScript]:
    """Ten episodes of 3-5 different topics of 5-8 sentences each, a fixed seeded choice."""
    texts = {
        p.stem: [line.strip() for line in p.read_text().splitlines() if line.strip()]
        for p in sorted(TOPIC_TEXTS.glob("*.txt"))
    }
    rng = random.Random(SEED)
    scripts = []
    for n in range(1, EPISODES + 1):
        names = rng.sample(sorted(texts), rng.randint(*TOPICS_PER_EPISODE))
        # topics of different lengths (a prefix of each paragraph), so that an even
        # split is not already the answer
        chosen = [(name, texts[name][: rng.randint(*SENTENCES_PER_TOPIC)]) for name in names]
        scripts.append(EpisodeScript(f"ep{n:02d}", chosen))
    return scripts


def text_transcript(sentences: Sequence[str]) -> tuple[Transcript, list[float]]:
    """The script as a word-timed transcript (one segment per sentence) and the start
    time of every sentence."""
    step = 1.0 / WORDS_PER_SECOND
    segments, starts, t = [], [], 0.0
    for sentence in sentences:
        words = []
        for token in sentence.split():
            words.append(Word(token, round(t, 3), round(t + WORD_SECONDS, 3)))
            t += step
        starts.append(words[0].start)
        segments.append(Segment(words[0].start, words[-1].end, sentence, words))
        t += SENTENCE_PAUSE
    return Transcript("en", round(t, 3), segments, "bench:text"), starts


def spoken_audio(sentences: Sequence[str], target: Path) -> list[float]:
    """The script spoken by espeak-ng into one WAV; returns every sentence's start time,
    exact from sample counts."""
    frames, starts, rate, params = [], [], 0, None
    with tempfile.TemporaryDirectory() as tmp:
        for i, sentence in enumerate(sentences):
            part = Path(tmp) / f"{i}.wav"
            subprocess.run(
                ["espeak-ng", "-v", ESPEAK_VOICE, "-s", str(ESPEAK_WPM), "-w", str(part), sentence],
                check=True,
                capture_output=True,
            )
            with wave.open(str(part), "rb") as w:
                params, rate = w.getparams(), w.getframerate()
                starts.append(sum(len(f) for f in frames) / (2 * rate))
                frames.append(w.readframes(w.getnframes()))
                frames.append(b"\0\0" * round(SENTENCE_PAUSE * rate))
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(b"".join(frames))
    return starts


def pk(reference: Sequence[int], hypothesis: Sequence[int], n: int, k: int) -> float:
    """Beeferman et al.: the share of windows of k units whose two ends are in the same
    segment in one segmentation and in different ones in the other. Segmentations are
    the unit indices where segments 2, 3, ... start."""
    ref, hyp = _segment_ids(reference, n), _segment_ids(hypothesis, n)
    windows = range(n - k)
    return sum((ref[i] == ref[i + k]) != (hyp[i] == hyp[i + k]) for i in windows) / len(windows)


def window_diff(reference: Sequence[int], hypothesis: Sequence[int], n: int, k: int) -> float:
    """Pevzner and Hearst: the share of windows of k units holding a different number of
    boundaries in the two segmentations."""

    def count(bounds: Sequence[int], i: int) -> int:
        return sum(i < b <= i + k for b in bounds)

    windows = range(n - k)
    return sum(count(reference, i) != count(hypothesis, i) for i in windows) / len(windows)


def _segment_ids(boundaries: Sequence[int], n: int) -> list[int]:
    ids, current, bounds = [], 0, set(boundaries)
    for i in range(n):
        current += i in bounds
        ids.append(current)
    return ids


def half_mean_segment(reference: Sequence[int], n: int) -> int:
    """k: half the mean reference segment length, in units (at least 1)."""
    return max(1, round(n / (len(reference) + 1) / 2))


@dataclass
class SegScore:
    pk: float
    window_diff: float
    found: int  # topics the system found
    true: int
    seconds: float = 0.0
    minutes: float = 0.0
    fell_back: bool = False  # LLM mode: the model's answer was not used


def score(script: EpisodeScript, found: Sequence[int], seconds: float, minutes: float) -> SegScore:
    n, ref = len(script.sentences), script.boundaries
    k = half_mean_segment(ref, n)
    return SegScore(
        pk(ref, found, n, k),
        window_diff(ref, found, n, k),
        len(found) + 1,
        len(ref) + 1,
        seconds,
        minutes,
    )


def nearest(times: Sequence[float], t: float) -> int:
    return min(range(len(times)), key=lambda i: abs(times[i] - t))


@dataclass
class SegRow:
    system: str
    text_input: str
    scores: list[SegScore] = field(default_factory=list)
    note: str = ""
    details: list[str] = field(default_factory=list)  # e.g. why an LLM answer was not used
    prompt_tokens: int = 0  # LLM mode: the model's own counts, over all episodes
    completion_tokens: int = 0

    def mean(self, key: str) -> float:
        return sum(getattr(s, key) for s in self.scores) / len(self.scores)

    @property
    def seconds_per_minute(self) -> float:
        minutes = sum(s.minutes for s in self.scores)
        return sum(s.seconds for s in self.scores) / minutes if minutes else 0.0


def stage_context(settings: Settings, name: str, fingerprint: str) -> StageContext:
    episode = Episode(episode_key=name, title=name, audio_url=None)
    return StageContext(settings, episode, fingerprint, ArtifactStore(settings.data_dir))


def run_segment(ctx: StageContext, starts: Sequence[float]) -> tuple[list[int], float]:
    """podmill's segment stage on the episode's transcript; returns the L1 boundaries as
    reference sentence indices (each found topic's start mapped to the nearest
    reference sentence start) and the seconds the stage took."""
    started = time.perf_counter()
    run_stage("segment", ctx)
    seconds = time.perf_counter() - started
    sentences = ctx.read_json("sentences.json")
    firsts = [first for first, _ in ctx.read_json("l1.json")[1:]]
    found = sorted({nearest(starts, sentences[i]["start"]) for i in firsts} - {0})
    return found, seconds


def segmentation_row(scripts: Sequence[EpisodeScript], settings: Settings, system: str) -> SegRow:
    row = SegRow(system, "text")
    calls = fallbacks = 0
    for script in scripts:
        ctx = stage_context(settings, script.name, f"bench-{system}")
        transcript, starts = text_transcript(script.sentences)
        write_transcript(ctx, transcript)
        found, seconds = run_segment(ctx, starts)
        row.scores.append(score(script, found, seconds, transcript.duration / 60))
        if ctx.exists("llm_usage_segment.json"):  # LLM mode: did the model's answers count?
            usage = ctx.read_json("llm_usage_segment.json")
            calls, fallbacks = calls + usage["calls"], fallbacks + usage["fallbacks"]
            row.prompt_tokens += usage["prompt_tokens"]
            row.completion_tokens += usage["completion_tokens"]
            row.details += [f"{script.name}: {n}" for n in ctx.notes if "extractive fallback" in n]
            row.scores[-1].fell_back = usage["fallbacks"] > 0
        last = row.scores[-1]
        print(  # progress: an LLM row can take many minutes on a small, shared CPU
            f"{system} {script.name}: Pk {last.pk:.3f}, {last.found}/{last.true} topics, "
            f"{last.seconds:.1f} s{', fell back' if last.fell_back else ''}",
            file=sys.stderr,
            flush=True,
        )
    if calls:
        row.note = f"{calls} calls, {fallbacks} fell back to extractive"
    return row


def spoken_row(scripts: Sequence[EpisodeScript], settings: Settings) -> SegRow:
    """Episodes spoken by espeak-ng, through podmill's transcribe and segment stages."""
    row = SegRow("extractive", f"spoken ({settings.asr.model})")
    asr_seconds = audio_seconds = 0.0
    for script in scripts:
        ctx = stage_context(settings, f"spoken-{script.name}", "bench-spoken")
        audio = settings.data_dir / f"{script.name}.wav"
        starts = spoken_audio(script.sentences, audio)
        ctx.write_json("source.json", {"kind": "audio", "path": audio.name, "duration": 0.0})
        started = time.perf_counter()
        run_stage("transcribe", ctx)
        asr_seconds += time.perf_counter() - started
        duration = ctx.read_json("transcript.json")["duration"]
        audio_seconds += duration
        found, seconds = run_segment(ctx, starts)
        row.scores.append(score(script, found, seconds, duration / 60))
    row.note = f"ASR {asr_seconds / (audio_seconds / 60):.2f} s per audio-minute"
    return row


def baseline_rows(scripts: Sequence[EpisodeScript]) -> list[SegRow]:
    one = SegRow("baseline: one topic", "text")
    even = SegRow("baseline: even split, true count", "text")
    for script in scripts:
        n, parts = len(script.sentences), len(script.topics)
        one.scores.append(score(script, [], 0.0, 0.0))
        even.scores.append(score(script, [round(n * i / parts) for i in range(1, parts)], 0, 0))
    return [one, even]


def llm_label(gguf: Path | None) -> str:
    return f"llm (local {gguf.name})" if gguf else "llm (local packaged Qwen2.5-Coder 0.5B)"


def peak_rss_gib() -> float:
    """This process's peak resident set so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def llm_rows(
    scripts: Sequence[EpisodeScript],
    data_dir: Path,
    extractive: SegRow,
    gguf: Path | None = None,
    threads: int = 0,
) -> list[SegRow]:
    """The LLM backend's segment stage with the GGUF at ``gguf`` (default: the packaged
    model), and its score on the episodes where the model's boundaries were used (beside
    the extractive score on those same episodes)."""
    label = llm_label(gguf)
    settings = Settings(
        data_dir=data_dir / (gguf.stem if gguf else "packaged"),
        topics=TopicSettings(backend="llm"),
        llm=LlmSettings(backend="local", gguf_path=gguf, threads=threads),
    )
    try:
        from podmill.ml.llm import get_llm

        started = time.perf_counter()
        get_llm(settings.llm).chat([{"role": "user", "content": "Say OK."}], max_tokens=4)
        load = time.perf_counter() - started
    except Exception as exc:  # a missing extra, a model that does not load
        return [SegRow(label, "text", note=f"not measured ({exc})")]
    row = segmentation_row(scripts, settings, "llm")
    row.system = label
    seconds = sum(s.seconds for s in row.scores)
    tokens = row.prompt_tokens + row.completion_tokens
    row.note += (
        f"; {row.prompt_tokens} prompt + {row.completion_tokens} completion tokens, "
        f"{tokens / seconds:.0f} tokens/s, {threads or os.cpu_count()} threads; "
        f"model load {load:.1f} s, not counted; "
        f"peak RSS {peak_rss_gib():.2f} GiB"
    )
    used = [i for i, s in enumerate(row.scores) if not s.fell_back]
    if not used:
        return [row]
    answered = SegRow(
        f"{label}, only where its answer was used", "text", [row.scores[i] for i in used]
    )
    same = SegRow("", "", [extractive.scores[i] for i in used])
    answered.note = f"extractive on the same episodes: Pk {same.mean('pk'):.3f}"
    return [row, answered]


# ------------------------------------------------------------------------- output


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in cpuinfo.read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, no GPU used"


def commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def render(asr_table: list[AsrRow], seg_table: list[SegRow], notes: list[str]) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run of {now} on {machine()}, podmill {commit()}, load average "
        f"{os.getloadavg()[2]:.1f} over the last 15 minutes.",
        "",
        "| model | clip | ref words | WER | s per audio-minute |",
        "|---|---|---|---|---|",
    ]
    for r in asr_table:
        speed = f"{r.seconds / (r.audio_seconds / 60):.2f}" if r.audio_seconds else ""
        lines.append(f"| {r.model} | {r.clip} | {r.ref_words} | {r.wer:.3f} | {speed} |")
    lines += [
        "",
        f"Topic segmentation, {EPISODES} synthetic episodes (seed {SEED}), unit: sentence, "
        "k = half the mean reference topic length; lower is better.",
        "",
        "| system | input | Pk | WindowDiff | topics found / true | s per episode-minute | note |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in seg_table:
        if not r.scores:
            lines.append(f"| {r.system} | {r.text_input} | – | – | – | – | {r.note} |")
            continue
        speed = f"{r.seconds_per_minute:.2f}" if r.seconds_per_minute else "–"
        lines.append(
            f"| {r.system} | {r.text_input} ({len(r.scores)} ep.) | {r.mean('pk'):.3f} | "
            f"{r.mean('window_diff'):.3f} | {r.mean('found'):.1f} / {r.mean('true'):.1f} | "
            f"{speed} | {r.note} |"
        )
    details = [f"- {r.system}, {d}" for r in seg_table for d in r.details]
    lines += ["", *notes, *(["", *details] if details else [])]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=["tiny.en", "base"])
    parser.add_argument("--skip-llm", action="store_true", help="no llm backend row")
    parser.add_argument(
        "--spoken",
        type=int,
        default=EPISODES,
        help=f"episodes also spoken by espeak-ng and transcribed (default {EPISODES}; 0 = none)",
    )
    parser.add_argument(
        "--gguf",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="llm row with this GGUF file (repeatable; default: the packaged model)",
    )
    parser.add_argument(
        "--llm-threads",
        type=int,
        default=0,
        metavar="N",
        help="llm.threads for the llm rows (default 0: all cores; 1 is faster on a busy CPU)",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    started = time.perf_counter()
    notes = []
    if not (AMI / "ami_mixture.wav").is_file():
        notes.append(f"AMI excerpt skipped: {AMI / 'ami_mixture.wav'} is absent.")
    asr_table = []
    for model in args.models:
        try:
            asr_table.extend(asr_rows(model))
        except PodmillError as exc:  # e.g. the whisper-base extra is not installed
            notes.append(f"{model}: not measured ({exc}).")
    scripts = episode_scripts()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        seg_table = [*baseline_rows(scripts)]
        extractive = segmentation_row(scripts, Settings(data_dir=data), "extractive")
        seg_table.append(extractive)
        if args.spoken and shutil.which("espeak-ng") is None:
            notes.append("Spoken episodes not measured: espeak-ng is not on PATH.")
        elif args.spoken:
            seg_table.append(spoken_row(scripts[: args.spoken], Settings(data_dir=data)))
        if args.skip_llm:
            seg_table.append(SegRow("llm", "text", note="not measured (--skip-llm)"))
        else:
            for gguf in args.gguf or [None]:
                seg_table.extend(llm_rows(scripts, data, extractive, gguf, args.llm_threads))
    notes.append(f"Whole run: {time.perf_counter() - started:.0f} s.")
    table = render(asr_table, seg_table, notes)
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
