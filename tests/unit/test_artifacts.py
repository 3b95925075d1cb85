"""Artifact files: layout, atomic writes, checksums, name validation."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from podmill.storage.artifacts import Artifact, ArtifactStore, atomic_write_bytes

KEY = "e" * 32
FP = "f" * 32


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore(tmp_path / "data")


def test_layout(store: ArtifactStore) -> None:
    root = store.data_dir
    assert store.episode_dir(KEY, FP) == root / "episodes" / KEY / FP
    assert store.media_dir(KEY) == root / "episodes" / KEY / "media"
    assert (
        store.path(KEY, FP, "transcript.json") == root / "episodes" / KEY / FP / "transcript.json"
    )


def test_write_bytes_reports_checksum_size_and_relative_path(store: ArtifactStore) -> None:
    data = b"hello artifact\n" * 1000
    stored = store.write_bytes(KEY, FP, "transcript.txt", data)

    assert stored.name == "transcript.txt"
    assert stored.path.read_bytes() == data
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.relpath == f"episodes/{KEY}/{FP}/transcript.txt"
    assert store.data_dir / stored.relpath == stored.path
    assert store.exists(KEY, FP, "transcript.txt")
    assert not store.exists(KEY, FP, "summary.md")


def test_write_json_keeps_key_order_and_unicode(store: ArtifactStore) -> None:
    obj = {"zeta": 1, "alpha": "café ☕", "nested": {"b": [1, 2], "a": None}}
    stored = store.write_json(KEY, FP, "topics.json", obj)

    text = stored.path.read_text("utf-8")
    assert text.endswith("}\n")
    assert "café ☕" in text
    assert text.index('"zeta"') < text.index('"alpha"')
    assert text == json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
    assert store.read_json(KEY, FP, "topics.json") == obj


def test_write_text_is_utf8(store: ArtifactStore) -> None:
    stored = store.write_text(KEY, FP, "summary.md", "# Über\n")
    assert stored.path.read_bytes() == "# Über\n".encode()
    assert stored.size == len("# Über\n".encode())


def test_overwrite_replaces_content(store: ArtifactStore) -> None:
    store.write_text(KEY, FP, "summary.md", "old")
    stored = store.write_text(KEY, FP, "summary.md", "new")
    assert stored.path.read_text() == "new"
    assert [p.name for p in stored.path.parent.iterdir()] == ["summary.md"]


def test_list_and_find_fingerprints(store: ArtifactStore) -> None:
    assert store.list(KEY, FP) == []
    assert store.find_fingerprints(KEY) == []

    a = store.write_text(KEY, FP, "b.txt", "bbb")
    b = store.write_json(KEY, FP, "a.json", [1])
    store.write_text(KEY, "0" * 32, "x.txt", "x")
    atomic_write_bytes(store.media_dir(KEY) / "audio.mp3", b"ID3")
    (store.episode_dir(KEY, FP) / ".b.txt.abc.tmp").write_bytes(b"stray temp")

    assert store.list(KEY, FP) == [b, a]  # by name; temp files ignored
    assert store.find_fingerprints(KEY) == ["0" * 32, FP]  # media is not a fingerprint


@pytest.mark.parametrize(
    "name", ["", ".", "..", "../escape.json", "a/b.json", "a\\b.json", ".hidden", "nul\0.txt"]
)
def test_rejects_names_that_are_not_plain_file_names(store: ArtifactStore, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        store.write_text(KEY, FP, name, "x")
    with pytest.raises(ValueError):
        store.path(KEY, FP, name)


@pytest.mark.parametrize("key", ["..", "a/b", ""])
def test_rejects_keys_that_would_leave_the_data_dir(store: ArtifactStore, key: str) -> None:
    with pytest.raises(ValueError):
        store.episode_dir(key, FP)
    with pytest.raises(ValueError):
        store.episode_dir(KEY, key)
    with pytest.raises(ValueError):
        store.media_dir(key)
    with pytest.raises(ValueError, match="reserved"):
        store.episode_dir(KEY, "media")


def test_failed_replace_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out" / "transcript.json"
    atomic_write_bytes(target, b"old")

    def broken_replace(src: str | Path, dst: str | Path) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        atomic_write_bytes(target, b"new")

    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["transcript.json"]


def test_target_is_a_directory_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "summary.md"
    target.mkdir()
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.md"]
    assert target.is_dir()


def test_failed_write_leaves_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        atomic_write_bytes(tmp_path / "a.txt", b"data")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_creates_parent_and_respects_umask(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "file.bin"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def _publish(store: ArtifactStore, fingerprint: str, at: float) -> None:
    """A finished set whose manifest was written at ``at`` (seconds since the epoch)."""
    store.write_json(KEY, fingerprint, Artifact.TOPICS, {"root": {}})
    store.write_manifest(KEY, fingerprint, {"fingerprint": fingerprint})
    os.utime(store.path(KEY, fingerprint, Artifact.MANIFEST), (at, at))


def test_a_set_is_finished_once_its_manifest_is_written(store: ArtifactStore) -> None:
    topics = store.write_json(KEY, FP, Artifact.TOPICS, {"root": {}})
    assert not store.finished(KEY, FP)  # a topic tree alone is a run still going (or cut short)
    assert store.newest_finished(KEY) is None

    recorded = store.write_manifest(KEY, FP, {"fingerprint": FP})

    assert [a.name for a in recorded] == ["topics.json", "manifest.json"]
    assert store.finished(KEY, FP) and store.newest_finished(KEY) == FP
    assert store.read_json(KEY, FP, Artifact.MANIFEST) == {
        "fingerprint": FP,
        "artifacts": {"topics.json": {"sha256": topics.sha256, "size": topics.size}},
    }


def test_newest_finished_prefers_the_callers_set_else_the_last_published(
    store: ArtifactStore,
) -> None:
    old, new, ours = "1" * 32, "2" * 32, "3" * 32
    _publish(store, old, 1_000_000)
    _publish(store, new, 2_000_000)
    store.write_json(KEY, "4" * 32, Artifact.TOPICS, {"root": {}})  # newest tree, unfinished
    assert store.newest_finished(KEY) == new
    assert store.newest_finished(KEY, prefer=ours) == new  # ours is not there yet
    _publish(store, ours, 500_000)
    assert store.newest_finished(KEY, prefer=ours) == ours
    assert store.newest_finished(KEY, having=Artifact.TRANSCRIPT_TXT) is None
    store.write_text(KEY, old, Artifact.TRANSCRIPT_TXT, "words")
    assert store.newest_finished(KEY, prefer=ours, having=Artifact.TRANSCRIPT_TXT) == old
    assert store.newest_finished("../" + KEY) is None


def test_a_linked_set_folder_is_never_finished(store: ArtifactStore, tmp_path: Path) -> None:
    elsewhere = ArtifactStore(tmp_path / "elsewhere")
    elsewhere.write_text(KEY, FP, Artifact.TOPICS, "{}")
    elsewhere.write_manifest(KEY, FP, {})
    store.episode_dir(KEY, FP).parent.mkdir(parents=True)
    store.episode_dir(KEY, FP).symlink_to(elsewhere.episode_dir(KEY, FP))
    assert not store.finished(KEY, FP)
    assert store.newest_finished(KEY) is None
