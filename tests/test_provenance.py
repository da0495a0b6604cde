"""Every parameter of the built-in protocol and of the closed-loop law has a source: a
publication (authors, year, where in it) or a reason we chose it (issue 26)."""

from __future__ import annotations

import re
from pathlib import Path

from stimuli.builtin import dataset_protocol
from stimuli.docs import PROVENANCE_PATH, pages
from stimuli.provenance import PAPERS, SOURCES, law_rows, provenance_rows, source_of

REPO = Path(__file__).resolve().parents[1]


def test_every_parameter_cites_a_paper_or_says_why_it_was_chosen() -> None:
    rows = [*provenance_rows(dataset_protocol()), *law_rows()]
    assert {r[0] for r in rows} >= {"protocol", "gain", "dots", "law"}
    for cond, name, _value, _unit, _md in rows:
        src = source_of(cond, name)
        assert src is not None, (cond, name)
        assert src.note.strip(), (cond, name)
        if src.kind != "chosen":
            assert src.cites, f"{cond}.{name}: a {src.kind} source must cite a publication"
    for key, where in (c for s in SOURCES.values() for c in s.cites):
        assert re.search(r"\b(19|20)\d\d\b", PAPERS[key]), key  # authors and year
        assert where.strip(), key  # and where in it


def test_the_page_holds_the_sources_column_and_is_current() -> None:
    text = PROVENANCE_PATH.read_text(encoding="utf-8")
    assert text == pages()[PROVENANCE_PATH.name], "run `python -m stimuli.docs`"
    assert "| `feedback_delay_ms` | 0 | ms |" in text
    assert "| law | `keep` | 0.3 |" in text
    assert "Ahrens et al. 2012, Nature 485:471-477" in text


def test_no_page_calls_a_10_mm_period_10_mm_bars() -> None:
    for folder in ("docs", "stimuli"):
        for path in (REPO / folder).rglob("*"):
            if path.suffix in (".md", ".py"):
                assert "(10 mm bars)" not in path.read_text(encoding="utf-8"), path
