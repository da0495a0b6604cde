"""The core install's import contract (tests/import_contract.py), run by the real lint-imports.

On a small package laid out like zaprig's mistake: a core module that loads a helper from
inside an optional package, whose ``__init__`` loads an optional third-party package. The
contract must name that line and what it pulls in, and let an import inside a function pass.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from import_contract import load_time_lines  # noqa: E402  (tests/ is on sys.path, as for _session_copies)

CONFIG = """
[tool.importlinter]
root_packages = ["corepkg", "optpart"]
include_external_packages = true
exclude_type_checking_imports = true
contract_types = ["load_time_optional: tests.import_contract.LoadTimeOptionalContract"]

[[tool.importlinter.contracts]]
name = "core"
type = "load_time_optional"
core_packages = ["corepkg"]
optional_modules = ["optpart"]
optional_packages = ["tensorstore"]
"""


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join((str(root), str(REPO))))
    # the one beside this Python (a virtual environment's), else the one on PATH
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    lint = lint or shutil.which("lint-imports")
    assert lint, "lint-imports is not installed (it is in the test extra)"
    return subprocess.run(
        [lint, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(CONFIG, encoding="utf-8")
    _write(tmp_path, "optpart/__init__.py", "from optpart._heavy import Thing\n")
    _write(tmp_path, "optpart/_heavy.py", "import tensorstore\n\nThing = tensorstore\n")
    _write(tmp_path, "optpart/_pure.py", "def helper() -> int:\n    return 1\n")
    _write(tmp_path, "corepkg/__init__.py", "")
    _write(
        tmp_path,
        "corepkg/lazy.py",
        """\
        def export() -> object:
            import tensorstore
            from optpart import Thing

            return tensorstore, Thing
        """,
    )
    return tmp_path


def test_a_core_module_loading_an_optional_part_breaks_the_contract(project: Path):
    _write(project, "corepkg/readout.py", "import os\n\nfrom optpart._pure import helper\n")
    proc = _lint(project)
    out = " ".join(proc.stdout.split())  # lint-imports wraps its lines
    assert proc.returncode == 1, out
    assert "corepkg.readout (l.3) imports optpart._pure when it loads" in out
    assert "which loads: optpart -> optpart._heavy -> tensorstore" in out
    assert "corepkg.lazy" not in out  # imports inside a function are the sanctioned doors


def test_imports_inside_functions_keep_the_contract(project: Path):
    proc = _lint(project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 kept, 0 broken" in proc.stdout


def test_load_time_lines_are_the_imports_outside_functions():
    source = textwrap.dedent(
        """\
        import a
        try:
            import b
        except ImportError:
            b = None
        class C:
            import c
            def m(self):
                import d
        def f():
            import e
        g = lambda: __import__("h")
        """
    )
    assert load_time_lines(source) == {1, 3, 7}


LAYERS_CONFIG = """
[tool.importlinter]
root_packages = ["top", "mid", "base"]
exclude_type_checking_imports = true
contract_types = [
    "floor_and_roof: tests.import_contract.LayersContract",
    "no_private_reach: tests.import_contract.PrivateModulesContract",
]

[[tool.importlinter.contracts]]
name = "layers"
type = "floor_and_roof"
layers = ["top", "mid", "base.floor"]

[[tool.importlinter.contracts]]
name = "private"
type = "no_private_reach"
packages = ["top", "mid", "base"]
"""


@pytest.fixture
def layered(tmp_path: Path) -> Path:
    """zaprig's shape in small: ``base.floor`` is the floor, ``mid`` stands on it, ``top``
    (the roof) on both; ``base`` itself is outside the layers."""
    (tmp_path / "pyproject.toml").write_text(LAYERS_CONFIG, encoding="utf-8")
    for pkg in ("top", "mid", "base", "base/floor"):
        _write(tmp_path, f"{pkg}/__init__.py", "")
    _write(tmp_path, "base/floor/errors.py", "class Oops(Exception):\n    pass\n")
    _write(tmp_path, "mid/_inner.py", "VALUE = 1\n")
    _write(
        tmp_path,
        "mid/device.py",
        "from base.floor.errors import Oops\nfrom mid._inner import VALUE\n",
    )
    _write(tmp_path, "top/runner.py", "from mid.device import Oops\n")
    return tmp_path


def test_a_clean_floor_and_roof_keep_both_contracts(layered: Path):
    proc = _lint(layered)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 kept, 0 broken" in proc.stdout


def test_the_floor_reaching_up_breaks_the_layers_even_inside_a_function(layered: Path):
    _write(
        layered,
        "base/floor/clock.py",
        "def now():\n    from top.runner import Oops\n    return Oops\n",
    )
    out = " ".join(_lint(layered).stdout.split())
    assert (
        "base.floor.clock (l.2) imports top.runner: layer 'base.floor' reaches up into 'top'" in out
    )
    assert "1 kept, 1 broken" in out


def test_a_private_module_imported_from_another_package_breaks_its_contract(layered: Path):
    _write(layered, "top/view.py", "from mid._inner import VALUE\n")
    out = " ".join(_lint(layered).stdout.split())
    assert "top.view (l.1) imports mid._inner, private to mid" in out
    assert "mid.device" not in out  # its own package may use it
    assert "1 kept, 1 broken" in out
