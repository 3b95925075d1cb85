"""The fingerprint: a hash of everything that changes an episode's outputs.

Stage versions, model identities (package version and checksum) and the settings the
stages read. Two runs with the same fingerprint produce the same artifacts, so a
second request for the same ``(episode_key, fingerprint)`` reuses the first one's.

The model identities are the ones podmill pins (``model_identity`` in each
:mod:`podmill.ml` backend), not read from the installed model packages: queueing work
(``podmill submit``, the API) needs no model extra, and every host fingerprints the same
settings alike. A worker refuses installed models other than the pinned ones, so the
identity in the fingerprint is the model that ran (docs/pipeline.md).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from podmill.pipeline.dag import STAGES
from podmill.settings import FeedTranscriptSettings, Settings


def fingerprint_inputs(settings: Settings) -> dict[str, Any]:
    from podmill.ml import asr, embed

    inputs: dict[str, Any] = {
        "stages": {s.name: s.version for s in STAGES},
        "asr": {
            "model": asr.model_identity(settings.asr.model),
            # Where it runs is not an output: a GPU worker's float16 and a CPU worker's
            # int8 transcripts of one model count as the same result (docs/models.md).
            **settings.asr.model_dump(
                exclude={
                    "cpu_threads",
                    "model",
                    "device",
                    "gpu_compute_type",
                    "vocabulary_prompt",
                }
            ),
        },
        "embedder": embed.model_identity(),
        "topics": topic_inputs(settings),
        "prefer_feed_transcripts": settings.prefer_feed_transcripts,
    }
    if settings.asr.vocabulary_prompt != "off":
        # Only when on, so that the default keeps every earlier fingerprint. The prompt
        # is built from the episode's feed metadata by a versioned builder: the mode and
        # the builder's version are what a job's settings decide.
        from podmill.ml import vocabulary

        inputs["asr"]["vocabulary_prompt"] = {
            "mode": settings.asr.vocabulary_prompt,
            "builder": vocabulary.VERSION,
            "max_chars": vocabulary.MAX_CHARS,
        }
    coverage = settings.feed_transcripts.model_dump()
    if settings.prefer_feed_transcripts and coverage != FeedTranscriptSettings().model_dump():
        # Only when changed, so that the defaults keep every earlier fingerprint.
        inputs["feed_transcripts"] = coverage
    if inputs["topics"]["titles"] == "phrases":
        from podmill.ml import phrases

        inputs["phrases"] = phrases.model_identity()
    if settings.diarization.enabled:
        # Only when on, so that turning the feature off keeps every earlier fingerprint;
        # the device, like ASR's, is not an output.
        from podmill.ml import diarize

        inputs["diarization"] = {
            "model": diarize.model_identity(),
            "channels": settings.diarization.channels,
        }
    if settings.topics.backend == "llm":
        inputs["llm"] = llm_inputs(settings)
    return inputs


def topic_inputs(settings: Settings) -> dict[str, Any]:
    """The topic settings, ``titles`` resolved (``auto`` is the titler this host has:
    :func:`podmill.pipeline.titles.resolve`), so that trees made by different titlers
    never share a fingerprint."""
    from podmill.pipeline.titles import resolve

    topics = settings.topics.model_dump()
    topics["titles"] = resolve(settings.topics.titles)
    return topics


def llm_inputs(settings: Settings) -> dict[str, Any]:
    """What changes an LLM's outputs: the model, the prompts, the sampling and the
    budget. Not the server's address, key, timeout or retries: the same model behind
    another server gives the same results."""
    from podmill.ml.llm import model_identity
    from podmill.pipeline.llm_topics import prompts_hash

    return {
        "model": model_identity(settings.llm),
        "prompts": prompts_hash(),
        **settings.llm.model_dump(include={"temperature", "max_tokens", "context_tokens"}),
    }


def fingerprint(settings: Settings) -> str:
    blob = json.dumps(fingerprint_inputs(settings), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
