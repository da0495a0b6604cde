"""The Fish & session panel: who is under the microscope, who runs it, where the file goes.

What is entered here is stored in the session file's ``fish`` attribute (JSON)
with the same keys ``zaprig run`` uses, so files from the GUI and the command
line read the same.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gui._qt import QtWidgets

__all__ = ["FishPanel", "next_fish_id"]


#: A date at the end of an ID (2024-11-03, 2024_11_03, 20241103, 03.11.2024): not a counter.
_TRAILING_DATES = (
    re.compile(r"(?<!\d)(?P<y>\d{4})[-_.]?(?P<m>\d{2})[-_.]?(?P<d>\d{2})$"),
    re.compile(r"(?<!\d)(?P<d>\d{2})[-_.](?P<m>\d{2})[-_.](?P<y>\d{4})$"),
)


def ends_in_date(fish_id: str) -> bool:
    """Whether the ID ends in a calendar date (counting it up would make a wrong date)."""
    for pattern in _TRAILING_DATES:
        m = pattern.search(fish_id)
        if m and 1900 <= int(m["y"]) <= 2199 and 1 <= int(m["m"]) <= 12 and 1 <= int(m["d"]) <= 31:
            return True
    return False


def next_fish_id(fish_id: str) -> str:
    """The next fish of a series: a trailing number counts up ("F3-1" -> "F3-2"), else "-2".

    An ID that ends in a date gets "-2" too: "F2024-11-03" -> "F2024-11-03-2", not the 4th.
    """
    fish_id = fish_id.strip()
    if not fish_id:
        return ""
    m = re.search(r"(\d+)$", fish_id)
    if m is None or ends_in_date(fish_id):
        return f"{fish_id}-2"
    digits = m.group(1)
    return fish_id[: m.start()] + str(int(digits) + 1).zfill(len(digits))


class FishPanel(QtWidgets.QWidget):
    def __init__(self, out_dir: Path, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.fish_id = QtWidgets.QLineEdit()
        self.fish_id.setPlaceholderText("e.g. F2024-11-03-1 (names the session file)")
        self.age_dpf = QtWidgets.QSpinBox()
        self.age_dpf.setRange(0, 60)
        self.age_dpf.setSpecialValueText("not given")
        self.age_dpf.setSuffix(" dpf")
        self.age_dpf.setValue(0)
        self.genotype = QtWidgets.QLineEdit()
        self.genotype.setPlaceholderText("e.g. elavl3:H2B-GCaMP7f")
        self.experimenter = QtWidgets.QLineEdit()
        self.notes = QtWidgets.QPlainTextEdit()
        self.notes.setPlaceholderText("mounting, health, anything unusual")
        self.notes.setMaximumHeight(80)
        self.seed = QtWidgets.QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.seed.setToolTip("Seed of the virtual fish (simulated rigs only)")
        self.out_edit = QtWidgets.QLineEdit(str(out_dir))
        browse = QtWidgets.QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        out_row = QtWidgets.QHBoxLayout()
        out_row.addWidget(self.out_edit, 1)
        out_row.addWidget(browse)

        self.next_fish_button = QtWidgets.QPushButton("Next fish, same set-up")
        self.next_fish_button.setToolTip(
            "Keep the rig, protocol, genotype, age and experimenter; count the fish ID up and "
            "clear the per-fish notes"
        )
        self.next_fish_button.clicked.connect(self.next_fish)

        form = QtWidgets.QFormLayout(self)
        form.addRow("Fish ID", self.fish_id)
        form.addRow("Age", self.age_dpf)
        form.addRow("Genotype", self.genotype)
        form.addRow("Experimenter", self.experimenter)
        form.addRow("Notes", self.notes)
        form.addRow("Virtual fish seed", self.seed)
        form.addRow("Output folder", out_row)
        form.addRow("", self.next_fish_button)

    def next_fish(self) -> None:
        self.fish_id.setText(next_fish_id(self.fish_id.text()))
        self.notes.clear()
        self.fish_id.setFocus()
        self.fish_id.selectAll()

    def _browse(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(
            self, "Output folder", self.out_edit.text()
        )
        if path:
            self.out_edit.setText(path)

    @property
    def out_dir(self) -> Path:
        return Path(self.out_edit.text().strip() or "sessions")

    def fish(self) -> dict[str, Any]:
        """The fish metadata for ``Engine(fish=...)``; empty fields are left out."""
        values: dict[str, Any] = {
            "fish_id": self.fish_id.text().strip(),
            "age_dpf": self.age_dpf.value() or None,
            "genotype": self.genotype.text().strip(),
            "experimenter": self.experimenter.text().strip(),
            "notes": self.notes.toPlainText().strip(),
        }
        return {k: v for k, v in values.items() if v not in (None, "")}

    def set_running(self, running: bool) -> None:
        for w in (self.fish_id, self.age_dpf, self.genotype, self.experimenter, self.notes,
                  self.seed, self.out_edit, self.next_fish_button):  # fmt: skip
            w.setEnabled(not running)
