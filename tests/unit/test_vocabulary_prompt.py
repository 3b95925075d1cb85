"""The vocabulary prompt: built from the feed's names (bounded, deduplicated), carried by
``asr.vocabulary_prompt`` to faster-whisper's keyword, and in the fingerprint when on."""

from __future__ import annotations

from pathlib import Path

import pytest

from podmill.domain import Episode, Person
from podmill.ml import asr, vocabulary
from podmill.ml.vocabulary import MAX_CHARS, episode_vocabulary
from podmill.pipeline.context import StageContext
from podmill.pipeline.fingerprint import fingerprint, fingerprint_inputs
from podmill.pipeline.stages import _vocabulary
from podmill.settings import AsrSettings, Settings, load_settings
from podmill.storage.artifacts import ArtifactStore

# ------------------------------------------------------------------- the builder


def test_feed_title_names_and_episode_title_in_the_feeds_order() -> None:
    prompt = vocabulary.vocabulary(
        "Red Planet Dispatch", ["Tamsin Okafor", "Bartholomew Quist"], "Jezero Crater"
    )
    assert prompt == "Red Planet Dispatch, Tamsin Okafor, Bartholomew Quist, Jezero Crater"


def test_nothing_to_say_is_empty() -> None:
    assert vocabulary.vocabulary(None, [], None) == ""
    assert vocabulary.vocabulary("  ", ["", " \n "], "...") == ""


def test_whitespace_and_control_characters_are_collapsed() -> None:
    prompt = vocabulary.vocabulary("Red\tPlanet \n Dispatch", ["Tamsin\x00 Okafor "], None)
    assert prompt == "Red Planet Dispatch, Tamsin Okafor"


def test_the_prompt_never_ends_in_punctuation() -> None:
    # with tiny.en a final full stop made Whisper skip the rest of the first window
    prompt = vocabulary.vocabulary("Mars Weekly.", ["Tamsin Okafor,"], "Is there water on Mars?")
    assert prompt == "Mars Weekly, Tamsin Okafor, Is there water on Mars"
    assert vocabulary.vocabulary(None, [], "To be continued...") == "To be continued"


def test_the_same_person_twice_is_said_once() -> None:
    # podcast:person repeats a name for each role; case and spacing do not make two
    prompt = vocabulary.vocabulary(None, ["Tamsin Okafor", "tamsin  okafor", "TAMSIN OKAFOR"], None)
    assert prompt == "Tamsin Okafor"


def test_an_episode_title_equal_to_the_feeds_is_said_once() -> None:
    assert vocabulary.vocabulary("Mars Weekly", [], "Mars weekly") == "Mars Weekly"


def test_a_title_that_holds_a_name_replaces_it() -> None:
    prompt = vocabulary.vocabulary(
        "The Fiddle Hour", ["Anneliese Marchetti"], "Anneliese Marchetti on Stradivari"
    )
    assert prompt == "The Fiddle Hour, Anneliese Marchetti on Stradivari"


def test_a_name_inside_another_word_is_not_a_duplicate() -> None:
    # "Ann" is not the word "Anneliese": both stay
    prompt = vocabulary.vocabulary(None, ["Ann", "Anneliese Marchetti"], None)
    assert prompt == "Ann, Anneliese Marchetti"


def test_the_prompt_is_bounded_and_names_come_first() -> None:
    names = [f"Guest Number{i} Surname{i}" for i in range(40)]
    feed = "A Feed Title That Is Rather Long For A Show"
    prompt = vocabulary.vocabulary(feed, names, "An episode title that will not fit")

    assert len(prompt) <= MAX_CHARS
    assert prompt.startswith("Guest Number0 Surname0, Guest Number1 Surname1")
    assert feed not in prompt  # names first; what does not fit is left out whole
    kept = prompt.split(", ")
    assert all(item in names for item in kept)
    assert kept == names[: len(kept)]


def test_an_item_that_does_not_fit_leaves_room_for_later_ones() -> None:
    prompt = vocabulary.vocabulary("Short Show", ["Al Bo", "X" * 50, "Cy Do"], "Ep", max_chars=30)
    assert prompt == "Short Show, Al Bo, Cy Do, Ep"
    assert len(prompt) <= 30


def test_a_first_item_longer_than_the_bound_is_cut_at_a_word() -> None:
    title = "Jezero Crater and the long road to the river delta of Mars"
    prompt = vocabulary.vocabulary(None, [], title, max_chars=30)
    assert len(prompt) <= 30
    assert prompt == "Jezero Crater and the long"  # "... long road" is 31
    assert title.startswith(prompt)


def test_the_episodes_metadata_makes_the_prompt() -> None:
    episode = Episode(
        episode_key="k",
        title="Gale Crater with Bartholomew Quist",
        audio_url=None,
        feed_title="Red Planet Dispatch",
        persons=[
            Person(name="Tamsin Okafor", role="host"),
            Person(name="Bartholomew Quist", role="guest"),
        ],
    )
    assert episode_vocabulary(episode) == (
        "Red Planet Dispatch, Tamsin Okafor, Gale Crater with Bartholomew Quist"
    )


# ------------------------------------------------------------------ the setting


def test_the_setting_is_off_by_default_and_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().asr.vocabulary_prompt == "off"
    monkeypatch.setenv("PODMILL_ASR__VOCABULARY_PROMPT", "hotwords")
    settings, source = load_settings({}, None)
    assert settings.asr.vocabulary_prompt == "hotwords"
    assert source["asr.vocabulary_prompt"] == "env PODMILL_ASR__VOCABULARY_PROMPT"


def test_an_unknown_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="vocabulary_prompt"):
        AsrSettings(vocabulary_prompt="always")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("off", {}),
        ("initial", {"initial_prompt": "Red Planet Dispatch"}),
        ("hotwords", {"hotwords": "Red Planet Dispatch"}),
    ],
)
def test_each_mode_is_its_faster_whisper_keyword(mode: str, expected: dict[str, str]) -> None:
    settings = AsrSettings(vocabulary_prompt=mode)
    assert asr.prompt_options(settings, "Red Planet Dispatch") == expected
    assert asr.prompt_options(settings, "") == {}  # nothing to say: nothing sent


def _context(tmp_path: Path, mode: str, episode: Episode) -> StageContext:
    settings = Settings(data_dir=tmp_path, asr={"vocabulary_prompt": mode})
    return StageContext(settings, episode, "f" * 16, ArtifactStore(tmp_path))


def test_the_stage_builds_the_prompt_from_the_episode_and_notes_it(tmp_path: Path) -> None:
    episode = Episode(
        episode_key="k",
        title="Jezero Crater",
        audio_url=None,
        feed_title="Red Planet Dispatch",
        persons=[Person(name="Tamsin Okafor")],
    )
    ctx = _context(tmp_path, "initial", episode)

    prompt = _vocabulary(ctx)

    assert prompt == "Red Planet Dispatch, Tamsin Okafor, Jezero Crater"
    assert ctx.notes == [f"vocabulary prompt (initial): {prompt!r}"]


def test_off_builds_nothing_and_notes_nothing(tmp_path: Path) -> None:
    episode = Episode(episode_key="k", title="Jezero Crater", audio_url=None)
    ctx = _context(tmp_path, "off", episode)
    assert _vocabulary(ctx) == "" and ctx.notes == []


def test_an_episode_without_names_is_noted(tmp_path: Path) -> None:
    ctx = _context(tmp_path, "hotwords", Episode(episode_key="k", title=" ", audio_url=None))
    assert _vocabulary(ctx) == ""
    assert ctx.notes == ["vocabulary prompt (hotwords): the feed names nothing to prompt with"]


# ----------------------------------------------------------------- fingerprint


def _with(mode: str) -> Settings:
    return Settings(asr={"vocabulary_prompt": mode})


def test_off_keeps_the_earlier_fingerprint_inputs() -> None:
    # the default adds nothing: every fingerprint made before the setting existed stays
    assert "vocabulary_prompt" not in fingerprint_inputs(_with("off"))["asr"]
    assert fingerprint(_with("off")) == fingerprint(Settings())


def test_each_mode_has_its_own_fingerprint() -> None:
    prints = {mode: fingerprint(_with(mode)) for mode in ("off", "initial", "hotwords")}
    assert len(set(prints.values())) == 3


def test_a_new_builder_version_is_a_new_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    before = fingerprint(_with("hotwords"))
    off = fingerprint(_with("off"))
    monkeypatch.setattr(vocabulary, "VERSION", "test-2")
    assert fingerprint(_with("hotwords")) != before
    assert fingerprint(_with("off")) == off
