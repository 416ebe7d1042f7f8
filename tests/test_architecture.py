"""The package's dependencies point one way (read from the source, not from what happens to be imported):

    lib  <-  config, logs  <-  core  <-  ingestion, databases, failures, transform  <-  definitions modules

A domain uses the shared layers and itself, never another domain; the shared layers use no domain; only the two
code-location modules assemble domains, and nothing imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import ingestion_project

PACKAGE = Path(ingestion_project.__file__).parent
LAYERS = {
    "lib": 0,
    "config": 1,
    "logs": 1,
    "core": 2,
    "ingestion": 3,
    "databases": 3,
    "failures": 3,
    "transform": 3,
    "definitions": 4,
    "warehouse_definitions": 4,
}
DOMAINS = {area for area, layer in LAYERS.items() if layer == 3}


def area_of(module: str) -> str:
    return module.split(".")[1]


def package_modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if "migrations" in parts:  # Alembic's scripts, loaded by Alembic from the ledger
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "ingestion_project":
            modules[name] = path
    return modules


def imports_of(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name.startswith("ingestion_project.")}


def edges() -> set[tuple[str, str]]:
    """(importing area, imported area) for every import between two areas of the package."""
    pairs = set()
    for module, path in package_modules().items():
        for imported in imports_of(path):
            if area_of(module) != area_of(imported):
                pairs.add((area_of(module), area_of(imported)))
    return pairs


def test_every_part_of_the_package_has_a_layer():
    assert {area_of(module) for module in package_modules()} <= set(LAYERS)


def test_imports_only_point_down_the_layers():
    upward_or_sideways = sorted((a, b) for a, b in edges() if LAYERS[b] >= LAYERS[a])
    assert upward_or_sideways == []


def test_no_domain_imports_another():
    assert sorted((a, b) for a, b in edges() if a in DOMAINS and b in DOMAINS) == []


def test_the_areas_form_no_cycle():
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        graph.setdefault(a, set()).add(b)
    done: set[str] = set()

    def visit(area: str, path: tuple[str, ...]) -> None:
        assert area not in path, f"import cycle: {' -> '.join((*path, area))}"
        if area in done:
            return
        for imported in graph.get(area, ()):
            visit(imported, (*path, area))
        done.add(area)

    for area in graph:
        visit(area, ())


def test_the_checker_sees_a_cycle_between_domains(tmp_path: Path):
    # The rules above are only as good as the import reader: it must find imports inside functions too.
    source = tmp_path / "module.py"
    source.write_text("def f():\n    from ingestion_project.transform.assets import x\n")
    assert imports_of(source) == {"ingestion_project.transform.assets"}
