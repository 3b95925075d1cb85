"""bench/titles.py's metrics: boundary F1 matching, the title-form classifier and the
reference titles it reads from the corpus. No model runs here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from support.paths import ROOT


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("titles_bench", ROOT / "bench" / "titles.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


titles = _load()


# ------------------------------------------------------------------- boundary F1


def test_boundary_matches_are_one_to_one() -> None:
    # Two found starts near one reference start: only one of them hits.
    assert titles.boundary_matches([60.0], [55.0, 62.0]) == 1
    # One found start near two reference starts: it hits one of them.
    assert titles.boundary_matches([60.0, 70.0], [65.0]) == 1


def test_boundary_matches_take_the_closest_pair_first() -> None:
    # 107 is 7 s from 100 and 3 s from 110: it goes to 110, the closer one, and 100 is
    # then left with 120, 20 s away: one hit (in reference order it would be two).
    assert titles.boundary_matches([100.0, 110.0], [107.0, 120.0]) == 1
    # the same found starts in the other order: the same answer
    assert titles.boundary_matches([100.0, 110.0], [120.0, 107.0]) == 1
    assert titles.boundary_matches([100.0, 110.0], [97.0, 112.0]) == 2


def test_boundary_matches_respect_the_tolerance() -> None:
    assert titles.boundary_matches([60.0], [75.0]) == 1  # exactly 15 s: a hit
    assert titles.boundary_matches([60.0], [75.5]) == 0
    assert titles.boundary_matches([60.0], [64.0], tolerance=5.0) == 1
    assert titles.boundary_matches([60.0], [66.0], tolerance=5.0) == 0


def test_f1() -> None:
    assert titles.f1(2, 2, 2) == 1.0
    assert titles.f1(1, 2, 1) == pytest.approx(2 / 3)  # precision 1, recall 1/2
    assert titles.f1(1, 1, 3) == pytest.approx(0.5)  # precision 1/3, recall 1
    assert titles.f1(0, 2, 2) == 0.0
    assert titles.f1(0, 0, 0) == 1.0  # one-chapter episode, one chapter found
    assert titles.f1(0, 0, 2) == 0.0
    assert titles.f1(0, 2, 0) == 0.0


# ------------------------------------------------------------------ title forms


@pytest.mark.parametrize(
    "title",
    [
        "Solar storm and satellites",  # podmill's extractive form: phrase and phrase
        "Silicon and phone battery",
        "Passkey and login pages",
        "Rent caps, fast trains and wages",  # three fragments
        "Rent caps, fast trains, and wages",  # Oxford comma
        "Bees & honey",
        "SOLAR STORM AND SATELLITES",
    ],
)
def test_keyword_joins(title: str) -> None:
    assert titles.is_keyword_join(title)
    assert titles.title_form(title) == "keyword-join"


@pytest.mark.parametrize(
    "title",
    [
        "Satellites in a storm",  # no "and"
        "The storm and its satellites",  # determiners: a phrase, not keywords
        "Flu in the milking barn and the measles comeback",  # parts over two words
        "A, b, c and d",  # four parts
        "Why cats purr and dogs bark at night",
    ],
)
def test_not_keyword_joins(title: str) -> None:
    assert not titles.is_keyword_join(title)


@pytest.mark.parametrize(
    ("title", "form"),
    [
        ("Satellites in a storm", "readable"),
        ("The mystery of the purr", "readable"),
        ("Passkeys", "readable"),
        ("Why phone maps drifted during the solar storm", "readable"),  # 8 words
        ("How cats purr?", "readable"),
        ("Europe swelters.", "readable"),  # a short clause
        ("Why phone maps drifted so far during the storm", "too long"),  # 9 words
        ("Let's start with the week everyone's", "spoken"),
        ("So the storm hit the satellites", "spoken"),
        ("We talked about batteries", "spoken"),
        ("To finish, the price of rice", "spoken"),
        ("Staying in the ocean, but going deeper", "spoken"),
        ("Second thing on my list is", "cut off"),
        ("The new export rule for", "cut off"),
        ("Solar storms hit the…", "cut off"),
        ("Solar storms hit the satellites...", "cut off"),
        ("", "empty"),
        ("  …  ", "empty"),
    ],
)
def test_title_form(title: str, form: str) -> None:
    assert titles.title_form(title) == form


# ------------------------------------------------------------------- references


def test_reference_titles_split_the_episode_title() -> None:
    assert titles.reference_titles("Satellites in a storm, silicon batteries and passkeys") == [
        "Satellites in a storm",
        "silicon batteries",
        "passkeys",
    ]
    # only the last " and " separates chapters
    assert titles.reference_titles("Rent caps and fast trains and wages") == [
        "Rent caps and fast trains",
        "wages",
    ]
    assert titles.reference_titles("Pensions") == ["Pensions"]


def test_every_corpus_episode_has_one_reference_title_per_chapter() -> None:
    episodes = titles.corpus_episodes()
    assert len(episodes) == 18  # 21 in the corpus, 3 spoken ones left out
    assert all(len(e.chapters) == len(e.labels.topics) for e in episodes)
    first = episodes[0]
    assert first.guid == "tech-01"
    assert [c.title for c in first.chapters] == [
        "Satellites in a storm",
        "silicon batteries",
        "passkeys",
    ]
    assert [e.guid for e in episodes[:3]] == ["tech-01", "lab-01", "world-01"]
    # the reference titles are what the readability check calls readable
    forms = {titles.title_form(c.title) for e in episodes for c in e.chapters}
    assert forms == {"readable"}


def test_title_pairs_match_by_time_overlap() -> None:
    chapter = titles.Chapter
    reference = [chapter(0, 60, "storms"), chapter(60, 120, "batteries")]
    found = [chapter(0, 50, "A"), chapter(50, 110, "B"), chapter(110, 120, "C")]
    # storms: A shares 50 s, B 10 s; batteries: B shares 50 s, C 10 s
    assert titles.title_pairs(reference, found) == [("storms", "A"), ("batteries", "B")]
    assert titles.title_pairs(reference, []) == [("storms", ""), ("batteries", "")]


def test_keyword_pair_baseline() -> None:
    text = "Bees dance. The bees dance for honey. Honey is sweet, and bees like honey."
    assert titles.keyword_pair(text) == "Bees and honey"


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    base = titles.Settings(data_dir=tmp_path)
    assert titles.apply_settings(base, ["topics.window_sentences=5"]).topics.window_sentences == 5
    assert titles.apply_settings(base, ["llm.model=qwen"]).llm.model == "qwen"
    with pytest.raises(SystemExit, match="no setting 'topics.no_such_key'"):
        titles.apply_settings(base, ["topics.no_such_key=1"])
    with pytest.raises(SystemExit, match="no setting"):
        titles.apply_settings(base, ["topics.window_sentences"])  # no '='


def test_chance_titles_come_from_an_episode_with_no_shared_story() -> None:
    episodes = titles.corpus_episodes()
    first = episodes[0]  # tech-01: the solar storm, also told in lab-01 and world-01
    other = titles.unrelated(episodes, 0)
    assert other is not None and other.guid not in {"tech-01", "lab-01", "world-01"}
    assert not {t.story for t in first.labels.topics} - {None} & {
        t.story for t in other.labels.topics
    }
    assert titles.unrelated([first], 0) is None  # alone: no chance level
