"""Cross-feed digests: new episodes, story clusters and a time-budgeted topic list.

``collect`` reads the window's episodes and their trees, ``build`` makes the document
(``podmill.digest/1``, described by ``schema/digest-v1.json``), ``render`` turns it into
Markdown or HTML, ``weekly`` stores one per tenant per week in serve mode.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

SCHEMA_FILE = "digest-v1.json"


def json_schema() -> dict[str, Any]:
    """The JSON schema of the digest document (shipped with the package)."""
    import json

    text = (resources.files("podmill.digest") / "schema" / SCHEMA_FILE).read_text("utf-8")
    return json.loads(text)
