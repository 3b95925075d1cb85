"""The vector index: an immutable *generation* of the ``search_docs`` vectors, held in
memory by the searching process, persisted as files written aside and swapped in
atomically.

Layout under ``DATA_DIR/search/<database id>/``::

    gen-<time>-<pid>/     one generation: ids.npy, vectors.npy, episodes.npy,
                          centroids.npy, offsets.npy, meta.json (written last)
    CURRENT               the name of the live generation (replaced with os.replace)

A generation is built into a ``.tmp`` directory, renamed, and only then named by
``CURRENT``: a reader sees the old generation or the new one, never a partial one. A
reader keeps the generation object it loaded for the whole query; swapping is a
pointer change. Rows added after the generation's ``high_water`` id are searched
exactly by the searcher (:mod:`podmill.search.searcher`), so a new episode is
searchable at once.

Above :data:`IVF_MIN_DOCS` vectors a generation carries an inverted-file index (IVF):
k-means centroids, and the vectors stored grouped by nearest centroid, so a query
scans the ``nprobe`` nearest groups instead of everything. Below it, and for
selective filters, the scan is exact (docs/search.md has the measurements).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IVF_MIN_DOCS = 20_000
# A filter that lets at most this many vectors through is answered by an exact scan of
# just those (cheaper than probing, and never misses a near one).
EXACT_SUBSET_DOCS = 20_000
DEFAULT_NPROBE = 64
KMEANS_ITERATIONS = 8
KEEP_GENERATIONS = 2  # the live one and the one before (a reader may be opening it)


_blas_limited = False


def limit_blas_threads() -> None:
    """One BLAS thread in a searching process. A query's products are small (an IVF
    probe) or memory-bound (an exact scan); concurrent requests are the parallelism,
    and OpenBLAS threads spinning against each other on a busy machine cost several
    times the product itself (measured in docs/search.md)."""
    global _blas_limited
    if _blas_limited:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    _blas_limited = True


@dataclass
class Generation:
    """Vectors in IVF list order; ``ids[i]`` is the row of ``vectors[i]``."""

    name: str
    ids: Any  # int64 (n,)
    vectors: Any  # float32 (n, d), unit rows
    episodes: Any  # int32 (n,): index into episode_keys
    episode_keys: list[str]
    high_water: int  # every row with id <= high_water at build time is in here
    built_at: float  # time.time() when the rows were read
    centroids: Any = None  # float32 (nlist, d) or None: exact only
    offsets: Any = None  # int64 (nlist + 1,): list j is vectors[offsets[j]:offsets[j+1]]
    _key_codes: dict[str, int] = field(default_factory=dict, repr=False)
    _recent: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._key_codes = {k: i for i, k in enumerate(self.episode_keys)}

    def __len__(self) -> int:
        return len(self.ids)

    def recent_ids(self, count: int) -> Any:
        """Its ids within ``count`` of the high-water mark (sorted)."""
        import numpy as np

        if self._recent is None:
            self._recent = np.sort(self.ids[self.ids > self.high_water - count])
        return self._recent

    def mask_for(self, allowed: set[str]) -> Any:
        """Boolean mask of the vectors whose episode is in ``allowed``."""
        import numpy as np

        codes = [self._key_codes[k] for k in allowed if k in self._key_codes]
        return np.isin(self.episodes, np.array(codes, dtype=np.int32))

    def search(
        self,
        query: Any,
        k: int,
        mask: Any = None,
        nprobe: int = DEFAULT_NPROBE,
        exact_below: int = EXACT_SUBSET_DOCS,
    ) -> tuple[Any, Any]:
        """``(ids, scores)`` of the ``k`` best vectors (cosine), best first.

        With a ``mask``, only masked vectors count. The IVF path probes ``nprobe``
        lists (more when the mask is selective, so about as many allowed vectors are
        scanned); an exact scan is used without IVF or when few vectors are allowed.
        """
        import numpy as np

        if len(self) == 0 or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if mask is not None:
            allowed = int(mask.sum())
            if allowed == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            if self.centroids is None or allowed <= exact_below:
                positions = np.flatnonzero(mask)
                return top(self.ids[positions], self.vectors[positions] @ query, k)
            nprobe = int(min(len(self.centroids), np.ceil(nprobe * len(self) / allowed)))
        if self.centroids is None:
            return top(self.ids, self.vectors @ query, k)
        nprobe = min(nprobe, len(self.centroids))
        lists = np.argpartition(-(self.centroids @ query), nprobe - 1)[:nprobe]
        # each list is a contiguous run: score the runs in place (views, no gather copy)
        runs = [(int(self.offsets[j]), int(self.offsets[j + 1])) for j in np.sort(lists)]
        ids = np.concatenate([self.ids[a:b] for a, b in runs])
        scores = np.concatenate([self.vectors[a:b] @ query for a, b in runs])
        if mask is not None:
            keep = np.concatenate([mask[a:b] for a, b in runs])
            ids, scores = ids[keep], scores[keep]
        return top(ids, scores, k)

    def exact(self, query: Any, k: int) -> tuple[Any, Any]:
        """The brute-force answer (the baseline the IVF path is measured against)."""
        return top(self.ids, self.vectors @ query, k)


def top(ids: Any, scores: Any, k: int) -> tuple[Any, Any]:
    """The ``k`` best ``(ids, scores)``, best first; ties go to the lower id."""
    import numpy as np

    part = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
    order = part[np.lexsort((ids[part], -scores[part]))]
    return ids[order], scores[order]


def build(
    ids: Any,
    episode_keys: list[str],
    vectors: Any,
    high_water: int,
    *,
    seed: int = 0,
    ivf_min_docs: int = IVF_MIN_DOCS,
    built_at: float | None = None,
) -> Generation:
    """A generation of ``vectors`` (rows named by ``ids``), with IVF from
    ``ivf_min_docs`` vectors on (below it an exact scan is as fast)."""
    import numpy as np

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    distinct = sorted(set(episode_keys))
    code = {k: i for i, k in enumerate(distinct)}
    episodes = np.array([code[k] for k in episode_keys], dtype=np.int32)
    ids = np.asarray(ids, dtype=np.int64)
    name = f"gen-{time.time_ns()}-{os.getpid()}"
    built_at = time.time() if built_at is None else built_at
    if len(ids) < max(ivf_min_docs, 2):
        return Generation(name, ids, vectors, episodes, distinct, high_water, built_at)
    centroids = _kmeans(vectors, nlist=max(1, int(2 * np.sqrt(len(ids)))), seed=seed)
    assign = _nearest(vectors, centroids)
    order = np.argsort(assign, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=len(centroids)))])
    return Generation(
        name,
        ids[order],
        vectors[order],
        episodes[order],
        distinct,
        high_water,
        built_at,
        centroids,
        offsets.astype(np.int64),
    )


def _nearest(vectors: Any, centroids: Any, chunk: int = 16384) -> Any:
    import numpy as np

    out = np.empty(len(vectors), dtype=np.int64)
    for begin in range(0, len(vectors), chunk):
        out[begin : begin + chunk] = np.argmax(vectors[begin : begin + chunk] @ centroids.T, 1)
    return out


def _kmeans(vectors: Any, nlist: int, seed: int) -> Any:
    """Spherical k-means on a sample (40 points per list is plenty for the centroids)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sample = vectors[rng.choice(len(vectors), min(len(vectors), nlist * 40), replace=False)]
    centroids = sample[rng.choice(len(sample), nlist, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        assign = _nearest(sample, centroids)
        counts = np.bincount(assign, minlength=nlist)
        order = np.argsort(assign, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        sums = np.zeros_like(centroids)
        present = counts > 0  # reduceat sums each list's run of the sorted sample
        sums[present] = np.add.reduceat(sample[order], starts[present], axis=0)
        empty = counts == 0
        sums[empty] = sample[rng.choice(len(sample), int(empty.sum()), replace=False)]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.clip(norms, 1e-12, None)).astype(np.float32)
    return centroids


# ------------------------------------------------------------------------ on disk


def save(generation: Generation, folder: Path, meta: dict[str, Any]) -> None:
    """Write ``generation`` aside and make it the live one (atomic pointer swap)."""
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{generation.name}.tmp"
    tmp.mkdir()
    arrays = {
        "ids": generation.ids,
        "vectors": generation.vectors,
        "episodes": generation.episodes,
    }
    if generation.centroids is not None:
        arrays |= {"centroids": generation.centroids, "offsets": generation.offsets}
    for name, array in arrays.items():
        with open(tmp / f"{name}.npy", "wb") as fh:
            np.save(fh, array)
            fh.flush()
            os.fsync(fh.fileno())
    info = {
        **meta,
        "high_water": generation.high_water,
        "built_at": generation.built_at,
        "count": len(generation),
        "episode_keys": generation.episode_keys,
        "ivf": generation.centroids is not None,
    }
    (tmp / "meta.json").write_text(json.dumps(info))
    os.replace(tmp, folder / generation.name)
    pointer = folder / f"CURRENT.{os.getpid()}.tmp"
    pointer.write_text(generation.name)
    os.replace(pointer, folder / "CURRENT")
    _prune(folder, generation.name)


def _prune(folder: Path, live: str) -> None:
    generations = sorted(
        (p for p in folder.glob("gen-*") if p.is_dir() and not p.name.endswith(".tmp")),
        key=lambda p: p.stat().st_mtime,
    )
    stale = [p for p in generations if p.name != live][: -(KEEP_GENERATIONS - 1) or None]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    cutoff = time.time() - 3600  # a build that died an hour ago will not finish
    for path in folder.glob("*.tmp"):
        if path.stat().st_mtime < cutoff:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink()


def current_name(folder: Path) -> str | None:
    """The live generation's name, ``None`` when there is none yet."""
    try:
        return (folder / "CURRENT").read_text().strip() or None
    except FileNotFoundError:
        return None


def load(folder: Path, name: str) -> tuple[Generation, dict[str, Any]]:
    """Open generation ``name`` (memory-mapped). ``FileNotFoundError`` when it was
    pruned meanwhile: read ``CURRENT`` again."""
    import numpy as np

    path = folder / name
    meta = json.loads((path / "meta.json").read_text())

    def array(key: str) -> Any:
        return np.load(path / f"{key}.npy", mmap_mode="r")

    generation = Generation(
        name,
        np.asarray(array("ids")),
        array("vectors"),
        np.asarray(array("episodes")),
        list(meta["episode_keys"]),
        int(meta["high_water"]),
        float(meta["built_at"]),
        np.asarray(array("centroids")) if meta["ivf"] else None,
        np.asarray(array("offsets")) if meta["ivf"] else None,
    )
    return generation, meta
