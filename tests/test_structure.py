"""The package reads one way: stage subpackages that import only the stages before them, no import cycle,
small modules, one atomic-write helper, a map of every module in the docstrings."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "am3f"
# the pipeline's stages, in the order data flows; each subpackage may import only itself and those before it
STAGES = ("flow", "data", "models", "training", "protocol", "results", "app")
BASE = ("errors", "utils")  # top-level helpers every stage may use; they import no stage


def module_name(path: Path) -> str:
    """'protocol.engine' for am3f/protocol/engine.py; 'models.peers' for am3f/models/peers/__init__.py."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


FILES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.stem != "__main__"}
MODULES = sorted(m for m in FILES if m)


def stage_of(module: str) -> int:
    """-1 for the top-level helpers, else the position of the module's subpackage in STAGES."""
    head = module.split(".")[0]
    return STAGES.index(head) if head in STAGES else -1


def imported_modules(source: str, module: str, known: list[str]) -> set[str]:
    """am3f modules imported anywhere in ``source`` (module level and inside functions) by ``module``:
    absolute ``am3f.x.y`` and relative imports; ``from am3f.x import y`` counts y when it is a module."""
    package = module.split(".") if FILES.get(module, Path()).stem == "__init__" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "am3f" or node.module.startswith("am3f.")):
                target = node.module[len("am3f."):] if node.module != "am3f" else ""
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(a.name[len("am3f."):] for a in node.names if a.name.startswith("am3f."))
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    return {m: imported_modules(FILES[m].read_text(), m, MODULES) - {m} for m in MODULES}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``edges`` (module -> imported modules) as a path, or None."""
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return path[path.index(n):] + [n]
            if n not in state and (cycle := visit(n, path + [n])):
                return cycle
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (cycle := visit(m, [m])):
            return cycle
    return None


def test_the_top_level_shows_the_stages():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 6, top
    assert sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")) == sorted(STAGES)


def test_each_stage_imports_only_the_stages_before_it():
    backwards = [f"{m} imports {n}" for m, targets in graph().items() for n in sorted(targets)
                 if stage_of(n) > stage_of(m) or (stage_of(m) == -1 and m in BASE and stage_of(n) != -1)]
    assert not backwards, "imports against the pipeline's direction: " + "; ".join(backwards)


def test_the_direction_check_sees_what_it_must():
    src = "def f():\n    from am3f.app import cli\n    from ..results.metrics import uf1\n"
    known = ["app.cli", "results.metrics", "training.fit"]
    assert imported_modules(src, "training.fit", known) == {"app.cli", "results.metrics"}
    assert imported_modules("from .fit import x\n", "training.recipe", ["training.fit"]) == {"training.fit"}
    assert stage_of("app.cli") > stage_of("training.fit") > stage_of("errors")


def test_no_import_cycles_between_modules():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_function_level_imports():
    edges = {"a": imported_modules("from am3f.b import x\n", "a", ["a", "b"]),
             "b": imported_modules("def f():\n    from am3f.a import y\n", "b", ["a", "b"])}
    assert edges == {"a": {"b"}, "b": {"a"}}
    assert find_cycle(edges) == ["a", "b", "a"]
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
    users = [m for m in MODULES if "os.replace(" in FILES[m].read_text()]
    assert users == ["utils"], users


def test_docstrings_map_every_module():
    """am3f/__init__.py names every stage; each stage's __init__.py says what each of its modules does."""
    import importlib

    import am3f

    missing = [s for s in STAGES if f"``{s}``" not in am3f.__doc__]
    for stage in STAGES:
        doc = importlib.import_module(f"am3f.{stage}").__doc__ or ""
        missing += [m for m in MODULES if m.startswith(stage + ".") and m.count(".") == 1
                    and f"``{m.split('.')[1]}``" not in doc]
    assert not missing, f"not described in the package docstrings: {missing}"


# what only a front end knows: notebook files, nbval, papermill, the folder layout of the shared reference material
FRONT_END_WORDS = ("real-onset-apex", "nbval", ".ipynb", "papermill")


def code_strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of the string constants a module's code uses (docstrings left out: they may explain)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_no_front_end_below_the_app_layer():
    found = [f"{module} line {line}: {text[:60]!r}" for module in MODULES if stage_of(module) < STAGES.index("app")
             for line, text in code_strings(FILES[module].read_text()) if any(w in text for w in FRONT_END_WORDS)]
    assert not found, "front-end knowledge in the core (move it to am3f/app/ or scripts/):\n" + "\n".join(found)
