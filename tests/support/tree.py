"""The topic tree's contract, whatever built the tree."""

from __future__ import annotations

from typing import Any

import pytest


def assert_tree_contract(node: dict[str, Any], lo: float, hi: float) -> None:
    """Times nested inside the parent, children tiling it without overlap."""
    assert lo - 1e-6 <= node["start"] <= node["end"] <= hi + 1e-6
    children = node["children"]
    if children:
        assert children[0]["start"] == pytest.approx(node["start"])
        assert children[-1]["end"] == pytest.approx(node["end"])
        assert children[0]["word_start"] == node["word_start"]
        assert children[-1]["word_end"] == node["word_end"]
        for a, b in zip(children, children[1:]):
            assert a["end"] == pytest.approx(b["start"])
            assert a["word_end"] == b["word_start"]
        for child in children:
            assert child["level"] == node["level"] + 1
            assert child["title"] and child["summary"]
            assert_tree_contract(child, node["start"], node["end"])


def walk(node: dict[str, Any]):
    yield node
    for child in node["children"]:
        yield from walk(child)
