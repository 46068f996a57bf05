"""The client's copy of the wire protocol must be exactly what the generator makes."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[3]


def _vendor_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vendor_wire", ROOT / "scripts" / "vendor_wire.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_given_wire_py_when_vendored_copy_compared_then_it_is_identical() -> None:
    vendor = _vendor_script()
    source = (ROOT / "functions" / "models" / "wire.py").read_text(encoding="utf-8")
    copy = (ROOT / "clients" / "python" / "tabrelay" / "_wire.py").read_text(encoding="utf-8")
    assert copy == vendor.render(source), "tabrelay/_wire.py is stale: run `make vendor`"


def test_given_vendored_copy_then_its_header_says_it_is_generated() -> None:
    copy = (ROOT / "clients" / "python" / "tabrelay" / "_wire.py").read_text(encoding="utf-8")
    assert copy.startswith("# GENERATED FILE: do not edit.")


def test_given_client_package_then_it_imports_no_other_project_package() -> None:
    import ast

    package = ROOT / "clients" / "python" / "tabrelay"
    for path in package.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top not in {"functions", "emulator", "infra", "tests"}, (path, name)
