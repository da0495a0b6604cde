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
    errors = list(errors)
    locs = [tuple(e.get("loc", ())) for e in errors]
    # a list whose item failed is also reported "too short" (the item was dropped): that
    # line names no mistake of the user's, only the one below it does
    errors = [
        e for e, loc in zip(errors, locs, strict=True)
        if not (e.get("type") == "too_short" and any(o[: len(loc)] == loc and o != loc for o in locs))
    ]  # fmt: skip
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
        elif kind in ("float_type", "int_type") and isinstance(given, str):
            hint = " (write the number without quotes: values are never converted)"
        elif kind in ("int_type", "int_from_float"):
            hint = " (write a whole number, without a decimal point)"
        elif kind == "bool_type":
            hint = " (write true or false)"
        elif kind == "string_type":
            hint = " (write it in quotes)"
        shown = "" if kind in ("missing",) or isinstance(given, dict) else f" (got {given!r})"
        lines.append(f"  {loc or '<top level>'}: {msg}{shown}{hint}")
    return "\n".join(lines)


def check_writable(path: str | Path, flag: str, folder: bool = False) -> None:
    """Refuse an output path that cannot be written, before any work, with the fix.

    ``path`` is a file (``folder``: a folder) that may not exist yet: the nearest existing folder
    above it is probed by creating (and removing) a file in it, because permission bits
    say nothing on /proc, read-only mounts or a full disk.
    """
    import errno
    import tempfile

    p = Path(path)
    if len(p.name.encode()) > 255 and not (folder and p.is_dir()):
        raise ZaprigError(
            f"{flag} {str(p)[:60]}...: the name is {len(p.name)} characters, more than a file "
            "name may have (255 bytes): give a shorter one"
        )
    base = p if folder else p.parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        raise ZaprigError(f"{flag} {p}: {base} is a file, not a folder: give another path")
    try:
        with tempfile.NamedTemporaryFile(dir=base, prefix=".zaprig-probe-"):
            pass
    except OSError as e:
        why = {errno.ENOSPC: "the disk is full", errno.EROFS: "the disk is read-only"}.get(
            e.errno or 0, "nothing can be written there"
        )
        raise ZaprigError(
            f"{flag} {p}: cannot write in {base} ({why}: {e.strerror or e}); "
            "give a path in a folder you can write"
        ) from None
