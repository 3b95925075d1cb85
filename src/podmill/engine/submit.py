"""Submitting an episode: the one path from "process this episode" to a job.

``podmill submit``, ``podmill run`` (:class:`podmill.engine.runner.Runner`) and the
server (:meth:`podmill.platform.Platform.request_episode`) all call
:func:`submit_episode`, so a job is the same whoever queued it:

- its payload is the episode and the submitter's settings with ``data_dir`` absolute
  (workers may run in another directory or on another machine): :class:`JobSpec`;
- it is the job of ``(episode_key, fingerprint)``, its steps stamped with the profiles
  of the topics backend (:func:`podmill.pipeline.dag.step_profiles`);
- the episode's catalog row is written before the job exists, so ``publish`` finds it;
- a re-submit of a job that ended ``failed`` or ``cancelled`` runs it again
  (:data:`REVIVED`); a ``done`` job is never run again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from podmill.domain import Episode
from podmill.obs import tracing
from podmill.settings import Settings
from podmill.storage import repo

if TYPE_CHECKING:
    from podmill.engine.store import Store
    from podmill.feeds.parse import ParsedFeed

# The job statuses a re-submit revives: whoever submits again wants the episode to run
# again, whether it failed or was cancelled. Its failed, dead and cancelled steps run
# again with their attempts reset (Store.retry_job); its done steps are kept. A done job
# is not re-run: the same fingerprint gives the same artifacts (`podmill run` checks
# them for damage instead: podmill.pipeline.repair).
REVIVED = frozenset({"failed", "cancelled"})


@dataclass(frozen=True)
class JobSpec:
    """What every job submitted under one set of settings carries."""

    fingerprint: str
    settings: dict[str, Any]  # the payload's settings: what a worker runs the steps with
    profiles: dict[str, str]  # stage → the profile whose pools run it

    @classmethod
    def of(cls, settings: Settings) -> JobSpec:
        """The spec of ``settings`` (computing the fingerprint reads the model packages'
        identities: build it once per process or command, not per episode)."""
        from podmill.pipeline.dag import step_profiles
        from podmill.pipeline.fingerprint import fingerprint
        from podmill.pipeline.titles import resolve

        payload = settings.model_dump(mode="json", exclude={"db"})
        # The titler the fingerprint names, not "auto": a worker with other extras than
        # the submitter's makes the titles the fingerprint says (or fails naming the extra).
        payload["topics"]["titles"] = resolve(settings.topics.titles)
        # Workers may run elsewhere or in another directory: give them an absolute path.
        payload["data_dir"] = str(settings.data_dir.expanduser().resolve())
        return cls(fingerprint(settings), payload, step_profiles(settings.topics.backend))

    def payload(self, episode: Episode) -> dict[str, Any]:
        """The job's payload: what a worker needs to run the episode's steps."""
        return {"episode": episode.to_dict(), "settings": self.settings}


@dataclass(frozen=True)
class Submitted:
    """What :func:`submit_episode` did."""

    job_id: int
    created: bool
    found: str | None  # the status of the job this submit found (None: a new job)
    revived: bool  # the job had ended failed or cancelled and was queued again
    correlation_id: str | None  # the id in the job's log lines: an existing job keeps its own


def record_feed(store: Store, feed: ParsedFeed | None) -> int | None:
    """The catalog row of the feed the episodes came from (``None``: no feed)."""
    if feed is None:
        return None
    with store.sessions.begin() as session:
        return repo.upsert_feed(
            session,
            feed_key=feed.feed_key,
            url=feed.url,
            title=feed.title,
            podcast_guid=feed.podcast_guid,
        )


def submit_episode(
    store: Store,
    spec: JobSpec,
    episode: Episode,
    *,
    feed_id: int | None = None,
    correlation_id: str | None = None,
    held_by_operator: bool = False,
    attach: Callable[[int], None] | None = None,
) -> Submitted:
    """Queue ``episode`` (idempotent on its key and the spec's fingerprint).

    Writes the episode's catalog row (``feed_id`` ``None`` keeps a stored feed), then the
    job; a new job takes ``correlation_id`` (default: a new one). ``held_by_operator``
    (``podmill submit``) keeps tenants from cancelling the job: see
    :meth:`~podmill.engine.store.Store.cancel_unless_wanted`. ``attach(job_id)`` records
    who wants the job (the server's tenant requests) before a failed or cancelled job
    is revived, so a cancel that runs meanwhile counts them.

    With tracing on, a ``submit`` span; a new job's payload carries its traceparent
    (``payload["trace"]``), so every step of the job joins the submitter's trace.
    """
    correlation_id = correlation_id or uuid.uuid4().hex
    with tracing.span(
        "submit", {"correlation_id": correlation_id, "episode_key": episode.episode_key}
    ) as span:
        submitted = _submit(store, spec, episode, feed_id, correlation_id, held_by_operator, attach)
        span.set_attributes(
            {
                "job_id": submitted.job_id,
                "created": submitted.created,
                "correlation_id": submitted.correlation_id or correlation_id,
            }
        )
    return submitted


def _submit(
    store: Store,
    spec: JobSpec,
    episode: Episode,
    feed_id: int | None,
    correlation_id: str,
    held_by_operator: bool,
    attach: Callable[[int], None] | None,
) -> Submitted:
    with store.sessions.begin() as session:
        repo.upsert_episode(session, episode, feed_id=feed_id)
    payload = spec.payload(episode)
    traceparent = tracing.current_traceparent()  # the submit span: the job's steps join it
    if traceparent is not None:
        payload[tracing.PAYLOAD_KEY] = {"traceparent": traceparent}
    job_id, created = store.submit(
        episode.episode_key,
        spec.fingerprint,
        payload,
        correlation_id=correlation_id,
        profiles=spec.profiles,
        held_by_operator=held_by_operator,
    )
    if attach is not None:
        attach(job_id)
    if created:
        return Submitted(job_id, True, None, False, correlation_id)
    job = store.job(job_id) or {}
    found = job.get("status")
    revived = found in REVIVED and store.retry_job(job_id) > 0
    return Submitted(job_id, False, found, revived, job.get("correlation_id"))
