"""The stage functions. Each reads its inputs from the episode's artifact directory and
writes its outputs there (atomically), so any stage can run in any process that sees the
data directory: the embedded runner today, durable workers later.
"""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from podmill import transcript_formats
from podmill.domain import TopicNode, Transcript
from podmill.errors import PodmillError
from podmill.feeds import transcripts as feed_transcripts
from podmill.feeds.download import download, fetch_bytes
from podmill.pipeline import keypoints, llm_topics, outline, topics
from podmill.pipeline.context import StageContext
from podmill.sentences import Sentence, sentences_from_dicts, split_sentences
from podmill.storage.artifacts import Artifact

# --------------------------------------------------------------------------- fetch


def fetch(ctx: StageContext) -> None:
    """Get the episode's input: a publisher transcript (preferred) or the audio.

    Every ``podcast:transcript`` link is a candidate, tried in :func:`rank_transcripts`
    order; one that fails to fetch or parse, or covers too little of the audio
    (``feed_transcripts``), falls through to the next, then to ASR. Each try is a
    step note: ``feed transcript N/M URL (format): outcome``.
    """
    ep = ctx.episode
    audio: dict[str, Any] | None = None
    if ctx.settings.prefer_feed_transcripts and ep.transcripts:
        source, audio = _feed_transcript(ctx)
        if source is not None:
            ctx.write_json(Artifact.SOURCE, source)
            return
    if not ep.audio_url and ep.enclosure_problem:
        raise PodmillError(
            f"episode {ep.title!r} has no usable podcast:transcript and no audio: "
            f"{ep.enclosure_problem}"
        )
    if not ep.audio_url:
        raise PodmillError(
            "episode has no audio enclosure and no usable podcast:transcript; nothing to process"
        )
    ctx.write_json(Artifact.SOURCE, audio or _fetch_audio(ctx, ep.audio_url))


def _fetch_audio(ctx: StageContext, url: str) -> dict[str, Any]:
    """Download the enclosure and probe its duration: the ``audio`` source."""
    media = ctx.store.media_dir(ctx.key)
    media.mkdir(parents=True, exist_ok=True)
    suffix = Path(url.split("?")[0]).suffix.lower()[:6] or ".audio"
    got = download(
        url, media / f"audio{suffix}", ctx.settings, allow_file_urls=ctx.episode.allow_file_urls
    )
    from podmill.audio import probe_duration

    try:
        duration = probe_duration(got.path)
    except Exception:
        got.path.unlink(missing_ok=True)  # undecodable audio is not kept
        raise
    return {
        "kind": "audio",
        "url": url,
        "path": str(got.path.relative_to(ctx.settings.data_dir)),
        "sha256": got.sha256,
        "size": got.size,
        "format": got.format,
        "content_type": got.content_type,
        "duration": duration,
    }


def _feed_transcript(ctx: StageContext) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The first usable feed transcript's source (None: use ASR), and the audio source
    when the coverage check had to download the audio to learn its duration."""
    ep = ctx.episode
    links = feed_transcripts.rank_transcripts(ep.transcripts)
    audio: dict[str, Any] | None = None
    duration = ep.duration
    failure: PodmillError | None = None
    for n, link in enumerate(links, start=1):
        fmt = feed_transcripts.transcript_format(link.mime_type, link.url) or "unknown format"
        tried = f"feed transcript {n}/{len(links)} {link.url} ({fmt})"
        try:
            body, mime, final_url = _fetch_transcript(ctx, link.url, link.mime_type)
            transcript = feed_transcripts.parse_transcript(body, mime, url=final_url)
        except PodmillError as exc:
            failure = exc
            ctx.notes.append(f"{tried}: unusable: {exc}")
            continue
        problem = _coverage_problem(ctx, transcript, duration)
        if (
            problem is None
            and duration is None
            and ep.audio_url
            and _coverage_checked(ctx, transcript)
        ):
            # The feed does not say how long the episode is: the audio does.
            try:
                audio = _fetch_audio(ctx, ep.audio_url)
                duration = float(audio["duration"])
            except PodmillError as exc:
                ctx.notes.append(f"{tried}: coverage not checked, the audio failed: {exc}")
            problem = _coverage_problem(ctx, transcript, duration)
        if problem is not None:
            failure = PodmillError(f"feed transcript {link.url} {problem}")
            ctx.notes.append(f"{tried}: {problem}")
            continue
        ctx.notes.append(f"{tried}: used{_coverage_said(transcript, duration)}")
        return _keep_transcript(ctx, link.url, mime, body, duration), audio
    if not ep.audio_url and failure is not None:
        # A failed step keeps no notes: the tries go into its error.
        tries = "; ".join(note.removeprefix("feed transcript ") for note in ctx.notes)
        no_audio = "it has no audio enclosure to transcribe instead"
        if ep.enclosure_problem:
            no_audio = f"{ep.title!r} has no audio instead ({ep.enclosure_problem})"
        raise PodmillError(
            f"none of the episode's {len(links)} podcast:transcript link(s) is usable and "
            f"{no_audio}; tried {tries}"
        ) from failure
    ctx.notes.append(f"no usable feed transcript ({len(links)} tried); using ASR")
    return None, audio


def _fetch_transcript(
    ctx: StageContext, url: str, mime: str | None
) -> tuple[bytes, str | None, str]:
    body, content_type, final_url = fetch_bytes(
        url, ctx.settings, allow_file_urls=ctx.episode.allow_file_urls
    )
    return body, mime or content_type, final_url


def _keep_transcript(
    ctx: StageContext, url: str, mime: str | None, body: bytes, duration: float | None
) -> dict[str, Any]:
    ext = mimetypes.guess_extension((mime or "").split(";")[0]) or ".txt"
    media = ctx.store.media_dir(ctx.key)
    media.mkdir(parents=True, exist_ok=True)
    target = media / f"feed-transcript{ext}"
    from podmill.storage.artifacts import atomic_write_bytes

    atomic_write_bytes(target, body)
    return {
        "kind": "feed_transcript",
        "url": url,
        "mime_type": mime,
        "path": str(target.relative_to(ctx.settings.data_dir)),
        "duration": duration,
    }


def _coverage_checked(ctx: StageContext, transcript: Transcript) -> bool:
    # Estimated times are spread over the audio by construction: nothing to check.
    return ctx.settings.feed_transcripts.min_coverage > 0 and "estimated" not in transcript.source


def _coverage_problem(
    ctx: StageContext, transcript: Transcript, duration: float | None
) -> str | None:
    """Why ``transcript`` covers clearly less than the audio, or None when it does not
    (or when the audio's duration is unknown)."""
    cfg = ctx.settings.feed_transcripts
    if not _coverage_checked(ctx, transcript) or not transcript.segments:
        return None
    first = min(s.start for s in transcript.segments)
    last = max(s.end for s in transcript.segments)
    if first > cfg.max_start_gap_seconds:
        return (
            f"its first cue starts at {first:.1f} s, later than "
            f"feed_transcripts.max_start_gap_seconds = {cfg.max_start_gap_seconds:g}; "
            "using ASR (set feed_transcripts.min_coverage = 0 to use it anyway)"
        )
    if not duration:
        return None
    share = max(0.0, min(last, duration) - first) / duration
    if share < cfg.min_coverage:
        return (
            f"covers {share:.0%} of the {duration:.0f} s audio ({first:.0f}-{last:.0f} s), "
            f"under feed_transcripts.min_coverage = {cfg.min_coverage:g}; using ASR "
            "(set feed_transcripts.min_coverage = 0 to use it anyway)"
        )
    return None


def _coverage_said(transcript: Transcript, duration: float | None) -> str:
    if not duration or not transcript.segments:
        return ""
    last = max(s.end for s in transcript.segments)
    return f" (ends at {last:.0f} s of {duration:.0f} s)"


# ----------------------------------------------------------------------- transcribe


def transcribe(ctx: StageContext) -> None:
    """Speech to word-timed transcript (or the publisher's transcript, parsed)."""
    source = ctx.read_json(Artifact.SOURCE)
    path = ctx.settings.data_dir / source["path"]
    if source["kind"] == "feed_transcript":
        transcript = feed_transcripts.parse_transcript(
            path.read_bytes(),
            source.get("mime_type"),
            url=source.get("url", ""),
            duration=source.get("duration"),
        )
    else:
        from podmill.ml import asr

        # The feed's language decides the model and what Whisper is told (never an
        # English-only model on another language); refused before any model loads.
        settings = asr.language_plan(ctx.settings.asr, ctx.episode.language, ctx.notes)
        if ctx.settings.diarization.enabled:
            from podmill.ml import diarize

            diarize.check_installed()  # before the long ASR pass, not after it
        transcript = asr.transcribe(
            path, settings, on_progress=ctx.on_audio_progress, vocabulary=_vocabulary(ctx)
        )
        transcript.duration = max(transcript.duration, float(source.get("duration") or 0.0))
        if ctx.settings.diarization.enabled:
            from podmill.pipeline.speakers import assign_speakers

            turns = diarize.diarize(path, ctx.settings.diarization)
            transcript = assign_speakers(transcript, turns)
    write_transcript(ctx, transcript)


def _vocabulary(ctx: StageContext) -> str:
    """The feed's names for Whisper when ``asr.vocabulary_prompt`` is on (a step note
    says what was sent); empty when it is off."""
    mode = ctx.settings.asr.vocabulary_prompt
    if mode == "off":
        return ""
    from podmill.ml.vocabulary import episode_vocabulary

    prompt = episode_vocabulary(ctx.episode)
    ctx.notes.append(
        f"vocabulary prompt ({mode}): {prompt!r}"
        if prompt
        else f"vocabulary prompt ({mode}): the feed names nothing to prompt with"
    )
    return prompt


def write_transcript(ctx: StageContext, transcript: Transcript) -> None:
    """The transcript artifacts, from times made monotonic and checked (whatever the
    source: a player must never see a word or cue run backwards)."""
    transcript = transcript_formats.prepare(transcript)
    ctx.write_text(Artifact.TRANSCRIPT_SRT, transcript_formats.to_srt(transcript))
    ctx.write_text(Artifact.TRANSCRIPT_VTT, transcript_formats.to_vtt(transcript))
    ctx.write_text(Artifact.TRANSCRIPT_TXT, transcript_formats.to_txt(transcript))
    # Written last: its presence means the whole stage finished.
    ctx.write_text(Artifact.TRANSCRIPT_JSON, transcript_formats.to_json(transcript))


def load_transcript(ctx: StageContext) -> Transcript:
    return Transcript.from_dict(ctx.read_json(Artifact.TRANSCRIPT_JSON))


# ------------------------------------------------------------------- topic stages


def _embed() -> Callable[[list[str]], np.ndarray]:
    from podmill.ml.embed import embed

    return embed  # holds the model (process arbiter) for each call


def _llm(ctx: StageContext, stage: str) -> llm_topics.LlmSession | None:
    """The stage's LLM session in LLM mode; ``None`` in extractive mode."""
    if ctx.settings.topics.backend != "llm":
        return None
    return llm_topics.LlmSession(ctx, stage)


def segment(ctx: StageContext) -> None:
    """Sentences, their embeddings, and the L1 topic boundaries."""
    transcript = load_transcript(ctx)
    sentences = split_sentences(transcript)
    embed = _embed()
    cfg = ctx.settings.topics
    windows = embed(topics.window_texts(sentences, cfg.window_sentences))
    vectors = embed([s.text for s in sentences])
    spans = topics.segment_l1(sentences, windows, vectors, transcript.duration, cfg)
    llm = _llm(ctx, "segment")
    if llm is not None:
        if len(sentences) >= 4:  # as in segment_l1: too short to have topics
            cuts = llm_topics.boundaries(
                llm,
                sentences,
                begin=0,
                end=len(sentences),
                min_seconds=cfg.min_topic_seconds,
                max_parts=topics.max_topics(transcript.duration, cfg.topic_density),
                what="L1 boundaries",
            )
            if cuts is not None:
                edges = [0, *cuts, len(sentences)]
                spans = [topics.Span(a, b) for a, b in zip(edges, edges[1:])]
        llm.finish()
    buffer = io.BytesIO()
    np.savez(buffer, windows=windows, sentences=vectors)
    ctx.write_bytes(Artifact.EMBEDDINGS, buffer.getvalue())
    ctx.write_json(Artifact.SENTENCES, [s.to_dict() for s in sentences])
    ctx.write_json(Artifact.L1, [[s.first, s.last] for s in spans])


def _load(ctx: StageContext) -> tuple[list[Sentence], np.ndarray, np.ndarray]:
    sentences = sentences_from_dicts(ctx.read_json(Artifact.SENTENCES))
    with np.load(ctx.path(Artifact.EMBEDDINGS)) as data:
        return sentences, data["windows"], data["sentences"]


def _spans(pairs: list[list[int]]) -> list[topics.Span]:
    return [topics.Span(a, b) for a, b in pairs]


def decide(ctx: StageContext) -> None:
    """Which L1 topics are long or mixed enough to split into sub-topics."""
    sentences, windows, _ = _load(ctx)
    llm = _llm(ctx, "decide")
    verdicts = []
    for i, span in enumerate(_spans(ctx.read_json(Artifact.L1))):
        split, reason = topics.should_split(sentences, windows, span, ctx.settings.topics)
        if llm is not None and not reason.startswith(("too short", "long")):
            # the model replaces the coherence test; length rules stay rules
            several = llm_topics.wants_split(llm, sentences, span, f"topic {i + 1}")
            if several is not None:
                split, reason = several, f"llm: {'several subjects' if several else 'one subject'}"
        verdicts.append({"l1": i, "split": split, "reason": reason})
    ctx.write_json(Artifact.DECIDE, verdicts)
    if llm is not None:
        llm.finish()


def subsegment(ctx: StageContext) -> None:
    """L2 sub-topics inside the L1 topics that ``decide`` chose."""
    sentences, windows, vectors = _load(ctx)
    l1 = _spans(ctx.read_json(Artifact.L1))
    cfg = ctx.settings.topics
    llm = _llm(ctx, "subsegment")
    result: dict[str, list[list[int]]] = {}
    for verdict in ctx.read_json(Artifact.DECIDE):
        if verdict["split"]:
            span = l1[verdict["l1"]]
            parts = topics.segment_l2(sentences, windows, vectors, span, cfg)
            if llm is not None:
                length = sentences[span.last - 1].end - sentences[span.first].start
                cuts = llm_topics.boundaries(
                    llm,
                    sentences,
                    begin=span.first,
                    end=span.last,
                    min_seconds=cfg.min_subtopic_seconds,
                    max_parts=max(2, min(8, int(length // cfg.min_subtopic_seconds))),
                    what=f"topic {verdict['l1'] + 1} sub-topics",
                )
                if cuts:  # none proposed: decide asked for a split, keep the embedding one
                    edges = [span.first, *cuts, span.last]
                    parts = [topics.Span(a, b) for a, b in zip(edges, edges[1:])]
            if len(parts) > 1:
                result[str(verdict["l1"])] = [[p.first, p.last] for p in parts]
    ctx.write_json(Artifact.L2, result)
    if llm is not None:
        llm.finish()


def _summaries(
    ctx: StageContext,
    spans: list[topics.Span],
    spans_are_parts: bool = False,
    llm: llm_topics.LlmSession | None = None,
    label: str = "topic",
) -> list[dict[str, Any]]:
    sentences, _, vectors = _load(ctx)
    embed = _embed()
    episode = topics.centroid(vectors) if len(spans) > 1 or spans_are_parts else None
    texts = []
    for n, span in enumerate(spans, 1):
        text = topics.summarise(
            sentences, vectors, span, embed, ctx.settings.topics, background=episode
        ).__dict__
        if llm is not None:  # keywords stay extractive: search and the viewer use them
            better = llm_topics.node_texts(
                llm, sentences, span, ctx.settings.topics, f"{label}{n} summary"
            )
            if better is not None and not better["key_points"]:  # all filler: keep ours
                del better["key_points"]
            text.update(better or {})
        texts.append(text)
    return texts


def summarize_l1(ctx: StageContext) -> None:
    llm = _llm(ctx, "summarize_l1")
    spans = _spans(ctx.read_json(Artifact.L1))
    ctx.write_json(Artifact.SUMMARIES_L1, _summaries(ctx, spans, llm=llm, label="topic "))
    if llm is not None:
        llm.finish()


def summarize_l2(ctx: StageContext) -> None:
    llm = _llm(ctx, "summarize_l2")
    l2 = ctx.read_json(Artifact.L2)
    ctx.write_json(
        Artifact.SUMMARIES_L2,
        {
            key: _summaries(ctx, _spans(pairs), True, llm, f"sub-topic {int(key) + 1}.")
            for key, pairs in l2.items()
        },
    )
    if llm is not None:
        llm.finish()


def synthesize(ctx: StageContext) -> None:
    """The join: the L0 root from the L1 nodes, and the whole tree as ``topics.json``."""
    transcript = load_transcript(ctx)
    sentences, _, vectors = _load(ctx)
    l1 = _spans(ctx.read_json(Artifact.L1))
    l2 = ctx.read_json(Artifact.L2)
    s1 = ctx.read_json(Artifact.SUMMARIES_L1)
    s2 = ctx.read_json(Artifact.SUMMARIES_L2)
    duration = max(transcript.duration, sentences[-1].end if sentences else 0.0)
    n_words = len(transcript.words)
    root = TopicNode(id="0", level=0, start=0.0, end=duration, word_start=0, word_end=n_words)
    for i, text in enumerate(s1):
        node = _node(f"{i + 1}", 1, text, sentences, l1, i, root)
        subs = _spans(l2.get(str(i), []))
        for j, subtext in enumerate(s2.get(str(i), [])):
            node.children.append(_node(f"{i + 1}.{j + 1}", 2, subtext, sentences, subs, j, node))
        root.children.append(node)
    _fill_root(ctx, root, sentences, vectors)
    llm = _llm(ctx, "synthesize")
    if llm is not None:
        if sentences and root.children:
            better = llm_topics.episode_texts(llm, root.children, sentences, ctx.settings.topics)
            if better is not None:
                if not ctx.episode.feed_key:  # a feed's own title stays, as in extractive mode
                    root.title = better["title"]
                root.summary = better["summary"]
                root.key_points = better["key_points"] or root.key_points  # all filler: ours
        llm.finish()
        llm_topics.merge_usage(ctx, _tree_stages())
    ctx.write_json(
        Artifact.TOPICS,
        {
            "episode_key": ctx.key,
            "fingerprint": ctx.fingerprint,
            "title": root.title,
            "duration": duration,
            "transcript_source": transcript.source,
            "root": root.to_dict(),
        },
    )


def _node(
    node_id: str,
    level: int,
    text: dict[str, Any],
    sentences: list[Sentence],
    siblings: list[topics.Span],
    index: int,
    parent: TopicNode,
) -> TopicNode:
    # Siblings tile their parent: the first starts where the parent starts, each other
    # where its first sentence starts, and each ends where the next begins.
    first = sentences[siblings[index].first]
    nxt = sentences[siblings[index + 1].first] if index + 1 < len(siblings) else None
    return TopicNode(
        id=node_id,
        level=level,
        start=parent.start if index == 0 else first.start,
        end=nxt.start if nxt else parent.end,
        word_start=parent.word_start if index == 0 else first.word_start,
        word_end=nxt.word_start if nxt else parent.word_end,
        title=text["title"],
        summary=text["summary"],
        key_points=text["key_points"],
        keywords=text["keywords"],
    )


def _fill_root(
    ctx: StageContext, root: TopicNode, sentences: list[Sentence], vectors: np.ndarray
) -> None:
    ep = ctx.episode
    if not sentences:
        root.title = ep.title
        root.summary = "No speech was detected in this episode."
        return
    whole = topics.summarise(
        sentences, vectors, topics.Span(0, len(sentences)), _embed(), ctx.settings.topics
    )
    # A feed gives the episode a real title; a bare file's name is a worse title than
    # the episode's own keyphrases.
    root.title = ep.title if ep.feed_key else (whole.title or ep.title)
    root.keywords = whole.keywords
    root.summary = whole.summary
    if len(root.children) > 1:
        # The episode's centroid leans towards its longest topic; one central sentence
        # from each topic (the longest few, in spoken order) covers the whole episode.
        spans = _spans(ctx.read_json(Artifact.L1))
        longest = sorted(range(len(spans)), key=lambda i: (-(spans[i].last - spans[i].first), i))
        picks = sorted(longest[: ctx.settings.topics.summary_sentences + 1])
        root.summary = " ".join(topics.most_central(sentences, vectors, spans[i]) for i in picks)
    root.key_points = []
    for child in root.children[:8]:
        point = child.key_points[0] if child.key_points else child.summary
        if keypoints.is_key_point(point):  # a topic of filler adds no point
            root.key_points.append(f"{child.title}: {point}")


# ---------------------------------------------------------------------- index, publish


def index(ctx: StageContext) -> None:
    """Embed every node (title + summary) and passage window for search, into
    ``index.npz``; the job's finish makes them search documents
    (:mod:`podmill.pipeline.projection`, docs/search.md)."""
    from podmill.search import documents

    tree = TopicNode.from_dict(ctx.read_json(Artifact.TOPICS)["root"])
    sentences = sentences_from_dicts(ctx.read_json(Artifact.SENTENCES))
    node_vectors, passages, passage_vectors = documents.embed_episode(tree, sentences, _embed())
    buffer = io.BytesIO()
    np.savez(buffer, **documents.index_arrays(tree, node_vectors, passages, passage_vectors))
    ctx.write_bytes(Artifact.INDEX, buffer.getvalue())


def publish(ctx: StageContext) -> None:
    """The readable outline and the run manifest (the set's last write: it is finished).
    Its rows in the database are the job's finish: :func:`finish`."""
    data = ctx.read_json(Artifact.TOPICS)
    tree = TopicNode.from_dict(data["root"])
    words = load_transcript(ctx).words
    ctx.write_text(Artifact.SUMMARY_MD, outline.render_markdown(ctx.episode, tree, data, words))
    ctx.store.write_manifest(
        ctx.key,
        ctx.fingerprint,
        {
            "episode": ctx.episode.to_dict(),
            "fingerprint": ctx.fingerprint,
            "transcript_source": data.get("transcript_source"),
        },
    )


def finish(ctx: StageContext) -> None:
    """Project the finished set's rows into the job's database (nothing without one):
    after the last stage, whether it ran or its outputs were already there."""
    if ctx.sessions is None:
        return
    from podmill.pipeline.projection import project_finished

    with ctx.sessions.begin() as session:
        project_finished(session, ctx.store, ctx.key, ctx.fingerprint, _embed())


def _tree_stages() -> tuple[str, ...]:
    from podmill.pipeline.dag import STAGES

    return tuple(s.name for s in STAGES if s.tree)  # the stages that ask the LLM


STAGE_FUNCTIONS: dict[str, Callable[[StageContext], None]] = {
    "fetch": fetch,
    "transcribe": transcribe,
    "segment": segment,
    "decide": decide,
    "subsegment": subsegment,
    "summarize_l1": summarize_l1,
    "summarize_l2": summarize_l2,
    "synthesize": synthesize,
    "index": index,
    "publish": publish,
}


def outputs_exist(name: str, ctx: StageContext) -> bool:
    """Whether a stage's artifacts are all present for this fingerprint (then it is skipped)."""
    from podmill.pipeline.dag import stage

    return all(ctx.exists(out) for out in stage(name).outputs)


def run_stage(name: str, ctx: StageContext) -> bool:
    """Run one stage unless its artifacts already exist; returns True if it ran.

    The single entry point for every executor (the engine's workers and the atomic
    ``run_pipeline``), so the skip rule lives in one place, and so does the finish:
    after the last stage, run or skipped, the set's rows are projected (:func:`finish`).
    """
    from podmill.pipeline.dag import successors

    ran = not outputs_exist(name, ctx)
    if ran:
        STAGE_FUNCTIONS[name](ctx)
    if not successors(name):  # the last stage finishes the job, fresh or reused
        finish(ctx)
    return ran
