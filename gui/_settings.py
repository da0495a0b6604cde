"""Remembering the set-up between runs of the app (QSettings): rig, protocol, scale, fish form.

A rig day is many fish on the same set-up: the app comes back with the last rig
config, protocol (built-in or file), time scale, clock, output folder and the
fish form, so only what changes from fish to fish has to be typed. Values are
written when a session starts and when the app closes; a value that no longer
applies (a deleted config or protocol file) is skipped and the default stays.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gui._qt import QtCore

if TYPE_CHECKING:
    from gui._window_layout import WindowLayout

__all__ = ["default_settings", "restore_setup", "save_setup"]

_FISH_TEXT = ("fish_id", "genotype", "experimenter")


def default_settings() -> QtCore.QSettings:
    """The user's settings store (per user, per machine)."""
    return QtCore.QSettings("zaprig", "zaprig")


def save_setup(s: QtCore.QSettings, w: WindowLayout) -> None:
    s.setValue("rig/config", str(w.rig_panel.config_path))
    p = w.protocol_panel
    s.setValue("protocol/builtin", p.builtin.isChecked())
    s.setValue("protocol/file", p.file_edit.text())
    s.setValue("protocol/scale", float(p.scale.value()))
    s.setValue("session/clock", w.session_bar.clock_kind)
    f = w.fish_panel
    for key in _FISH_TEXT:
        s.setValue(f"fish/{key}", getattr(f, key).text())
    s.setValue("fish/age_dpf", int(f.age_dpf.value()))
    s.setValue("fish/notes", f.notes.toPlainText())
    s.setValue("fish/seed", int(f.seed.value()))
    s.setValue("session/out_dir", f.out_edit.text())
    s.sync()


def _str(s: QtCore.QSettings, key: str) -> str | None:
    v = s.value(key)
    return None if v is None else str(v)


def restore_setup(s: QtCore.QSettings, w: WindowLayout, *, config: bool, out_dir: bool) -> None:
    """Put the remembered set-up back; ``config``/``out_dir``: also those (not given explicitly)."""
    if config and (path := _str(s, "rig/config")) and Path(path).is_file():
        w.rig_panel.load(Path(path))
    p = w.protocol_panel
    if (scale := s.value("protocol/scale")) is not None:
        p.scale.setValue(float(scale))
    file = _str(s, "protocol/file") or ""
    builtin = str(s.value("protocol/builtin", "true")).lower() in ("true", "1")
    if not builtin and file and Path(file).is_file():
        p.set_file(Path(file))
    else:
        p.file_edit.setText(file)
    clock = _str(s, "session/clock")
    if clock is not None:
        i = w.session_bar.clock.findData(clock)
        item = w.session_bar.clock.model().item(i) if i >= 0 else None  # type: ignore[union-attr]
        if item is not None and item.isEnabled():
            w.session_bar.clock.setCurrentIndex(i)
    f = w.fish_panel
    for key in _FISH_TEXT:
        if (v := _str(s, f"fish/{key}")) is not None:
            getattr(f, key).setText(v)
    if (age := s.value("fish/age_dpf")) is not None:
        f.age_dpf.setValue(int(age))
    if (notes := _str(s, "fish/notes")) is not None:
        f.notes.setPlainText(notes)
    if (seed := s.value("fish/seed")) is not None:
        f.seed.setValue(int(seed))
    if out_dir and (out := _str(s, "session/out_dir")):
        f.out_edit.setText(out)
