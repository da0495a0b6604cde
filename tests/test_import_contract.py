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
