"""zaprig's import-linter contracts: the layers, private modules, and the core install.

Three contract types, configured in ``pyproject.toml`` and run by ``make test``:

- ``floor_and_roof`` (:class:`LayersContract`): the floor ``rig.core`` imports nothing else
  of zaprig, ``acquisition`` and ``stimuli`` stand on it, ``rig``'s roof on them, ``gui`` on
  top (docs/design-notes.md, "The map"). Every import counts, inside functions too.
- ``no_private_reach`` (:class:`PrivateModulesContract`): a module named ``_x`` is private to
  the package it sits in; nothing outside that package imports it.
- ``load_time_optional`` (:class:`LoadTimeOptionalContract`), below.

The core install: what loads must not load an optional part.

``lint-imports`` (run by ``make test``; configured in ``pyproject.toml``) checks it. The rule
(docs/design-notes.md, "The core install"): ``pip install zaprig`` without extras runs a
whole session, so no module of ``rig``, ``acquisition`` or ``stimuli`` may, *when it is
loaded*, import an optional package (tensorstore, pynwb, Qt, PsychoPy, NI-DAQmx,
Micro-Manager, ...) or a module that belongs to an extra (``rig.export``, ``gui``, ...).
Imports inside a function run only when that function is called, where ``rig.core.optional``
names the missing extra in one line; they are the sanctioned doors and are not checked.

import-linter's own ``forbidden`` contract cannot say this: grimp's graph holds every import
statement, inside functions too, so every door would need an ``ignore_imports`` entry, and
such an entry would also hide the same import moved to the top of the module (the very
mistake this contract is for). This contract keeps the graph and drops only the edges whose
every import statement sits inside a function body, read from the importer's source.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from grimp import ImportGraph
from importlinter import Contract, ContractCheck, fields, output

__all__ = [
    "LayersContract",
    "LoadTimeOptionalContract",
    "PrivateModulesContract",
    "load_time_graph",
    "load_time_lines",
]


def load_time_lines(source: str) -> set[int]:
    """Line numbers of the import statements that run when a module with ``source`` loads:
    every import not inside a function (module level, class bodies, top-level try/if)."""
    lines: set[int] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom) and not in_function:
                lines.add(child.lineno)
            nested = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, in_function or nested)

    visit(ast.parse(source), False)
    return lines


@cache
def _root_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # a top-level name: nothing is executed
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package}: not an importable package (run lint-imports from the repo)")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def _source_lines(module: str) -> frozenset[int]:
    root, *rest = module.split(".")
    base = _root_dir(root).joinpath(*rest)
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return frozenset(load_time_lines(path.read_text(encoding="utf-8")))


def _in(module: str, parts: set[str]) -> str | None:
    """The entry of ``parts`` that ``module`` is, or is inside (None: neither)."""
    for part in parts:
        if module == part or module.startswith(part + "."):
            return part
    return None


def load_time_graph(graph: ImportGraph) -> ImportGraph:
    """``graph`` without the imports that run only when a function is called: an edge stays
    if at least one of its import statements runs when the importer loads."""
    loaded = copy.deepcopy(graph)
    for importer in sorted(graph.modules):
        if graph.is_module_squashed(importer):  # an external package: not ours to read
            continue
        lines = _source_lines(importer)
        for imported in graph.find_modules_directly_imported_by(importer):
            details = graph.get_import_details(importer=importer, imported=imported)
            if not any(d["line_number"] in lines for d in details):
                loaded.remove_import(importer=importer, imported=imported)
    return loaded


def _reach(
    graph: ImportGraph, imported: str, part: str, packages: set[str]
) -> tuple[str, ...] | None:
    """A chain from ``imported`` (or the package ``part`` it is in, which Python loads first)
    to one of the optional ``packages``: what loading ``imported`` pulls in."""
    for start in dict.fromkeys((imported, part)):
        for package in sorted(packages):
            if package in graph.modules:
                chain = graph.find_shortest_chain(importer=start, imported=package)
                if chain:
                    return tuple(chain)
    return None


class LoadTimeOptionalContract(Contract):
    """Core modules never load an optional package or an optional module at import time.

    Options:
        core_packages:     the packages whose modules are core unless listed as optional.
        optional_modules:  modules (with everything inside them) that belong to an extra.
        optional_packages: the external packages of the extras (top-level import names).
    """

    type_name = "load_time_optional"

    core_packages = fields.ListField(subfield=fields.StringField())
    optional_modules = fields.ListField(subfield=fields.StringField())
    optional_packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        core_roots = set(self.core_packages)  # type: ignore[call-overload]
        optional_internal = set(self.optional_modules)  # type: ignore[call-overload]
        optional_external = set(self.optional_packages)  # type: ignore[call-overload]
        missing = sorted(m for m in optional_internal if m not in graph.modules)
        if missing:  # a renamed part must not silently leave the contract
            raise ValueError(f"optional_modules not found in the import graph: {missing}")
        core = sorted(
            m
            for m in graph.modules
            if _in(m, core_roots) is not None and _in(m, optional_internal) is None
        )
        loaded = load_time_graph(graph)
        crossings: list[dict[str, Any]] = []
        for importer in core:
            load_time = _source_lines(importer)
            for imported in sorted(loaded.find_modules_directly_imported_by(importer)):
                part = _in(imported, optional_internal) or _in(imported, optional_external)
                if part is None:
                    continue
                details = loaded.get_import_details(importer=importer, imported=imported)
                lines = sorted(d["line_number"] for d in details if d["line_number"] in load_time)
                chain = None
                if part in optional_internal:  # show what the optional part loads in turn
                    chain = _reach(loaded, imported, part, optional_external)
                crossings.append(
                    {
                        "importer": importer,
                        "imported": imported,
                        "part": part,
                        "lines": lines,
                        "chain": list(chain) if chain else [],
                    }
                )
        output.verbose_print(verbose, f"{len(core)} core modules checked")
        return ContractCheck(kept=not crossings, metadata={"crossings": crossings})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for c in check.metadata["crossings"]:
            lines = ", ".join(f"l.{n}" for n in c["lines"])
            output.print_error(
                f"{c['importer']} ({lines}) imports {c['imported']} when it loads: "
                f"'{c['part']}' is optional (an extra), {c['importer']} is core",
                bold=False,
            )
            if c["chain"]:
                output.print(f"    which loads: {' -> '.join(c['chain'])}")
        output.new_line()
        output.print(
            "Move a pure helper out of the optional part into a core module, or import the "
            "optional part inside the function that uses it, after "
            "rig.core.optional.require(...) (docs/design-notes.md, 'The core install')."
        )


def _layer_of(module: str, layers: list[list[str]]) -> int | None:
    """Index of the layer ``module`` belongs to: the one holding its most specific entry."""
    best: tuple[int, int] | None = None  # (length of the entry, layer)
    for index, layer in enumerate(layers):
        for entry in layer:
            inside = module == entry or module.startswith(entry + ".")
            if inside and (best is None or len(entry) > best[0]):
                best = (len(entry), index)
    return None if best is None else best[1]


def _lines(graph: ImportGraph, importer: str, imported: str) -> str:
    details = graph.get_import_details(importer=importer, imported=imported)
    return ", ".join(
        f"l.{d['line_number']}" for d in sorted(details, key=lambda d: d["line_number"])
    )


class LayersContract(Contract):
    """Layers from the top down; a module imports only its own layer and the ones below.

    Options:
        layers: from the top down; ``a : b`` puts siblings in one layer (they may import each
            other). A module belongs to the layer of its most specific entry, so ``rig.core``
            can be the floor while the rest of ``rig`` is the roof.
    """

    type_name = "floor_and_roof"

    layers = fields.ListField(subfield=fields.StringField())

    def _parsed(self) -> list[list[str]]:
        return [[e.strip() for e in str(layer).split(":")] for layer in self.layers]  # type: ignore[attr-defined]

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        layers = self._parsed()
        for entry in (e for layer in layers for e in layer):
            if entry not in graph.modules:  # a renamed layer must not silently pass
                raise ValueError(f"layer {entry!r} not found in the import graph")
        broken: list[dict[str, Any]] = []
        checked = 0
        for importer in sorted(graph.modules):
            low = _layer_of(importer, layers)
            if low is None or graph.is_module_squashed(importer):
                continue
            checked += 1
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                high = _layer_of(imported, layers)
                if high is not None and high < low:  # a smaller index is a higher layer
                    broken.append(
                        {
                            "importer": importer,
                            "imported": imported,
                            "lines": _lines(graph, importer, imported),
                            "from": " : ".join(layers[low]),
                            "to": " : ".join(layers[high]),
                        }
                    )
        output.verbose_print(verbose, f"{checked} modules checked against {len(layers)} layers")
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for b in check.metadata["broken"]:
            output.print_error(
                f"{b['importer']} ({b['lines']}) imports {b['imported']}: "
                f"layer '{b['from']}' reaches up into '{b['to']}'",
                bold=False,
            )
        output.new_line()
        output.print(
            "Move what the lower layer needs down (a type or constant into rig.core), or pass "
            "it in from above (docs/design-notes.md, 'The map')."
        )


def private_owner(module: str) -> str | None:
    """The package a module is private to: the parent of its first ``_name`` part (None if
    every part is public). ``rig.session._damage`` is private to ``rig.session``."""
    parts = module.split(".")
    for k, part in enumerate(parts):
        if part.startswith("_") and not part.startswith("__"):
            return ".".join(parts[:k])
    return None


class PrivateModulesContract(Contract):
    """No module imports another package's private module (a ``_name`` module or package).

    Options:
        packages: the first-party top-level packages checked.
    """

    type_name = "no_private_reach"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        roots = set(self.packages)  # type: ignore[call-overload]
        broken: list[dict[str, Any]] = []
        for importer in sorted(graph.modules):
            if _in(importer, roots) is None:
                continue
            for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                owner = private_owner(imported)
                if owner is None or _in(imported, roots) is None:
                    continue
                if importer != owner and not importer.startswith(owner + "."):
                    broken.append(
                        {
                            "importer": importer,
                            "imported": imported,
                            "owner": owner,
                            "lines": _lines(graph, importer, imported),
                        }
                    )
        return ContractCheck(kept=not broken, metadata={"broken": broken})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for b in check.metadata["broken"]:
            output.print_error(
                f"{b['importer']} ({b['lines']}) imports {b['imported']}, private to {b['owner']}",
                bold=False,
            )
        output.new_line()
        output.print(
            "Import the name from the package's public surface (its __init__ or a public "
            "module), and export it there if it is meant to be used outside."
        )
