"""Generated tables in the docs: a benchmark rewrites only the block between its markers."""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_block"]


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the block between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``
    (appended at the end when the markers are not there yet)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = path.read_text(encoding="utf-8")
    a, b = doc.find(begin), doc.find(end)
    block = f"{begin}\n{text}{end}"
    doc = doc[:a] + block + doc[b + len(end) :] if a >= 0 and b > a else f"{doc}\n{block}\n"
    path.write_text(doc, encoding="utf-8")
