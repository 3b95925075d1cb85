"""One answer to "which artifact set of an episode is finished" (issue 18, item 2).

A set is finished when publish has written its manifest. Before, ``podmill show`` and
``podmill index rebuild`` took the set with the newest ``topics.json`` and the server took
its own set as soon as it had one, while the digest waited for the manifest: a run cut
short after ``synthesize`` was shown, indexed and served as if done. Here one episode is
processed for real (a publisher transcript: no ASR), its finished set is kept under
another fingerprint, and an unfinished copy (no manifest, another title, written later)
takes the server's own fingerprint: every reader must pick the finished set.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select

from podmill.digest.collect import newest_finished_set
from podmill.domain import Episode, TranscriptLink
from podmill.engine.runner import Runner
from podmill.ml.embed import embed
from podmill.pipeline.projection import rebuild_from_artifacts
from podmill.platform import Platform
from podmill.settings import Settings
from podmill.storage.artifacts import ArtifactStore
from podmill.storage.db import make_engine, session_factory
from podmill.storage.models import SearchDocRow

from support.cli import run_cli
from support.paths import FIXTURES

TRANSCRIPT = FIXTURES / "transcripts" / "podcast-namespace__podcasting-qa-trailer.vtt"
KEY = "c0ffee00deadbeef"
FINISHED = "0" * 32  # the finished set's fingerprint: not the server's


def test_every_reader_takes_the_set_with_a_manifest(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    episode = Episode(
        episode_key=KEY,
        title="Trailer",
        audio_url=None,
        transcripts=[TranscriptLink(TRANSCRIPT.as_uri(), "text/vtt")],
        allow_file_urls=True,
    )
    (result,) = Runner(settings).run_many([episode])
    assert result.status == "done", result.error
    store = ArtifactStore(settings.data_dir)
    ours = result.fingerprint
    finished = store.episode_dir(KEY, FINISHED)
    store.episode_dir(KEY, ours).rename(finished)
    unfinished = store.episode_dir(KEY, ours)
    shutil.copytree(finished, unfinished, ignore=shutil.ignore_patterns("manifest.json"))
    tree = json.loads((unfinished / "topics.json").read_text())
    tree["root"]["title"] = "UNFINISHED"
    (unfinished / "topics.json").write_text(json.dumps(tree))  # the newest topics.json
    title = json.loads((finished / "topics.json").read_text())["root"]["title"]
    assert title != "UNFINISHED"

    show = run_cli("show", KEY, "--data-dir", settings.data_dir, "--format", "json", timeout=120)
    assert show.code == 0, show.stderr
    assert json.loads(show.stdout)["root"]["title"] == title

    platform = Platform(settings)
    try:
        assert platform.fingerprint == ours
        assert platform.artifact_dir(KEY) == finished
        assert platform.artifact_dir(KEY, "transcript.txt") == finished
    finally:
        platform.close()

    assert newest_finished_set(settings.data_dir)(KEY) == finished

    engine = make_engine(settings.database_url)
    try:
        report = rebuild_from_artifacts(settings.data_dir, session_factory(engine), embed)
        assert report.episodes == 1 and report.skipped == []
        with engine.connect() as conn:
            indexed = conn.execute(select(SearchDocRow.fingerprint).distinct()).scalars().all()
        assert indexed == [FINISHED]
    finally:
        engine.dispose()
