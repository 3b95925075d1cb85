"""A bare ``pip install podmill`` simulated in a subprocess: the extras' modules cannot load.

The modules to hide are derived from pyproject.toml, so the simulation follows the extras
as they change: every distribution an extra pulls in (its requirements, recursively, as
installed here) minus every distribution the core dependencies pull in, mapped to its
top-level modules with :func:`importlib.metadata.packages_distributions`. A
``sitecustomize.py`` put first on ``PYTHONPATH`` wraps every meta path finder so that
none finds those modules or distributions, as where they are not installed.
"""

from __future__ import annotations

import importlib.metadata as metadata
import tomllib
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from support.paths import ROOT

_SITECUSTOMIZE = """\
import re
import sys

_MODULES = {modules!r}
_PACKAGES = {packages!r}
_DISTRIBUTIONS = {distributions!r}


class _NotInstalled:
    # Wraps a finder so that it finds none of the hidden modules and distributions, as
    # where they are not installed: find_spec() is None, import raises ModuleNotFoundError,
    # importlib.metadata does not list them.
    def __init__(self, finder):
        self._finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _MODULES or any(
            name == p or name.startswith(p + ".") for p in _PACKAGES
        ):
            return None
        find = getattr(self._finder, "find_spec", None)
        return find(name, path, target) if find is not None else None

    def find_distributions(self, *args, **kwargs):
        find = getattr(self._finder, "find_distributions", None)
        for dist in find(*args, **kwargs) if find is not None else ():
            name = re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower()
            if name not in _DISTRIBUTIONS:
                yield dist

    def __getattr__(self, attr):
        return getattr(self._finder, attr)


sys.meta_path[:] = [_NotInstalled(finder) for finder in sys.meta_path]
"""


@cache
def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def extras() -> dict[str, list[str]]:
    """Each extra of pyproject.toml and its requirement strings."""
    return dict(_project()["optional-dependencies"])


def _closure(requirements: list[str]) -> set[str]:
    """Installed distributions (canonical names) ``requirements`` pull in, recursively."""
    seen: set[str] = set()
    todo = [(Requirement(r), frozenset()) for r in requirements]
    while todo:
        req, parent_extras = todo.pop()
        env = [{"extra": e} for e in parent_extras] or [{"extra": ""}]
        if req.marker is not None and not any(req.marker.evaluate(e) for e in env):
            continue
        name = canonicalize_name(req.name)
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # not installed here: nothing to hide
        todo += [(Requirement(r), frozenset(req.extras)) for r in dist.requires or []]
    return {key.partition("[")[0] for key in seen}


@cache
def _distributions_by_module() -> dict[str, set[str]]:
    return {
        module: {canonicalize_name(d) for d in dists}
        for module, dists in metadata.packages_distributions().items()
    }


def _modules_of(distributions: set[str]) -> set[str]:
    return {m for m, dists in _distributions_by_module().items() if dists & distributions}


@cache
def core_distributions() -> frozenset[str]:
    return frozenset(_closure(list(_project()["dependencies"])) | {"podmill"})


@cache
def distributions_of(*names: str) -> frozenset[str]:
    """Distributions the given extras pull in that the core install does not."""
    requirements = [r for name in names for r in extras()[name]]
    return frozenset(_closure(requirements) - core_distributions())


def hidden_distributions(missing: tuple[str, ...], installed: tuple[str, ...] = ()) -> set[str]:
    """Distributions absent when the ``missing`` extras are not installed but the
    ``installed`` ones are (a distribution both need stays)."""
    keep = distributions_of(*installed) if installed else frozenset()
    return set(distributions_of(*missing) - keep)


def hidden_modules(missing: tuple[str, ...], installed: tuple[str, ...] = ()) -> set[str]:
    """Top-level modules that only :func:`hidden_distributions` provide. A namespace that
    kept distributions share (``opentelemetry``: the API, which FastAPI needs, beside the
    SDK of the ``tracing`` extra) stays; :func:`hidden_packages` hides the hidden parts."""
    hidden = frozenset(hidden_distributions(missing, installed))
    return {m for m, dists in _distributions_by_module().items() if dists and dists <= hidden}


def hidden_packages(missing: tuple[str, ...], installed: tuple[str, ...] = ()) -> set[str]:
    """Dotted sub-packages (``opentelemetry.sdk``) that hidden distributions put into a
    namespace a kept distribution shares, less those a kept distribution provides."""
    hidden = frozenset(hidden_distributions(missing, installed))
    shared = {m for m, d in _distributions_by_module().items() if d & hidden and d - hidden}
    found: dict[str, set[str]] = {}
    for module in shared:
        for name in _distributions_by_module()[module]:
            for path in metadata.distribution(name).files or []:
                parts = path.parts
                if len(parts) > 2 and parts[0] == module and not parts[1].endswith(".dist-info"):
                    found.setdefault(f"{module}.{parts[1]}", set()).add(name)
    return {p for p, dists in found.items() if dists <= hidden}


def listed_modules(*names: str) -> set[str]:
    """Top-level modules of the packages the given extras name themselves (installed here)."""
    listed = {canonicalize_name(Requirement(r).name) for name in names for r in extras()[name]}
    return _modules_of(frozenset(listed))


@cache
def extras_providing(module: str) -> set[str]:
    """The extras whose installation brings ``module`` (top level)."""
    return {name for name in extras() if module in _modules_of(distributions_of(name))}


def write_sitecustomize(
    folder: Path, missing: tuple[str, ...], installed: tuple[str, ...] = ()
) -> Path:
    """``folder/sitecustomize.py`` hiding the ``missing`` extras (keeping what the
    ``installed`` ones need); put ``folder`` first on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    text = _SITECUSTOMIZE.format(
        modules=sorted(hidden_modules(missing, installed)),
        packages=sorted(hidden_packages(missing, installed)),
        distributions=sorted(hidden_distributions(missing, installed)),
    )
    (folder / "sitecustomize.py").write_text(text)
    return folder
