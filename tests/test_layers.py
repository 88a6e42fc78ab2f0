"""The package keeps DESIGN.md's layers: jwst is a test oracle only, kernels know nothing of
Dask or I/O, steps do no I/O, nothing below the CLI prints."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "detflow"


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0], node.lineno
            if node.module == "detflow" or node.module.startswith("detflow."):
                yield node.module, node.lineno


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_runtime_package_never_imports_jwst(path):
    assert "jwst" not in {name for name, _ in _imports(path)}, path


def test_importing_everything_loads_no_jwst():
    code = (
        "import sys, importlib, pkgutil, detflow\n"
        "for m in pkgutil.walk_packages(detflow.__path__, 'detflow.'):\n"
        "    if m.name != 'detflow.__main__':\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in sys.modules if m == 'jwst' or m.startswith('jwst.')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


FACES = {"detflow.cli", "detflow.interfaces", "detflow.workflow"}
LAYERS = {"detflow.kernels", "detflow.steps", "detflow.io", "detflow.pipeline",
          "detflow.runtime", "detflow.program"}
#: The modules every layer shares: the data contract, the step registry, the DQ bits,
#: the errors and the tile sizes. They import no layer.
SHARED = ("contract.py", "registry.py", "dqflags.py", "errors.py", "tiling.py")

FORBIDDEN = {
    "kernels": {"dask", "xarray", "astropy", "stdatamodels", "zarr", "fsspec", "distributed",
                *LAYERS - {"detflow.kernels"}, *FACES},
    "steps": {"astropy", "stdatamodels", "zarr", "fsspec", "distributed", "detflow.io",
              "detflow.runtime", "detflow.pipeline", "detflow.program", *FACES},
    "pipeline": {"distributed", "detflow.runtime", "detflow.program", *FACES},
    "io": {"detflow.steps", "detflow.pipeline", "detflow.runtime", "detflow.program", *FACES},
    # the lowest floor of io: FITS bytes and headers know no JWST product or reference
    "io/fits": {"detflow.io.references", "detflow.io.products", "detflow.io.exposure",
                "detflow.io.keywords", "detflow.io.datamodels"},
    "runtime": {*FACES},
    "program.py": {*FACES},
    **{shared: {*LAYERS, *FACES} for shared in SHARED},
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_what_design_allows(layer):
    where = PACKAGE / layer
    paths = [where] if where.is_file() else sorted(where.rglob("*.py"))
    assert paths, f"{layer}: no such layer (DESIGN.md's layers moved?)"
    for path in paths:
        for name, line in _imports(path):
            for bad in FORBIDDEN[layer]:
                assert not (name == bad or name.startswith(bad + ".")), f"{path}:{line} {name}"


@pytest.mark.parametrize("path", [p for p in _modules() if p.name != "__main__.py"
                                  and "cli" not in p.relative_to(PACKAGE).parts
                                  and "benchmarks" not in p.parts],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_nothing_below_the_faces_prints_or_exits(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else (
                f"{getattr(f.value, 'id', '')}.{f.attr}" if isinstance(f, ast.Attribute) else "")
            assert name not in ("print", "sys.exit", "exit", "quit"), f"{path}:{node.lineno}"
