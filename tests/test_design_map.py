"""The map at the top of docs/design-notes.md names real modules (a moved module breaks it).

A newcomer finds the clock, the state machine, each device kind, the session contract and each
lane in one look at the map; the look is only worth something while every path in it exists.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _map_section() -> str:
    text = (REPO / "docs" / "design-notes.md").read_text(encoding="utf-8")
    start = text.index("## The map")
    return text[start : text.index("\n## ", start + 1)]


def _paths(section: str) -> list[str]:
    """Every path the map names: full ones, and ``_x.py`` names after a full one in a cell
    (``acquisition/daq/_base.py; _sim.py`` means ``acquisition/daq/_sim.py``)."""
    found: list[str] = []
    for line in section.splitlines():
        folder = ""
        for token in re.findall(r"[\w./]+\.py|[a-z_]+/(?:[a-z_]+/)*(?=[\s`)|,;]|$)", line):
            if "/" in token:
                found.append(token)
                folder = token.rsplit("/", 1)[0] if token.endswith(".py") else token.rstrip("/")
            elif folder:
                found.append(f"{folder}/{token}")
    return found


def test_every_module_and_folder_the_map_names_exists() -> None:
    paths = _paths(_map_section())
    assert len(paths) > 40  # the map is there, and read
    missing = [p for p in paths if not (REPO / p).exists()]
    assert not missing, f"docs/design-notes.md's map names what is not there: {missing}"


def test_the_map_names_the_owner_of_each_part_a_newcomer_looks_for() -> None:
    section = _map_section()
    for part in (
        "the clock",
        "state machine",
        "DAQ",
        "camera",
        "laser",
        "projector",
        "contract",
        "loop lane",
        "record lane",
        "image lane",
        "readout",
        "writer",
    ):
        assert part in section, part
