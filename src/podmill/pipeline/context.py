"""What a stage function receives: the episode, settings and its artifact directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podmill.domain import Episode
from podmill.settings import Settings
from podmill.storage.artifacts import ArtifactStore, StoredArtifact


@dataclass
class StageContext:
    settings: Settings
    episode: Episode
    fingerprint: str
    store: ArtifactStore
    # Called with the audio position (seconds) the transcriber has reached.
    on_audio_progress: Callable[[float], None] | None = None
    # Facts a stage wants recorded on its step (e.g. "fell back to ASR: …").
    notes: list[str] = field(default_factory=list)
    sessions: Any = None  # sqlalchemy sessionmaker: where the finish projects the set's rows

    @property
    def key(self) -> str:
        return self.episode.episode_key

    def path(self, name: str) -> Path:
        return self.store.path(self.key, self.fingerprint, name)

    def exists(self, name: str) -> bool:
        return self.store.exists(self.key, self.fingerprint, name)

    def read_json(self, name: str) -> Any:
        return self.store.read_json(self.key, self.fingerprint, name)

    def write_json(self, name: str, obj: Any) -> StoredArtifact:
        return self.store.write_json(self.key, self.fingerprint, name, obj)

    def write_text(self, name: str, text: str) -> StoredArtifact:
        return self.store.write_text(self.key, self.fingerprint, name, text)

    def write_bytes(self, name: str, data: bytes) -> StoredArtifact:
        return self.store.write_bytes(self.key, self.fingerprint, name, data)
