"""LLM mode of the topic stages (``topics.backend = "llm"``).

The model proposes what the extractive path would compute — L1/L2 boundaries as sentence
numbers, whether a topic mixes subjects, a title, summary and key points per node — and
every answer is checked before it is used: boundaries must be in range, increasing and
leave topics long enough; texts must be JSON matching a schema, and a title must not be
a sentence copied from the transcript. A bad answer is repaired (code fences stripped,
the first ``{...}`` taken) or asked for once more, and then the extractive result is
used for that node. Each fallback is a note on the step and a count in the stage's
usage record (``llm_usage_<stage>.json``; ``synthesize`` merges them into
``llm_usage.json``). Times never come from the model: nodes are still built from
sentence spans, so the tree contract holds whatever the model says.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from podmill.pipeline import keypoints, topics
from podmill.pipeline.context import StageContext
from podmill.sentences import Sentence
from podmill.settings import LlmSettings, TopicSettings
from podmill.storage.artifacts import Artifact, stage_usage

PROMPT_NAMES = ("boundaries", "decide", "summary", "episode")
CHARS_PER_TOKEN = 3.5  # English text, Qwen/Llama-style tokenisers; a budget, not a count
PROMPT_OVERHEAD_TOKENS = 160  # the template, the chat markup
SENTENCE_WORDS = 30  # sentences are shortened to this many words in boundary prompts
MAX_KEY_POINTS = 3  # per node in LLM mode: each costs ~20 generated tokens

BOUNDARY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"starts": {"type": "array", "items": {"type": "integer"}}},
    "required": ["starts"],
}
DECIDE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"several": {"type": "boolean"}},
    "required": ["several"],
}


def node_schema(key_points: int) -> dict[str, Any]:
    """Title, summary, key points. The length limits matter: llama.cpp turns them into
    its grammar, so a small model cannot ramble until ``max_tokens`` cuts the JSON off
    (about 130 tokens at most in all)."""
    return {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 1, "maxLength": 60},
            "summary": {"type": "string", "minLength": 1, "maxLength": 240},
            "key_points": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 70},
                "minItems": 1,
                "maxItems": max(1, key_points),
            },
        },
        "required": ["title", "summary", "key_points"],
    }


# ------------------------------------------------------------------------ prompts


@cache
def prompt_text(name: str) -> str:
    return (resources.files("podmill.pipeline") / "prompts" / f"{name}.txt").read_text("utf-8")


def prompts_hash() -> str:
    """sha256 over every prompt template: part of the fingerprint in LLM mode."""
    digest = hashlib.sha256()
    for name in PROMPT_NAMES:
        digest.update(name.encode() + b"\0" + prompt_text(name).encode() + b"\0")
    return digest.hexdigest()[:16]


def render(name: str, **values: Any) -> list[dict[str, str]]:
    """The chat messages of prompt ``name`` (system above the ``---`` line, user below)."""
    system, _, user = prompt_text(name).partition("\n---\n")
    user = string.Template(user).substitute({k: str(v) for k, v in values.items()})
    return [{"role": "system", "content": system.strip()}, {"role": "user", "content": user}]


def input_budget_chars(settings: LlmSettings) -> int:
    """How much transcript text one prompt may carry."""
    tokens = settings.context_tokens - settings.max_tokens - PROMPT_OVERHEAD_TOKENS
    return max(200, int(tokens * CHARS_PER_TOKEN))


# ---------------------------------------------------------- repair and validation


def parse_json_object(text: str) -> dict[str, Any]:
    """The JSON object in a model's reply: as is, inside code fences, or the first
    balanced ``{...}`` in surrounding prose. Raises ``ValueError`` if there is none."""
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.DOTALL)
    if fenced:
        body = fenced.group(1).strip()
    try:
        value = json.loads(body)
    except ValueError:
        value = _first_object(body)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _first_object(text: str) -> Any:
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    try:
                        return json.loads(text[start : i + 1])
                    except ValueError:
                        break
        start = text.find("{", start + 1)
    raise ValueError("no JSON object in the reply")


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "number": (int, float),
}


def schema_errors(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """What is wrong with ``value`` under the small JSON-schema subset used here
    (type, properties, required, items, min/maxItems, min/maxLength)."""
    kind = schema.get("type")
    if kind:
        ok = isinstance(value, _TYPES[kind])
        if kind in ("integer", "number") and isinstance(value, bool):
            ok = False
        if not ok:
            return [f"{where} should be {kind}, not {type(value).__name__}"]
    errors: list[str] = []
    if isinstance(value, dict):
        errors += [
            f"{where}.{key} is missing" for key in schema.get("required", ()) if key not in value
        ]
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                errors += schema_errors(value[key], sub, f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where} has {len(value)} items, fewer than {schema['minItems']}")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{where} has {len(value)} items, more than {schema['maxItems']}")
        if "items" in schema:
            for i, item in enumerate(value):
                errors += schema_errors(item, schema["items"], f"{where}[{i}]")
    if isinstance(value, str):
        if len(value.strip()) < schema.get("minLength", 0):
            errors.append(f"{where} is empty")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{where} is longer than {schema['maxLength']} characters")
    return errors


def validate_starts(
    raw: Any,
    sentences: Sequence[Sentence],
    *,
    begin: int,
    end: int,
    min_seconds: float,
    max_parts: int,
) -> tuple[list[int] | None, str]:
    """Check the model's topic starts for sentences ``[begin, end)``.

    Returns ``(cuts, note)``: the boundaries to use, or ``None`` when the answer is
    invalid (not integers, out of range, not increasing, too many parts), and what was
    wrong or adjusted. ``begin`` itself is allowed and ignored (the first topic starts
    there anyway); a start that would leave a topic shorter than ``min_seconds`` is
    dropped, since a too-short topic is a matter of degree, not a wrong answer.
    """
    if not isinstance(raw, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in raw
    ):
        return None, f"starts is not a list of sentence numbers: {raw!r:.80}"
    cuts = [x for x in raw if x != begin]
    outside = [x for x in cuts if not begin < x < end]
    if outside:
        return None, f"sentence numbers {outside[:5]} are outside {begin}..{end - 1}"
    if any(b <= a for a, b in zip(cuts, cuts[1:])):
        return None, f"sentence numbers are not increasing: {cuts[:12]}"
    kept: list[int] = []
    for cut in cuts:
        if topics._long_enough(sentences, kept[-1] if kept else begin, cut, min_seconds):
            kept.append(cut)
    while kept and not topics._long_enough(sentences, kept[-1], end, min_seconds):
        kept.pop()
    if len(kept) + 1 > max_parts:
        return None, f"{len(kept) + 1} parts, more than the {max_parts} allowed"
    dropped = len(cuts) - len(kept)
    note = f"dropped {dropped} start(s) that left a part under {min_seconds:g}s" if dropped else ""
    return kept, note


def is_verbatim(title: str, sentences: Sequence[Sentence]) -> bool:
    """Whether ``title`` is one of the transcript's sentences, word for word."""
    key = _words(title)
    return bool(key) and any(_words(s.text) == key for s in sentences)


def _words(text: str) -> tuple[str, ...]:
    return tuple(re.findall(r"[a-z0-9']+", text.lower()))


# ------------------------------------------------------------------------ session


@dataclass
class Usage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    fallbacks: int = 0
    retries: int = 0

    def add(self, other: Usage) -> None:
        for key in self.__dataclass_fields__:
            setattr(self, key, getattr(self, key) + getattr(other, key))


@dataclass
class LlmSession:
    """One stage's conversations with the model: calls, token counts and fallbacks.

    Auth and missing-extra errors propagate (the step fails with a line to act on);
    any other LLM failure makes that node fall back, and after the first the stage
    stops asking (a server that is down stays down for the rest of the stage).
    """

    ctx: StageContext
    stage: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    down: str = ""
    _llm: Any = None

    @property
    def settings(self) -> LlmSettings:
        return self.ctx.settings.llm

    def ask(
        self,
        what: str,
        messages: list[dict[str, str]],
        schema: dict[str, Any],
        check: Callable[[dict[str, Any]], str] | None = None,
    ) -> dict[str, Any] | None:
        """The model's JSON answer for ``what`` (a node or step name, for notes), checked
        against ``schema`` and by ``check(obj) -> problem``; ``None`` = fall back."""
        from podmill.ml.llm import LLMAuthError, LLMError, get_llm

        if self.down:
            return self._fallback(what, f"LLM unavailable ({self.down})")
        if self._llm is None:
            self._llm = get_llm(self.settings)
        problem = ""
        for attempt in range(2):
            try:
                reply = self._llm.chat(messages, json_schema=schema)
            except LLMAuthError:
                raise
            except LLMError as exc:
                self.down = str(exc)
                return self._fallback(what, str(exc))
            self.usage.calls += 1
            self.usage.prompt_tokens += reply.prompt_tokens
            self.usage.completion_tokens += reply.completion_tokens
            self.model = reply.model or self.model
            try:
                obj = parse_json_object(reply.text)
            except ValueError as exc:
                problem = f"{exc}: {reply.text[:80]!r}"
            else:
                errors = schema_errors(obj, schema)
                problem = "; ".join(errors[:3]) if errors else (check(obj) if check else "")
                if not problem:
                    return obj
            if attempt == 0:
                self.usage.retries += 1
                messages = [
                    *messages,
                    {"role": "assistant", "content": reply.text},
                    {
                        "role": "user",
                        "content": f"That answer is not usable ({problem[:120]}). "
                        "Answer again with only the JSON object.",
                    },
                ]
        return self._fallback(what, f"invalid answer twice ({problem[:160]})")

    def _fallback(self, what: str, why: str) -> None:
        self.usage.fallbacks += 1
        self.ctx.notes.append(f"llm: {self.stage} {what}: extractive fallback: {why}")
        return None

    def finish(self) -> None:
        """Record this stage's usage (artifact and note)."""
        u = self.usage
        self.ctx.write_json(
            stage_usage(self.stage),
            {"stage": self.stage, "model": self.model or _configured(self.settings), **u.__dict__},
        )
        self.ctx.notes.append(
            f"llm: {self.stage}: {u.calls} calls, {u.prompt_tokens} prompt + "
            f"{u.completion_tokens} completion tokens, {u.fallbacks} fallbacks"
        )


def _configured(settings: LlmSettings) -> str:
    from podmill.ml.llm import model_identity

    return model_identity(settings)


def merge_usage(ctx: StageContext, stages: Sequence[str]) -> dict[str, Any]:
    """``llm_usage.json``: per stage and in total, from the stages' own records."""
    per_stage: dict[str, Any] = {}
    total = Usage()
    model = ""
    for stage in stages:
        name = stage_usage(stage)
        if ctx.exists(name):
            record = ctx.read_json(name)
            model = record.pop("model", "") or model
            record.pop("stage", None)
            per_stage[stage] = record
            total.add(Usage(**record))
    data = {"model": model or _configured(ctx.settings.llm), "stages": per_stage}
    data["total"] = total.__dict__
    ctx.write_json(Artifact.LLM_USAGE, data)
    return data


# ------------------------------------------------------------------- the stages


def boundaries(
    session: LlmSession,
    sentences: Sequence[Sentence],
    *,
    begin: int,
    end: int,
    min_seconds: float,
    max_parts: int,
    what: str,
) -> list[int] | None:
    """Topic starts inside ``[begin, end)`` from the model, chunked to fit its context;
    ``None`` means use the embedding boundaries."""
    budget = input_budget_chars(session.settings)
    lines = [f"[{i}] {_shorten(sentences[i].text, SENTENCE_WORDS)}" for i in range(begin, end)]
    chunks: list[list[str]] = [[]]
    size = 0
    for line in lines:
        if chunks[-1] and size + len(line) > budget:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += len(line) + 1
    starts: list[int] = []
    for n, chunk in enumerate(chunks):
        share = max(1, math.ceil((max_parts - 1) * len(chunk) / max(1, end - begin)))
        label = what if len(chunks) == 1 else f"{what} chunk {n + 1}/{len(chunks)}"
        answer = session.ask(
            label,
            render("boundaries", sentences="\n".join(chunk), max_cuts=share),
            BOUNDARY_SCHEMA,
        )
        if answer is None:
            return None
        starts += answer["starts"]
    cuts, note = validate_starts(
        starts, sentences, begin=begin, end=end, min_seconds=min_seconds, max_parts=max_parts
    )
    if cuts is None:
        session._fallback(what, note)
    elif note:
        session.ctx.notes.append(f"llm: {session.stage} {what}: {note}")
    return cuts


def wants_split(
    session: LlmSession, sentences: Sequence[Sentence], span: topics.Span, what: str
) -> bool | None:
    """Whether the model hears several subjects in ``span`` (``None``: it did not say)."""
    text = node_text(sentences, span, input_budget_chars(session.settings))
    answer = session.ask(what, render("decide", text=text), DECIDE_SCHEMA)
    return None if answer is None else bool(answer["several"])


def node_texts(
    session: LlmSession,
    sentences: Sequence[Sentence],
    span: topics.Span,
    cfg: TopicSettings,
    what: str,
) -> dict[str, Any] | None:
    """Title, summary and key points of one node, or ``None`` (use the extractive ones)."""
    text = node_text(sentences, span, input_budget_chars(session.settings))
    part = sentences[span.first : span.last]
    answer = session.ask(
        what,
        render("summary", text=text, key_points=_points(cfg)),
        node_schema(_points(cfg)),
        check=lambda obj: _text_problem(obj, part),
    )
    return None if answer is None else _clean(answer)


def episode_texts(
    session: LlmSession, children: Sequence[Any], sentences: Sequence[Sentence], cfg: TopicSettings
) -> dict[str, Any] | None:
    """The L0 root's title, summary and key points from its topics' titles and summaries."""
    lines = [f"- {c.title}: {c.summary}" for c in children]
    budget = input_budget_chars(session.settings)
    listing = "\n".join(lines)
    if len(listing) > budget:
        listing = "\n".join(_shorten(line, 30) for line in lines)[:budget]
    answer = session.ask(
        "episode",
        render("episode", topics=listing, key_points=_points(cfg)),
        node_schema(_points(cfg)),
        check=lambda obj: _text_problem(obj, sentences),
    )
    return None if answer is None else _clean(answer)


def node_text(sentences: Sequence[Sentence], span: topics.Span, budget: int) -> str:
    """The node's transcript, cut to ``budget`` characters by keeping evenly spaced
    sentences in spoken order (so a long topic is represented from start to end)."""
    texts = [s.text for s in sentences[span.first : span.last]]
    whole = " ".join(texts)
    if len(whole) <= budget:
        return whole
    keep = max(1, int(len(texts) * budget / len(whole)))
    while keep > 1:
        step = len(texts) / keep
        picked = " ".join(texts[int(i * step)] for i in range(keep))
        if len(picked) <= budget:
            return picked
        keep -= 1
    return texts[0][:budget]


def _points(cfg: TopicSettings) -> int:
    return max(1, min(MAX_KEY_POINTS, cfg.key_points))


def _text_problem(obj: dict[str, Any], sentences: Sequence[Sentence]) -> str:
    title = obj["title"].strip()
    if len(title.split()) > 12:
        return f"title has {len(title.split())} words; use at most 8"
    if is_verbatim(title, sentences):
        return "the title copies a transcript sentence; name the subject in your own words"
    return ""


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": obj["title"].strip().strip('"').rstrip("."),
        "summary": " ".join(obj["summary"].split()),
        # the model's points obey the same rule as extractive ones: never filler
        "key_points": keypoints.key_points(" ".join(p.split()) for p in obj["key_points"]),
    }


def _shorten(text: str, max_words: int) -> str:
    words = text.split()
    return text if len(words) <= max_words else " ".join(words[:max_words]) + " …"
