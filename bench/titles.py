"""Titles: podmill's chapters (boundaries and titles) against the publisher's, beside baselines.

The episodes are the labelled corpus's publisher transcripts (``tests/fixtures/corpus``,
docs/corpus.md: 18 episodes in WebVTT, SRT and Podcasting 2.0 JSON, 3-4 chapters each).
A chapter's reference title is its part of the episode title (``"Satellites in a storm,
silicon batteries and passkeys"`` is three chapters: split at ", " and at the last
" and "), its reference span the labelled topic. podmill sees the transcript file only,
never the episode title (the ``Episode`` it gets is titled with the guid).

Each podmill system runs the real pipeline, through ``run_stage`` on a ``StageContext``
as the engine's workers do, from ``transcribe`` (the feed transcript parsed) to
``synthesize`` (the topic tree); its chapters are the tree's L1 nodes. Measured:

1. **Boundary F1 at ±15 s**: chapter starts after the first, matched one-to-one
   (greedily, closest pair first) within 15 s; micro-averaged over all episodes.
2. **Title similarity**: for each reference chapter, the cosine (podmill's MiniLM,
   ``podmill.ml.embed``) between its reference title and the title of the produced
   chapter that shares the most time with it; the mean over all reference chapters.
3. **Readable** and **keyword-join**: the share of produced titles that
   :func:`title_form` calls a noun phrase or short clause, and the share that are two
   or three 1-2 word fragments joined by "and" ("Solar storm and satellites").

Systems: podmill extractive; podmill LLM with the local model (``llm-local`` extra) on
the first ``--llm-episodes``; podmill LLM on an OpenAI-compatible server
(``--llm-url``, ``--llm-model``); and baselines that need no model: even split with the
true chapter count (boundaries only), and on the reference chapters the first words of
the chapter, its two most frequent content words joined by "and", and another
episode's reference title (the chance level of the similarity).

    python bench/titles.py [--episodes N] [--only GUID,...] [--skip-llm] [--llm-episodes N]
                           [--llm-url URL --llm-model NAME] [--set KEY=VALUE ...]
                           [--data-dir DIR] [--out FILE]

``--set topics.window_sentences=4`` (repeatable) overrides one of podmill's settings
for every podmill system. Prints the table as markdown; docs/quality.md ("Titles")
explains every number.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podmill.domain import Episode, TopicNode
from podmill.pipeline import keyphrases
from podmill.pipeline.context import StageContext
from podmill.pipeline.dag import STAGES
from podmill.pipeline.stages import run_stage
from podmill.settings import Settings
from podmill.storage.artifacts import Artifact, ArtifactStore

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the corpus's labels, as the tests read them
sys.path.insert(0, str(ROOT / "bench"))

from quality import commit, machine  # noqa: E402

from support.corpus import CORPUS_DIR, LabelledEpisode, load_corpus  # noqa: E402

TOLERANCE = 15.0  # seconds: a produced chapter start within this of a reference one hits
STRICT = 5.0  # the same, strict: a chapter that starts a sentence or two late misses
MAX_TITLE_WORDS = 8
FIRST_WORDS = 6  # the first-words baseline's title length
LLM_EPISODES = 3
# From transcribe (the publisher's file parsed) to synthesize (topics.json): the stages
# that build the tree, in the graph's order.
TREE_STAGES = ("transcribe", *(s.name for s in STAGES if s.tree))


# ------------------------------------------------------------------------ metrics


def boundary_matches(
    reference: Sequence[float], found: Sequence[float], tolerance: float = TOLERANCE
) -> int:
    """How many reference boundaries a found boundary hits: pairs within ``tolerance``
    seconds, matched one-to-one, closest pair first (each boundary counts once)."""
    pairs = sorted(
        (abs(r - f), i, j)
        for i, r in enumerate(reference)
        for j, f in enumerate(found)
        if abs(r - f) <= tolerance
    )
    used_ref: set[int] = set()
    used_found: set[int] = set()
    for _, i, j in pairs:
        if i not in used_ref and j not in used_found:
            used_ref.add(i)
            used_found.add(j)
    return len(used_ref)


def f1(matched: int, n_reference: int, n_found: int) -> float:
    """F1 of ``matched`` hits; nothing to find and nothing found is a perfect 1."""
    if n_reference == 0 and n_found == 0:
        return 1.0
    if matched == 0:
        return 0.0
    precision, recall = matched / n_found, matched / n_reference
    return 2 * precision * recall / (precision + recall)


_DETERMINERS = frozenset(
    "a an the this that these those my your our their his her its some any every no".split()
)
# A title does not end on one of these: it was cut off mid-phrase.
_FUNCTION_WORDS = _DETERMINERS | frozenset(
    """of to in on at for with by from into onto about over under than as and or but nor
    so if because while is are was were be been being has have had do does did will would
    can could should may might must not very which who whom whose""".split()
)
# Nor does it open like speech: a discourse marker or a speaker's pronoun.
_SPOKEN_OPENERS = frozenset(
    """so and but or well now okay ok yeah yes um uh like let let's i i'm i've we we're
    we've you you're you've next finally then also to today""".split()
)
# Clauses spliced with a comma and a conjunction are speech, not a title (", and" is
# left alone: it ends a list).
_SPLICE = re.compile(r",\s+(?:but|so|because|which|who|where)\b", re.IGNORECASE)
_WORD = re.compile(r"[\w'’&-]+")
_JOINED = re.compile(r"^(?P<parts>.+?)\s+(?:and|&)\s+(?P<last>[^,]+)$", re.IGNORECASE)


def _words(title: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(title)]


def is_keyword_join(title: str) -> bool:
    """Whether ``title`` is two or three keyword fragments joined by "and": "A and B" or
    "A, B and C" where every part has one or two words and none opens with a
    determiner ("Solar storm and satellites"; not "The storm and its satellites")."""
    match = _JOINED.match(title.strip().rstrip(".!?:;"))
    if match is None:
        return False
    parts = [*re.split(r",\s*", match["parts"].rstrip(",")), match["last"]]
    if not 2 <= len(parts) <= 3:
        return False
    for part in parts:
        words = _words(part)
        if not 1 <= len(words) <= 2 or words[0] in _DETERMINERS:
            return False
    return True


def title_form(title: str) -> str:
    """What a title reads as; ``"readable"`` is a noun phrase or a short clause.

    In order: ``"empty"``; ``"keyword-join"`` (:func:`is_keyword_join`); ``"too long"``
    (over 8 words: a sentence, not a title); ``"spoken"`` (opens with a discourse marker
    or a speaker's pronoun, "So the storm", "We talked about", "To finish", or splices
    clauses with a comma and a conjunction, "Staying in the ocean, but going");
    ``"cut off"`` (ends with "…" or on a function word: "The export rules for"); else
    ``"readable"``. A heuristic without a parser: it cannot tell "Salt and pepper" (a
    dish) from a keyword pair, nor "Farmers are bracing as bird flu" from a clause.
    """
    text = title.strip().rstrip(".!?:;")
    words = _words(text)
    if not words:
        return "empty"
    if is_keyword_join(text):
        return "keyword-join"
    if len(words) > MAX_TITLE_WORDS:
        return "too long"
    if words[0] in _SPOKEN_OPENERS or _SPLICE.search(text):
        return "spoken"
    if title.strip().endswith(("…", "...", ",")) or words[-1] in _FUNCTION_WORDS:
        return "cut off"
    return "readable"


def reference_titles(episode_title: str) -> list[str]:
    """The chapter titles an episode title lists: ``"A, B and C"`` -> ``[A, B, C]``."""
    *head, last = episode_title.split(", ")
    return [*head, *last.rsplit(" and ", 1)]


@dataclass(frozen=True)
class Chapter:
    start: float
    end: float
    title: str


def overlap(a: Chapter, b: Chapter) -> float:
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))


def title_pairs(reference: Sequence[Chapter], found: Sequence[Chapter]) -> list[tuple[str, str]]:
    """(reference title, produced title) for every reference chapter: the produced
    chapter that shares the most time with it (the first of equals; '' if none does)."""
    pairs = []
    for ref in reference:
        best = max(found, key=lambda c: overlap(ref, c), default=None)
        pairs.append((ref.title, best.title if best and overlap(ref, best) > 0 else ""))
    return pairs


# ------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class TitledEpisode:
    labels: LabelledEpisode
    chapters: list[Chapter]  # the publisher's: labelled spans, titles from the episode title
    texts: list[str]  # each chapter's words, for the baselines

    @property
    def guid(self) -> str:
        return self.labels.guid


def corpus_episodes() -> list[TitledEpisode]:
    """The corpus episodes that have a publisher transcript, one feed after another
    (tech-01, lab-01, world-01, tech-02, ...) so that any prefix spans all three feeds."""
    episodes = []
    for e in load_corpus().episodes:
        if e.format == "audio":  # spoken by espeak-ng: ASR input, bench/quality.py's subject
            continue
        titles = reference_titles(e.title)
        if len(titles) != len(e.topics):
            raise SystemExit(
                f"{e.guid}: {len(titles)} titles in {e.title!r}, {len(e.topics)} topics"
            )
        chapters = [Chapter(t.start, t.end, title) for t, title in zip(e.topics, titles)]
        episodes.append(TitledEpisode(e, chapters, [t.text for t in e.topics]))
    rank = {g: i for i, g in enumerate(dict.fromkeys(e.labels.feed for e in episodes))}
    number = {e.guid: int(e.guid.rsplit("-", 1)[1]) for e in episodes}
    return sorted(episodes, key=lambda e: (number[e.guid], rank[e.labels.feed]))


# ------------------------------------------------------------------------ systems


@dataclass
class Scores:
    matched: int = 0
    matched_strict: int = 0
    n_reference: int = 0  # boundaries (chapter starts after the first)
    n_found: int = 0
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (reference, produced)
    titles: list[str] = field(default_factory=list)  # every produced title
    seconds: float = 0.0
    episodes: int = 0

    def add(self, episode: TitledEpisode, found: Sequence[Chapter], seconds: float = 0.0) -> None:
        ref = [c.start for c in episode.chapters[1:]]
        hyp = [c.start for c in found[1:]]
        self.matched += boundary_matches(ref, hyp)
        self.matched_strict += boundary_matches(ref, hyp, STRICT)
        self.n_reference += len(ref)
        self.n_found += len(hyp)
        self.pairs += title_pairs(episode.chapters, found)
        self.titles += [c.title for c in found]
        self.seconds += seconds
        self.episodes += 1


@dataclass
class Row:
    system: str
    boundaries: str  # where its chapter spans come from
    scores: Scores = field(default_factory=Scores)  # no episodes: not measured
    similarity: float | None = None
    has_titles: bool = True
    note: str = ""
    details: list[str] = field(default_factory=list)


def apply_settings(settings: Settings, assignments: Sequence[str]) -> Settings:
    """``settings`` with ``KEY=VALUE`` overrides (dotted keys; a value is read as JSON
    when it parses, else as a string). An unknown key is an error, not ignored."""
    data = settings.model_dump()
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        *parents, leaf = key.strip().split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not sep or not isinstance(node, dict) or leaf not in node:
            raise SystemExit(
                f"--set {assignment!r}: no setting {key.strip()!r} "
                "(KEY=VALUE with a dotted key, as `podmill config show` lists them)"
            )
        try:
            node[leaf] = json.loads(raw)
        except json.JSONDecodeError:
            node[leaf] = raw
    return Settings.model_validate(data)


def fingerprint(settings: Settings, name: str) -> str:
    """The artifact set's name: the system and its settings, so that a kept
    ``--data-dir`` reuses a stage's outputs only for the same settings."""
    effective = settings.model_dump(mode="json", exclude={"data_dir"})
    digest = hashlib.sha256(json.dumps(effective, sort_keys=True).encode()).hexdigest()
    return f"bench-titles-{name}-{digest[:10]}"


def podmill_chapters(
    settings: Settings, episode: TitledEpisode, name: str
) -> tuple[StageContext, bool]:
    """The tree stages on the episode's publisher transcript; returns the context whose
    artifacts hold the result (``topics.json``), and whether every stage ran (none was
    already done in a kept ``--data-dir``)."""
    labels = episode.labels
    # Titled with the guid: the real title lists the reference chapter titles.
    ep = Episode(episode_key=labels.guid, title=labels.guid, audio_url=None)
    ctx = StageContext(settings, ep, fingerprint(settings, name), ArtifactStore(settings.data_dir))
    media = ctx.store.media_dir(ctx.key)
    media.mkdir(parents=True, exist_ok=True)
    target = media / Path(labels.media).name
    shutil.copyfile(CORPUS_DIR / labels.media, target)
    ctx.write_json(
        Artifact.SOURCE,
        {
            "kind": "feed_transcript",
            "url": target.name,
            "mime_type": labels.mime_type,
            "path": str(target.relative_to(settings.data_dir)),
            "duration": labels.duration,
        },
    )
    ran = [run_stage(stage, ctx) for stage in TREE_STAGES]
    return ctx, all(ran)


def chapters_of(ctx: StageContext) -> list[Chapter]:
    root = TopicNode.from_dict(ctx.read_json(Artifact.TOPICS)["root"])
    return [Chapter(n.start, n.end, n.title) for n in root.children]


def podmill_row(
    episodes: Sequence[TitledEpisode], settings: Settings, system: str, name: str
) -> Row:
    row = Row(system, "podmill")
    calls = fallbacks = reused = 0
    for episode in episodes:
        started = time.perf_counter()
        ctx, fresh = podmill_chapters(settings, episode, name)
        found = chapters_of(ctx)
        row.scores.add(episode, found, time.perf_counter() - started)
        reused += not fresh
        if ctx.exists(Artifact.LLM_USAGE):  # LLM mode: did the model's answers count?
            total = ctx.read_json(Artifact.LLM_USAGE)["total"]
            calls, fallbacks = calls + total["calls"], fallbacks + total["fallbacks"]
            row.details += [f"{episode.guid}: {n}" for n in ctx.notes if "extractive fallback" in n]
    if calls:
        row.note = f"{calls} LLM calls, {fallbacks} fell back to extractive"
    if reused:
        reuse = f"{reused} episodes' stages (some or all) reused from --data-dir: seconds too low"
        row.note = "; ".join(filter(None, [row.note, reuse]))
    return row


def llm_row(episodes: Sequence[TitledEpisode], settings: Settings, system: str, name: str) -> Row:
    """An LLM system's row, or a row saying why it was not measured."""
    try:
        from podmill.ml.llm import get_llm

        started = time.perf_counter()
        get_llm(settings.llm).chat([{"role": "user", "content": "Say OK."}], max_tokens=4)
        load = time.perf_counter() - started
    except Exception as exc:  # a missing extra, a model that does not load, no server
        return Row(system, "podmill", note=f"not measured ({exc})")
    row = podmill_row(episodes, settings, system, name)
    row.note = "; ".join(
        filter(None, [row.note, f"first call (model load) {load:.1f} s, not counted"])
    )
    return row


def first_words(text: str, n: int = FIRST_WORDS) -> str:
    return " ".join(text.split()[:n]).rstrip(",;:")


def keyword_pair(text: str) -> str:
    """The chapter's two most frequent content words (podmill's candidate rule for
    one-word phrases), joined by "and"; the earlier-said word first among equals."""
    counts, surfaces = keyphrases.candidates([text], max_n=1)
    order = {w: i for i, w in reversed(list(enumerate(_words(text))))}
    top = sorted(counts, key=lambda w: (-counts[w], order.get(w, len(order))))[:2]
    words = [surfaces[w] for w in top]
    return keyphrases.title_from(words)


def unrelated(episodes: Sequence[TitledEpisode], n: int) -> TitledEpisode | None:
    """The next episode after the ``n``-th (wrapping round) that shares no story with it:
    the corpus tells one story in several feeds, and a chance level must not hit it.
    None when there is none (a run of one episode)."""
    stories = {t.story for t in episodes[n].labels.topics} - {None}
    for step in range(1, len(episodes)):
        other = episodes[(n + step) % len(episodes)]
        if not stories & {t.story for t in other.labels.topics}:
            return other
    return None


def baseline_rows(episodes: Sequence[TitledEpisode]) -> list[Row]:
    even = Row("baseline: even split, true count", "even split", has_titles=False)
    firsts = Row(f"baseline: first {FIRST_WORDS} words", "reference")
    pairs = Row("baseline: top keyword pair", "reference")
    chance = Row("chance: another episode's reference title", "reference")
    for n, episode in enumerate(episodes):
        duration, k = episode.labels.duration, len(episode.chapters)
        edges = [duration * i / k for i in range(k + 1)]
        even.scores.add(episode, [Chapter(a, b, "") for a, b in zip(edges, edges[1:])])
        other = unrelated(episodes, n)
        rows = [
            (firsts, [first_words(text) for text in episode.texts]),
            (pairs, [keyword_pair(text) for text in episode.texts]),
        ]
        if other is not None:
            rows.append((chance, [other.chapters[i % len(other.chapters)].title for i in range(k)]))
        for row, titles in rows:
            retitled = [Chapter(c.start, c.end, t) for c, t in zip(episode.chapters, titles)]
            row.scores.add(episode, retitled)
    if not chance.scores.episodes:
        chance.note = "not measured: no episode without a shared story in this run"
    return [even, firsts, pairs, chance]


def score_titles(rows: Sequence[Row]) -> None:
    """Every row's title similarity, in one embedding pass."""
    from podmill.ml.embed import embed

    texts = sorted({t for r in rows if r.has_titles for pair in r.scores.pairs for t in pair})
    vectors = dict(zip(texts, embed(texts))) if texts else {}
    for row in rows:
        if row.has_titles and row.scores.pairs:
            sims = [
                float(vectors[ref] @ vectors[hyp]) if hyp else 0.0 for ref, hyp in row.scores.pairs
            ]
            row.similarity = sum(sims) / len(sims)


# ------------------------------------------------------------------------- output


def render(rows: Sequence[Row], notes: Sequence[str], first_chapters: int) -> str:
    import datetime
    import os

    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"Run of {now} on {machine()}, podmill {commit()}, load average "
        f"{os.getloadavg()[2]:.1f} over the last 15 minutes.",
        "",
        f"| system | boundaries | episodes | boundary F1 ±{TOLERANCE:g} s (±{STRICT:g} s) "
        "| chapters per episode, found / true | title similarity | readable | keyword-join "
        "| s per episode | note |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r.scores
        if not s.episodes:
            lines.append(f"| {r.system} | {r.boundaries} | – | – | – | – | – | – | – | {r.note} |")
            continue
        boundary = "(given)"
        if r.boundaries != "reference":
            loose = f1(s.matched, s.n_reference, s.n_found)
            boundary = f"{loose:.3f} ({f1(s.matched_strict, s.n_reference, s.n_found):.3f})"
        found = f"{1 + s.n_found / s.episodes:.1f} / {1 + s.n_reference / s.episodes:.1f}"
        sim = readable = joined = "–"
        if r.has_titles and s.titles:
            forms = [title_form(t) for t in s.titles]
            sim = f"{r.similarity:.3f}" if r.similarity is not None else "–"
            readable = f"{forms.count('readable') / len(forms):.0%}"
            joined = f"{forms.count('keyword-join') / len(forms):.0%}"
        speed = f"{s.seconds / s.episodes:.1f}" if s.seconds else "–"
        lines.append(
            f"| {r.system} | {r.boundaries} | {s.episodes} | {boundary} | {found} | {sim} | "
            f"{readable} | {joined} | {speed} | {r.note} |"
        )
    examples = [r for r in rows if r.has_titles and r.scores.pairs]
    if examples:
        lines += ["", "First episode's titles (reference → produced):", ""]
        for r in examples:
            shown = "; ".join(
                f"{ref} → {hyp or '–'}" for ref, hyp in r.scores.pairs[:first_chapters]
            )
            lines.append(f"- {r.system}: {shown}")
    details = [f"- {r.system}, {d}" for r in rows for d in r.details]
    lines += ["", *notes, *(["", *details] if details else [])]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, help="only the first N corpus episodes")
    parser.add_argument(
        "--only", help="only these corpus episodes (comma-separated guids, e.g. lab-01,tech-02)"
    )
    parser.add_argument("--skip-llm", action="store_true", help="no local LLM row")
    parser.add_argument(
        "--llm-episodes",
        type=int,
        default=LLM_EPISODES,
        help=f"episodes for each LLM row (default {LLM_EPISODES})",
    )
    parser.add_argument(
        "--llm-url", help="an OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1"
    )
    parser.add_argument("--llm-model", help="the model name that server knows")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one of podmill's settings (dotted key), e.g. topics.window_sentences=4",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the artifacts here (default: a temporary directory); a rerun with the "
        "same settings reuses every stage already done, as podmill does",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    started = time.perf_counter()
    episodes = corpus_episodes()
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - {e.guid for e in episodes}
        if unknown:
            raise SystemExit(f"--only: no transcript episode {', '.join(sorted(unknown))}")
        episodes = [e for e in episodes if e.guid in wanted]
    episodes = episodes[: args.episodes]
    notes = [
        f"{len(episodes)} corpus episodes with a publisher transcript (the 3 spoken ones are "
        "left out); reference titles: the episode title split at ', ' and ' and '."
    ]
    if args.assignments:
        notes.append("Settings for the podmill rows: " + ", ".join(args.assignments) + ".")
    with contextlib.ExitStack() as stack:
        tmp = args.data_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))

        def settings(name: str, *extra: str) -> Settings:
            base = Settings(data_dir=tmp / name)
            return apply_settings(base, [*extra, *args.assignments])

        base = settings("extractive")  # an unknown --set key stops here, before any work
        rows = [podmill_row(episodes, base, "podmill extractive", "extractive")]
        few = episodes[: args.llm_episodes]
        llm_rows = []
        if args.skip_llm:
            rows.append(Row("podmill llm (local)", "podmill", note="not measured (--skip-llm)"))
        else:
            local = settings("llm-local", "topics.backend=llm", "llm.backend=local")
            model = local.llm.gguf_path.name if local.llm.gguf_path else local.llm.local_model
            llm_rows.append(llm_row(few, local, f"podmill llm (local {model})", "llm-local"))
        if args.llm_url:
            server = settings(
                "llm-server",
                "topics.backend=llm",
                "llm.backend=openai",
                f"llm.base_url={args.llm_url}",
                *([f"llm.model={args.llm_model}"] if args.llm_model else []),
            )
            model = server.llm.model
            llm_rows.append(
                llm_row(few, server, f"podmill llm ({model} at {args.llm_url})", "llm-server")
            )
        if any(r.scores.episodes for r in llm_rows):
            same = Row(f"podmill extractive, the same {len(few)} episodes", "podmill")
            for episode in few:  # already computed: the stages are skipped, only read
                ctx, _ = podmill_chapters(base, episode, "extractive")
                same.scores.add(episode, chapters_of(ctx))
            rows += [same, *llm_rows]
        else:
            rows += llm_rows
        rows += baseline_rows(episodes)
        score_titles(rows)
    notes.append(f"Whole run: {time.perf_counter() - started:.0f} s.")
    table = render(rows, notes, len(episodes[0].chapters))
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
