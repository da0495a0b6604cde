"""Optional packages: loaded only where used, and named with their extra when missing.

The core install (``pip install zaprig``: numpy, scipy, h5py, hdf5plugin, pydantic, tqdm,
psutil, pyserial) runs a whole simulated session. Everything else belongs to an extra
(``pyproject.toml``'s ``[project.optional-dependencies]``) and is imported only by the
function or module that uses it. Asking for such a part without its extra must end in one
line that names the extra and the command to install it (the CLI prints a
:class:`~rig.core.errors.ZaprigError` as ``zaprig: error: ...``, exit 2), never a traceback:

* :func:`require` at the point of use: ``require("tensorstore", "reading a .zarr label file")``;
* :func:`optional_part` around the import of a whole optional part (the GUI, the exporters),
  which turns a missing optional package anywhere in that part into the same line.

The import contract in ``pyproject.toml`` (``lint-imports``, run by ``make test``) checks the
other half: nothing the core commands load imports an optional package when it is loaded.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from rig.core.errors import ZaprigError

__all__ = ["EXTRA_OF", "MissingExtraError", "install_hint", "optional_part", "require"]

#: The extra that installs each optional package (import name -> extra).
#: ``tests/test_core_install.py`` checks this table against ``pyproject.toml``.
EXTRA_OF: dict[str, str] = {
    "tensorstore": "export",
    "pynwb": "export",
    "hdmf": "export",  # pynwb's own storage layer, installed with it
    "matplotlib": "export",
    "PyQt6": "gui",
    "pyqtgraph": "gui",
    "qtpy": "gui",
    "psychopy": "psychopy",
    "nidaqmx": "hardware",
    "pymmcore_plus": "hardware",
    "pycromanager": "hardware",
}


class MissingExtraError(ZaprigError):
    """An optional part was asked for, but the extra that installs it is not installed."""


def install_hint(package: str) -> str:
    """``pip install 'zaprig[EXTRA]'`` for the extra that installs ``package``."""
    return f"pip install 'zaprig[{EXTRA_OF[package]}]'"


def _message(package: str, purpose: str) -> str:
    extra = EXTRA_OF[package]
    return (
        f"{purpose} needs '{package}' (zaprig's '{extra}' extra), which is not installed: "
        f"{install_hint(package)}"
    )


def require(package: str, purpose: str) -> ModuleType:
    """Import the optional ``package`` (a key of :data:`EXTRA_OF`) for ``purpose``.

    ``purpose`` says what the user asked for, as they asked for it (e.g. ``"zaprig export
    --format zapbench"`` or ``"display.backend = 'psychopy'"``), so the error reads as an
    answer to their request. Callers still write their own ``import`` after this (cheap:
    the module is loaded), which keeps their code typed.
    """
    if package not in EXTRA_OF:
        raise KeyError(f"{package!r} is not an optional package of zaprig (see EXTRA_OF)")
    try:
        return importlib.import_module(package)
    except ModuleNotFoundError as e:
        if e.name is not None and e.name.split(".")[0] == package:
            raise MissingExtraError(_message(package, purpose)) from None
        raise  # the package is there but one of its own dependencies is not: a broken install


@contextmanager
def optional_part(purpose: str) -> Iterator[None]:
    """Turn a missing optional package, imported anywhere inside, into one line naming its extra.

    For importing a whole optional part (``gui.app``, ``rig.export``, ``rig.report``) whose
    modules import their packages at the top; a module missing for any other reason is not
    caught (it is a bug, and its traceback is the useful answer).
    """
    try:
        yield
    except ModuleNotFoundError as e:
        top = (e.name or "").split(".")[0]
        if top in EXTRA_OF:
            raise MissingExtraError(_message(top, purpose)) from None
        raise
