"""The exceptions zaprig raises, so callers can tell user mistakes from device faults.

    ZaprigError
    ├── ConfigError        a rig config or protocol is invalid (names file, field, fix)
    │   └── ProtocolError  a protocol is invalid
    ├── DeviceError        a device is missing, refused a command or stopped working
    ├── SessionFileError   a session file cannot be created, read or is not ours
    └── RunAborted         the run was stopped by the user (Ctrl-C, Stop button)

Every message is meant to be shown to an experimenter as it is: it says what is
wrong, where, and what to do, so the CLI prints it without a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "DeviceError",
    "ProtocolError",
    "RunAborted",
    "SessionFileError",
    "ZaprigError",
    "format_validation_error",
]


class ZaprigError(Exception):
    """Base class of every error zaprig raises on purpose."""


class ConfigError(ZaprigError):
    """A rig config is invalid."""


class ProtocolError(ConfigError):
    """A stimulus protocol is invalid."""


class DeviceError(ZaprigError):
    """A device is missing, refused a command, or stopped working."""


class SessionFileError(ZaprigError):
    """A session file cannot be created or read."""


class RunAborted(ZaprigError):
    """The run was stopped by the user."""


def _dotted(loc: Iterable[Any]) -> str:
    """('conditions', 2, 'steps', 0) -> 'conditions[2].steps[0]'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):
            out += ("." if out else "") + str(part)
    return out


def format_validation_error(source: str | Path, errors: Iterable[Mapping[str, Any]]) -> str:
    """Turn pydantic's error list into lines naming the file, the field and the fix.

    pydantic reports locations as tuples (``('daq', 'sample_rate_hz')``); an
    experimenter reads dotted TOML keys, so that is what we print.
    """
    lines = [f"{source}: invalid"]
    for err in errors:
        loc = _dotted(err.get("loc", ()))
        msg = err.get("msg", "invalid value")
        given = err.get("input")
        kind = err.get("type", "")
        hint = ""
        if kind == "extra_forbidden":
            hint = " (unknown field: check its spelling against the documented fields)"
        elif kind == "missing":
            hint = " (required: add it)"
        shown = "" if kind in ("missing",) or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {loc or '<top level>'}: {msg}{shown}{hint}")
    return "\n".join(lines)
