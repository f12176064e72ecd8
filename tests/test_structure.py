"""The package reads one way: no import cycles, small modules, one atomic-write helper, a module map."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "am3f"
# modules, and sub-packages as one node each (their internal imports count as the package's)
MODULES = sorted([p.stem for p in PACKAGE.glob("*.py") if p.stem not in ("__init__", "__main__")]
                 + [p.parent.name for p in PACKAGE.glob("*/__init__.py")])


def source_of(module: str) -> str:
    path = PACKAGE / f"{module}.py"
    if path.is_file():
        return path.read_text()
    return "\n".join(p.read_text() for p in sorted((PACKAGE / module).glob("*.py")))


def imported_modules(source: str, known: list[str]) -> set[str]:
    """am3f modules imported anywhere in ``source``: at module level and inside functions (``..x``
    inside a sub-package is the top-level module ``x``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level in (1, 2):
                found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
            elif node.module and node.module.startswith("am3f."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("am3f."))
    return found & set(known)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> imported modules) as a path, or None."""
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n, path + [n])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m, [m])):
            return cycle
    return None


def test_no_import_cycles_between_modules():
    graph = {m: imported_modules(source_of(m), MODULES) - {m} for m in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_function_level_imports():
    a = "from .b import x\n"
    b = "def f():\n    from .a import y\n"
    graph = {"a": imported_modules(a, ["a", "b"]), "b": imported_modules(b, ["a", "b"])}
    assert graph == {"a": {"b"}, "b": {"a"}}
    assert find_cycle(graph) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_module_over_500_lines():
    files = sorted(PACKAGE.rglob("*.py"))
    long = {str(p.relative_to(PACKAGE)): n for p in files if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"modules over 500 lines: {long}"


def test_no_function_over_60_lines():
    """Long functions mix concerns; argparse declarations (one statement per option) are the exception."""
    long = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "build_parser":
                body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                if body and (n := node.end_lineno - body[0].lineno + 1) > 60:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = n
    assert not long, f"functions over 60 lines (docstring not counted): {long}"


def test_one_place_does_atomic_renames():
    users = [m for m in MODULES if "os.replace(" in source_of(m)]
    assert users == ["utils"], users


def test_package_docstring_maps_every_module():
    import am3f

    missing = [m for m in MODULES if f"``{m}``" not in am3f.__doc__]
    assert not missing, f"am3f/__init__.py does not say what these modules do: {missing}"
