"""Artifact files under the data directory, addressed by ``(episode_key, fingerprint)``.

Layout (the one place it is defined)::

    DATA_DIR/episodes/<episode_key>/media/           downloaded audio (fingerprint-independent)
    DATA_DIR/episodes/<episode_key>/<fingerprint>/   one artifact set: transcript.json, ...

Every file name of a set is an :class:`Artifact`; the stage graph (``pipeline/dag.py``)
names each stage's outputs with them.

Every write is atomic: a reader sees the old file or the new one, never a partial one.
A set is *finished* when publish has written its manifest (:meth:`ArtifactStore.write_manifest`,
the last write of a run); :meth:`ArtifactStore.finished` and
:meth:`ArtifactStore.newest_finished` are the one answer every reader (CLI, API, search,
digest) uses. Every read of a published set is checked: ``manifest.json`` records each
file's sha256, and :meth:`ArtifactStore.read_checked` raises :class:`ArtifactDamaged` when
a file no longer matches it (a truncated or changed file; docs/security.md, "Corrupt
artifacts").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from podmill.errors import PodmillError

EPISODES_DIR = "episodes"
MEDIA_DIR = "media"
_TEMP_SUFFIX = ".tmp"


class Artifact(StrEnum):
    """The file names of an artifact set, in the order the stages write them."""

    SOURCE = "source.json"  # fetch: the audio file or the publisher transcript used
    TRANSCRIPT_JSON = "transcript.json"
    TRANSCRIPT_SRT = "transcript.srt"
    TRANSCRIPT_VTT = "transcript.vtt"
    TRANSCRIPT_TXT = "transcript.txt"
    SENTENCES = "sentences.json"
    EMBEDDINGS = "embeddings.npz"
    L1 = "l1.json"
    DECIDE = "decide.json"
    L2 = "l2.json"
    SUMMARIES_L1 = "summaries_l1.json"
    SUMMARIES_L2 = "summaries_l2.json"
    TOPICS = "topics.json"
    INDEX = "index.npz"
    SUMMARY_MD = "summary.md"
    LLM_USAGE = "llm_usage.json"  # LLM mode only (docs/llm.md)
    MANIFEST = "manifest.json"  # written last by publish: {"artifacts": {name: {sha256, size}}}


# The transcript file of each format the CLI and the API serve.
TRANSCRIPTS: dict[str, Artifact] = {
    "json": Artifact.TRANSCRIPT_JSON,
    "srt": Artifact.TRANSCRIPT_SRT,
    "vtt": Artifact.TRANSCRIPT_VTT,
    "txt": Artifact.TRANSCRIPT_TXT,
}

# Artifacts users and the API refer to, by kind (the rest are intermediates): the keys of
# ``podmill run --json``'s ``artifacts`` and the ``kind`` of the episode's artifact rows.
KINDS: dict[Artifact, str] = {
    Artifact.TRANSCRIPT_JSON: "transcript_json",
    Artifact.TRANSCRIPT_SRT: "srt",
    Artifact.TRANSCRIPT_VTT: "vtt",
    Artifact.TRANSCRIPT_TXT: "txt",
    Artifact.TOPICS: "topics",
    Artifact.SUMMARY_MD: "summary_md",
    Artifact.MANIFEST: "manifest",
    Artifact.INDEX: "index",
    Artifact.LLM_USAGE: "llm_usage",
}


def stage_usage(stage: str) -> str:
    """The file in which an LLM stage records its own usage (merged into ``llm_usage.json``)."""
    return f"llm_usage_{stage}.json"


@dataclass(frozen=True)
class StoredArtifact:
    """A file in the store; ``relpath`` is relative to the data directory (POSIX form)."""

    name: str
    path: Path
    relpath: str
    sha256: str
    size: int


class ArtifactDamaged(PodmillError):
    """An artifact file no longer matches its manifest checksum, or cannot be parsed."""

    def __init__(self, episode_key: str, fingerprint: str, name: str, reason: str) -> None:
        super().__init__(f"episode {episode_key}'s {name} is damaged ({reason})")
        self.episode_key = episode_key
        self.fingerprint = fingerprint
        self.name = name
        self.reason = reason


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and a rename.

    The temp file is fsynced before ``os.replace`` and the directory after it, so a
    crash leaves the old file or the new one. On error the temp file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden name so listings skip it; O_EXCL so two writers never share a temp file;
    # mode 0o666 so the umask, not this function, decides who may read artifacts.
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}{_TEMP_SUFFIX}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (e.g. Windows).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_component(value: str, what: str) -> None:
    if (
        not value
        or value in (".", "..")
        or "/" in value
        or "\\" in value
        or "\0" in value
        or value.startswith(".")
    ):
        raise ValueError(
            f"{what} must be a plain file name (no path separators, no leading dot), got {value!r}"
        )


class ArtifactStore:
    """Reads and writes artifact files under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def episode_dir(self, episode_key: str, fingerprint: str) -> Path:
        """``DATA_DIR/episodes/<episode_key>/<fingerprint>/`` (not created)."""
        _check_component(episode_key, "episode_key")
        _check_component(fingerprint, "fingerprint")
        if fingerprint == MEDIA_DIR:
            raise ValueError(f"fingerprint {fingerprint!r} is reserved for downloaded media")
        return self.data_dir / EPISODES_DIR / episode_key / fingerprint

    def media_dir(self, episode_key: str) -> Path:
        """``DATA_DIR/episodes/<episode_key>/media/`` (not created); audio is shared by
        every fingerprint of the episode."""
        _check_component(episode_key, "episode_key")
        return self.data_dir / EPISODES_DIR / episode_key / MEDIA_DIR

    def path(self, episode_key: str, fingerprint: str, name: str) -> Path:
        _check_component(name, "artifact name")
        return self.episode_dir(episode_key, fingerprint) / name

    def exists(self, episode_key: str, fingerprint: str, name: str) -> bool:
        return self.path(episode_key, fingerprint, name).is_file()

    def write_bytes(
        self, episode_key: str, fingerprint: str, name: str, data: bytes
    ) -> StoredArtifact:
        """Atomically write one artifact and describe it (checksum, size, paths)."""
        path = self.path(episode_key, fingerprint, name)
        atomic_write_bytes(path, data)
        return self._describe(path, hashlib.sha256(data).hexdigest(), len(data))

    def write_text(
        self, episode_key: str, fingerprint: str, name: str, text: str
    ) -> StoredArtifact:
        """Atomically write UTF-8 text."""
        return self.write_bytes(episode_key, fingerprint, name, text.encode("utf-8"))

    def write_json(self, episode_key: str, fingerprint: str, name: str, obj: Any) -> StoredArtifact:
        """Atomically write ``obj`` as indented UTF-8 JSON (keys in insertion order)."""
        text = json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
        return self.write_text(episode_key, fingerprint, name, text)

    def read_json(self, episode_key: str, fingerprint: str, name: str) -> Any:
        """``name`` parsed as JSON, checked (:meth:`read_checked`)."""
        data = self.read_checked(episode_key, fingerprint, name)
        try:
            return json.loads(data.decode("utf-8"))
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            raise ArtifactDamaged(episode_key, fingerprint, name, "not valid JSON") from None

    def read_text(self, episode_key: str, fingerprint: str, name: str) -> str:
        """``name`` as UTF-8 text, checked (:meth:`read_checked`)."""
        data = self.read_checked(episode_key, fingerprint, name)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise ArtifactDamaged(episode_key, fingerprint, name, "not valid UTF-8") from None

    def read_checked(self, episode_key: str, fingerprint: str, name: str) -> bytes:
        """The bytes of ``name``; :class:`ArtifactDamaged` if the set's manifest records
        another checksum for it (or the manifest itself is unreadable). Files of a set not
        yet published (no manifest) and files the manifest does not list are read as they
        are. ``FileNotFoundError`` if the file is missing."""
        data = self.path(episode_key, fingerprint, name).read_bytes()
        reason = _mismatch(data, self.recorded(episode_key, fingerprint).get(name))
        if reason is not None:
            raise ArtifactDamaged(episode_key, fingerprint, name, reason)
        return data

    def recorded(self, episode_key: str, fingerprint: str) -> dict[str, dict[str, Any]]:
        """The manifest's ``{name: {"sha256", "size"}}``; empty before publish wrote it."""
        path = self.path(episode_key, fingerprint, Artifact.MANIFEST)
        try:
            manifest = json.loads(path.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            raise ArtifactDamaged(
                episode_key, fingerprint, Artifact.MANIFEST, "not valid JSON"
            ) from None
        if not isinstance(manifest, dict):
            raise ArtifactDamaged(episode_key, fingerprint, Artifact.MANIFEST, "not a JSON object")
        artifacts = manifest.get("artifacts")  # absent in a hand-made set: nothing to check
        return artifacts if isinstance(artifacts, dict) else {}

    def damaged(self, episode_key: str, fingerprint: str) -> dict[str, str]:
        """Every file of a published set that is missing or fails its checksum, with the
        reason: ``{name: reason}`` (empty when the set is whole or not yet published)."""
        try:
            recorded = self.recorded(episode_key, fingerprint)
        except ArtifactDamaged as exc:
            return {exc.name: exc.reason}
        found: dict[str, str] = {}
        for name, entry in recorded.items():
            try:
                data = self.path(episode_key, fingerprint, name).read_bytes()
            except (FileNotFoundError, ValueError):  # ValueError: a name that is no file name
                found[name] = "missing"
                continue
            reason = _mismatch(data, entry)
            if reason is not None:
                found[name] = reason
        return found

    def write_manifest(
        self, episode_key: str, fingerprint: str, fields: dict[str, Any]
    ) -> list[StoredArtifact]:
        """Finish the set: write ``manifest.json`` with ``fields`` and every other file's
        checksum and size. It is the set's last write (publish makes it): from here on
        the set is :meth:`finished` and its reads are checked. Returns the files it records,
        then the manifest."""
        files = [a for a in self.list(episode_key, fingerprint) if a.name != Artifact.MANIFEST]
        manifest = {
            **fields,
            "artifacts": {a.name: {"sha256": a.sha256, "size": a.size} for a in files},
        }
        return [*files, self.write_json(episode_key, fingerprint, Artifact.MANIFEST, manifest)]

    def finished(self, episode_key: str, fingerprint: str) -> bool:
        """Whether the set is finished: its manifest exists (publish writes it last; a
        repair moves it aside with the damaged files). Checksums are not checked here but
        on every read (:meth:`read_checked`), where a damaged file is reported and
        re-queued instead of being silently passed over."""
        return self._published_at(episode_key, fingerprint) is not None

    def newest_finished(
        self, episode_key: str, prefer: str | None = None, having: str = Artifact.TOPICS
    ) -> str | None:
        """The fingerprint of the episode's finished set that has ``having``: ``prefer``'s
        set when it is one, else the one published last (newest manifest); None if none."""
        try:
            fingerprints = self.find_fingerprints(episode_key)
        except ValueError:
            return None
        published: dict[str, float] = {}
        for fp in fingerprints:
            at = self._published_at(episode_key, fp)
            if at is not None and self.exists(episode_key, fp, having):
                published[fp] = at
        if prefer in published:
            return prefer
        return max(published, key=published.__getitem__) if published else None

    def _published_at(self, episode_key: str, fingerprint: str) -> float | None:
        """When the set's manifest was written, or None when the set is not finished. A
        set folder that is a link is never finished (it could point outside the data dir)."""
        try:
            directory = self.episode_dir(episode_key, fingerprint)
            if directory.is_symlink():
                return None
            manifest = (directory / Artifact.MANIFEST).stat()
        except (ValueError, OSError):  # not a set name; no manifest (or moved aside just now)
            return None
        return manifest.st_mtime if stat.S_ISREG(manifest.st_mode) else None

    def list(self, episode_key: str, fingerprint: str) -> list[StoredArtifact]:
        """The artifact files of one set, by name; empty if the set does not exist."""
        directory = self.episode_dir(episode_key, fingerprint)
        if not directory.is_dir():
            return []
        files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
        return [self._describe(p, *_hash_file(p)) for p in files]

    def find_fingerprints(self, episode_key: str) -> list[str]:
        """Fingerprints that have an artifact directory for this episode, sorted."""
        _check_component(episode_key, "episode_key")
        directory = self.data_dir / EPISODES_DIR / episode_key
        if not directory.is_dir():
            return []
        return sorted(
            p.name
            for p in directory.iterdir()
            if p.is_dir() and p.name != MEDIA_DIR and not p.name.startswith(".")
        )

    def _describe(self, path: Path, sha256: str, size: int) -> StoredArtifact:
        relpath = path.relative_to(self.data_dir).as_posix()
        return StoredArtifact(name=path.name, path=path, relpath=relpath, sha256=sha256, size=size)


def set_of(folder: Path) -> tuple[ArtifactStore, str, str]:
    """The store, episode key and fingerprint of the artifact set in ``folder``
    (``DATA_DIR/episodes/<episode_key>/<fingerprint>``), for readers that hold a folder."""
    folder = Path(folder)
    return ArtifactStore(folder.parent.parent.parent), folder.parent.name, folder.name


def read_set_json(folder: Path, name: str) -> Any:
    """:meth:`ArtifactStore.read_json` of ``name`` in the set in ``folder``."""
    store, key, fingerprint = set_of(folder)
    return store.read_json(key, fingerprint, name)


def read_set_bytes(folder: Path, name: str) -> bytes:
    """:meth:`ArtifactStore.read_checked` of ``name`` in the set in ``folder``."""
    store, key, fingerprint = set_of(folder)
    return store.read_checked(key, fingerprint, name)


def read_set_text(folder: Path, name: str) -> str:
    """:meth:`ArtifactStore.read_text` of ``name`` in the set in ``folder``."""
    store, key, fingerprint = set_of(folder)
    return store.read_text(key, fingerprint, name)


def _mismatch(data: bytes, recorded: Any) -> str | None:
    """Why ``data`` is not the file the manifest entry ``recorded`` describes, or None."""
    if not isinstance(recorded, dict) or hashlib.sha256(data).hexdigest() == recorded.get("sha256"):
        return None
    size = recorded.get("size")
    if isinstance(size, int) and size != len(data):
        return f"checksum mismatch; {len(data)} of {size} bytes"
    return "checksum mismatch"


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
