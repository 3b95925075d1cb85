"""The episode page with long transcripts: server time and browser load-to-interactive.

One real ``podmill run`` of the demo's JFK clip makes a data dir; for each length
(1 min, 1 h, 3 h by default) a copy of it gets a synthetic transcript of that length
(150 words a minute, a sentence every ~12 words, two speakers taking turns) with its
sentences and a topic tree (an L1 every 10 min, an L2 every 2 min), written as the
pipeline writes a set (the files, then the manifest). A real ``podmill view`` serves
each copy; the bench times ``GET /view/episode/{key}`` (the server's whole answer) and,
in the system chromium, navigation start → the page's ``episode-ready`` mark (its script
has read the word times and wired the player), and counts the DOM's elements. The
baseline column is the element count one element per word would need.

    python bench/viewer.py [--minutes 1,60,180] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from podmill.domain import Segment, Transcript, Word
from podmill.sentences import split_sentences
from podmill.storage.artifacts import Artifact, ArtifactStore
from podmill.transcript_formats import to_json, to_srt, to_txt, to_vtt

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "src" / "podmill" / "demo"
VOCABULARY = (
    "the rover drives across an ancient lake bed while engineers plan tomorrow's route and "
    "scientists read the rocks for signs of water coffee tastes better with fresh beans a "
    "good grinder and patience marathon training means slow miles rest days and new shoes"
).split()
WORDS_PER_SECOND = 2.5  # 150 a minute


def synthetic_transcript(seconds: float) -> Transcript:
    words: list[Word] = []
    t, n = 0.0, 0
    while t < seconds:
        text = VOCABULARY[n % len(VOCABULARY)]
        end_of_sentence = n % 12 == 11
        speaker = f"SPEAKER_{(n // 120) % 2}"
        words.append(Word(text + ("." if end_of_sentence else ""), t, t + 0.3, 0.9, speaker))
        t += 1 / WORDS_PER_SECOND + (0.3 if end_of_sentence else 0.0)
        n += 1
    segments = [
        Segment(chunk[0].start, chunk[-1].end, " ".join(w.text for w in chunk), chunk)
        for chunk in (words[i : i + 24] for i in range(0, len(words), 24))
    ]
    return Transcript("en", seconds, segments, "bench:synthetic")


def node(nid: str, level: int, words: list[Word], a: int, b: int, title: str) -> dict[str, Any]:
    text = " ".join(w.text for w in words[a : min(b, a + 40)])
    return {
        "id": nid,
        "level": level,
        "start": words[a].start,
        "end": words[b - 1].end,
        "word_start": a,
        "word_end": b,
        "title": title,
        "summary": text,
        "key_points": [" ".join(w.text for w in words[a + k : a + k + 15]) for k in (0, 15, 30)],
        "keywords": VOCABULARY[:3],
        "children": [],
    }


def synthetic_tree(key: str, fingerprint: str, t: Transcript) -> dict[str, Any]:
    words = t.words
    starts = [w.start for w in words]

    def index_at(seconds: float) -> int:
        return next((i for i, s in enumerate(starts) if s >= seconds), len(words))

    root = node("0", 0, words, 0, len(words), "Synthetic episode")
    l1_len, l2_len = 600.0, 120.0
    for i, at in enumerate(range(0, int(t.duration), int(l1_len))):
        a, b = index_at(at), index_at(at + l1_len)
        if a >= b:
            continue
        l1 = node(f"{i + 1}", 1, words, a, b, f"Part {i + 1}")
        for j, sub in enumerate(range(at, min(at + int(l1_len), int(t.duration)), int(l2_len))):
            c, d = index_at(sub), index_at(sub + l2_len)
            if c < d:
                l1["children"].append(
                    node(f"{i + 1}.{j + 1}", 2, words, c, d, f"Part {i + 1}.{j + 1}")
                )
        if len(l1["children"]) < 2:
            l1["children"] = []
        root["children"].append(l1)
    return {
        "episode_key": key,
        "fingerprint": fingerprint,
        "title": "Synthetic episode",
        "duration": t.duration,
        "transcript_source": t.source,
        "root": root,
    }


def write_set(data: Path, key: str, fingerprint: str, seconds: float) -> int:
    """Replace the set's transcript, sentences and tree with a synthetic one of
    ``seconds``, then its manifest (the last write, as publish does). Returns the words."""
    store = ArtifactStore(data)
    old = store.read_json(key, fingerprint, Artifact.MANIFEST)
    t = synthetic_transcript(seconds)
    store.write_text(key, fingerprint, Artifact.TRANSCRIPT_JSON, to_json(t))
    store.write_text(key, fingerprint, Artifact.TRANSCRIPT_SRT, to_srt(t))
    store.write_text(key, fingerprint, Artifact.TRANSCRIPT_VTT, to_vtt(t))
    store.write_text(key, fingerprint, Artifact.TRANSCRIPT_TXT, to_txt(t))
    store.write_json(
        key, fingerprint, Artifact.SENTENCES, [s.to_dict() for s in split_sentences(t)]
    )
    store.write_json(key, fingerprint, Artifact.TOPICS, synthetic_tree(key, fingerprint, t))
    store.write_manifest(key, fingerprint, {k: v for k, v in old.items() if k != "artifacts"})
    return len(t.words)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_view(data: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "podmill", "view", "--data-dir", str(data), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"podmill view exited:\n{log.read_text()}")
        try:
            if httpx.get(url + "/", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"podmill view did not answer:\n{log.read_text()}")


BROWSER_TIMES = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const ready = performance.getEntriesByName('episode-ready')[0];
  return {ttfb: nav.responseStart, html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd,
          ready: ready ? ready.startTime : null,
          elements: document.getElementsByTagName('*').length,
          sentences: document.querySelectorAll('#ep-text span.s').length};
}"""


def measure(url: str, key: str, repeat: int, browser: Any) -> dict[str, Any]:
    page_url = f"{url}/view/episode/{key}"
    httpx.get(page_url, timeout=60)  # warm: imports, the first database connection
    server = []
    size = 0
    for _ in range(repeat):
        began = time.perf_counter()
        answer = httpx.get(page_url, timeout=60)
        server.append((time.perf_counter() - began) * 1000)
        size = len(answer.content)
        assert answer.status_code == 200, answer.text[:500]
    runs = []
    for _ in range(repeat):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(page_url)
        page.wait_for_function("document.documentElement.dataset.episodeReady === '1'")
        runs.append(page.evaluate(BROWSER_TIMES))
        context.close()
    return {
        "server_ms": statistics.median(server),
        "bytes": size,
        "ready_ms": statistics.median(r["ready"] for r in runs),
        "dcl_ms": statistics.median(r["dcl"] for r in runs),
        "elements": runs[-1]["elements"],
        "sentences": runs[-1]["sentences"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", default="1,60,180", help="transcript lengths, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("needs the system chromium: apt install chromium")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="podmill-bench-viewer-") as tmp:
        base = Path(tmp) / "base"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "podmill",
                "run",
                str(DEMO / "jfk.flac"),
                "--data-dir",
                str(base),
                "--json",
            ],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise SystemExit(f"podmill run failed:\n{run.stderr}")
        line = json.loads(next(x for x in run.stdout.splitlines() if x.startswith("{")))
        key = line["episode_key"]
        fingerprint = Path(line["artifacts"]["topics"]).parent.name
        rows = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for minutes in (float(m) for m in args.minutes.split(",")):
                data = Path(tmp) / f"data-{minutes:g}"
                shutil.copytree(base, data)
                words = write_set(data, key, fingerprint, minutes * 60)
                proc, url = start_view(data, Path(tmp) / f"view-{minutes:g}.log")
                try:
                    rows.append((minutes, words, measure(url, key, args.repeat, browser)))
                finally:
                    proc.terminate()
                    proc.wait(timeout=15)
            browser.close()
    print(
        f"{'length':>8} {'words':>7} {'sentences':>9} {'HTML KiB':>9} {'server ms':>9} "
        f"{'DCL ms':>7} {'ready ms':>8} {'elements':>8} {'per-word':>8} {'ratio':>6}"
    )
    for minutes, words, m in rows:
        per_word = m["elements"] - m["sentences"] + words  # one element per word instead
        print(
            f"{minutes:>6g} m {words:>7} {m['sentences']:>9} {m['bytes'] / 1024:>9.0f} "
            f"{m['server_ms']:>9.1f} {m['dcl_ms']:>7.0f} {m['ready_ms']:>8.0f} "
            f"{m['elements']:>8} {per_word:>8} {per_word / m['elements']:>5.1f}x"
        )
    print(
        f"medians of {args.repeat}; server = the whole GET answered, ready = navigation start "
        "to the page script's episode-ready mark; per-word = the elements one per word needs"
    )


if __name__ == "__main__":
    main()
