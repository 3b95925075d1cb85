"""A bare ``pip install podmill`` simulated in a subprocess: the extras' modules cannot load.

The modules to hide are derived from pyproject.toml, so the simulation follows the extras
as they change: every distribution an extra pulls in (its requirements, recursively, as
installed here) minus every distribution the core dependencies pull in, mapped to its
top-level modules with :func:`importlib.metadata.packages_distributions`. A
``sitecustomize.py`` put first on ``PYTHONPATH`` installs a meta path finder that makes
those modules raise ``ModuleNotFoundError``, as they would where they are not installed.
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
import sys


class _NotInstalled:
    # an extra's module, hidden as if its distribution were not installed
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
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


def hidden_modules(missing: tuple[str, ...], installed: tuple[str, ...] = ()) -> set[str]:
    """Top-level modules absent when the ``missing`` extras are not installed but the
    ``installed`` ones are (a module both provide stays)."""
    keep = distributions_of(*installed) if installed else frozenset()
    return _modules_of(distributions_of(*missing) - keep)


def listed_modules(*names: str) -> set[str]:
    """Top-level modules of the packages the given extras name themselves (installed here)."""
    listed = {canonicalize_name(Requirement(r).name) for name in names for r in extras()[name]}
    return _modules_of(frozenset(listed))


@cache
def extras_providing(module: str) -> set[str]:
    """The extras whose installation brings ``module`` (top level)."""
    return {name for name in extras() if module in _modules_of(distributions_of(name))}


def write_sitecustomize(folder: Path, blocked: set[str]) -> Path:
    """``folder/sitecustomize.py`` hiding ``blocked``; put ``folder`` first on PYTHONPATH."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(blocked=sorted(blocked)))
    return folder
