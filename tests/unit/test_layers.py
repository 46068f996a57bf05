"""The import rules of the layers, checked on the source (AST), not by convention."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def imports(path: Path) -> set[str]:
    """Absolute module names imported by one file (relative imports resolved to the package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.add("<relative>." + (node.module or ""))
            elif node.module:
                found.add(node.module)
    return found


def files(*parts: str) -> list[Path]:
    base = ROOT.joinpath(*parts)
    if base.is_file():
        return [base]
    return sorted(p for p in base.rglob("*.py") if ".venv" not in p.parts)


def offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in paths:
        for name in imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


WIRE = ROOT / "clients" / "python" / "tabrelay" / "wire.py"


def test_the_wire_module_and_the_models_import_only_the_standard_library() -> None:
    # tabrelay.wire is the one protocol definition the Lambdas and the client share.
    bad = [
        f"{p.relative_to(ROOT)} imports {name}"
        for p in [WIRE, *files("functions", "models")]
        for name in imports(p)
        if name.split(".")[0] not in STDLIB
    ]
    assert bad == []


def client_modules(path: Path) -> set[str]:
    """The ``tabrelay`` modules one file imports (``from tabrelay import x`` names ``tabrelay.x``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "tabrelay")
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            if node.module == "tabrelay":
                found.update(f"tabrelay.{a.name}" for a in node.names)
            elif node.module.startswith("tabrelay."):
                found.add(node.module)
    return found


def test_functions_import_tabrelay_wire_and_nothing_else_of_the_client() -> None:
    # The asset carries only tabrelay/__init__.py and wire.py (infra/bundling.py).
    bad = [
        f"{p.relative_to(ROOT)} imports {name}"
        for p in files("functions")
        for name in client_modules(p)
        if name != "tabrelay.wire"
    ]
    assert bad == []


def test_the_layer_rule_sees_every_way_of_importing_the_client(tmp_path: Path) -> None:
    # Given a module importing the client in each way Python allows
    module = tmp_path / "m.py"
    module.write_text(
        "import tabrelay\nimport tabrelay.client\nfrom tabrelay import wire, core\n"
        "from tabrelay.errors import TabRelayError\nfrom tabrelay.wire import decode\n"
    )
    # When its client imports are listed
    found = client_modules(module)
    # Then each is named, and only tabrelay.wire passes the functions' rule
    assert found == {
        "tabrelay",
        "tabrelay.client",
        "tabrelay.wire",
        "tabrelay.core",
        "tabrelay.errors",
    }


def test_logic_knows_no_boto3_no_dal_no_handlers() -> None:
    forbidden = (
        "boto3",
        "botocore",
        "functions.dal",
        "functions.handlers",
        "aws_lambda_powertools",
    )
    assert offenders(files("functions", "logic"), forbidden) == []


def test_dal_does_not_reach_up_into_handlers() -> None:
    assert offenders(files("functions", "dal"), ("functions.handlers",)) == []


def test_boto3_is_called_only_from_dal_and_the_composition_root() -> None:
    allowed = {
        ROOT / "functions" / "handlers" / "_runtime.py",
        ROOT / "functions" / "handlers" / "authorizer.py",
    }
    paths = [p for p in files("functions") if "dal" not in p.parts and p not in allowed]
    assert offenders(paths, ("boto3",)) == []


def test_infra_imports_no_runtime_code() -> None:
    paths = files("infra") + ([ROOT / "app.py"] if (ROOT / "app.py").exists() else [])
    forbidden = ("functions", "emulator", "tabrelay", "clients", "tests", "simulation")
    assert offenders(paths, forbidden) == []


# The optional extra's module: `tabrelay[mcp]` installs the MCP SDK (and pydantic with it).
MCP_MODULE = ROOT / "clients" / "python" / "tabrelay" / "mcpserver.py"


def test_python_client_installs_alone() -> None:
    paths = files("clients", "python", "tabrelay")
    bad = [
        f"{p.relative_to(ROOT)} imports {name}"
        for p in paths
        for name in imports(p)
        if not name.startswith("<relative>")
        and name.split(".")[0]
        not in STDLIB
        | {"tabrelay", "websockets"}
        | ({"mcp", "pydantic"} if p == MCP_MODULE else set())
    ]
    assert bad == []


def test_python_client_imports_the_mcp_extra_only_when_running_it() -> None:
    # Other modules import it only inside a function (the `tabrelay mcp` runner), so
    # `import tabrelay` and every other command work without the extra.
    top_level = [
        f"{p.relative_to(ROOT)} imports {name}"
        for p in files("clients", "python", "tabrelay")
        if p != MCP_MODULE
        for node in ast.parse(p.read_text()).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
        if name == "tabrelay.mcpserver" or name.split(".")[0] in ("mcp", "pydantic")
    ]
    assert top_level == []


def test_the_fuzzer_and_the_benchmark_import_no_tests() -> None:
    assert offenders(files("fuzz") + files("bench"), ("tests",)) == []


def test_the_simulation_imports_no_tests_bench_fuzzer_or_emulator() -> None:
    # Shared by the tests, the bench and the fuzzer: it depends on none of them.
    forbidden = ("tests", "bench", "fuzz", "emulator")
    assert offenders(files("simulation"), forbidden) == []


def test_the_simulation_imports_no_handler_module_at_import() -> None:
    # Handler modules create Powertools objects that read the environment: they are
    # imported once the caller applied it (simulation.environment.handler_modules).
    top_level = [
        f"{p.relative_to(ROOT)} imports {name}"
        for p in files("simulation")
        for node in ast.parse(p.read_text()).body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
        if name == "functions.handlers" or name.startswith("functions.handlers.")
    ]
    assert top_level == []


def test_only_tests_and_benchmarks_import_the_emulator() -> None:
    paths = [
        p
        for part in ("functions", "infra", "clients", "fuzz", "simulation")
        if (ROOT / part).exists()
        for p in files(part)
    ]
    assert offenders(paths, ("emulator",)) == []


def test_the_inbound_and_worker_rules_do_not_import_each_other() -> None:
    # Both deliver through functions.logic.delivery; neither calls the other.
    gateway = ROOT / "functions" / "logic" / "gateway.py"
    relay = ROOT / "functions" / "logic" / "relay.py"
    delivery = ROOT / "functions" / "logic" / "delivery.py"
    assert offenders([relay, delivery], ("functions.logic.gateway",)) == []
    assert offenders([gateway, delivery], ("functions.logic.relay",)) == []
