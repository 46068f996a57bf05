"""The Lambda asset bundler: dependencies beside the ``functions`` package and the
client's ``tabrelay.wire``, cached."""

from __future__ import annotations

from pathlib import Path

from infra.bundling import CLIENT_MODULES, CLIENT_PACKAGE, LocalPipBundler

# The client package as the project holds it: the protocol, and modules that need websockets.
_CLIENT_FILES = (*CLIENT_MODULES, "client.py", "cli.py", "core.py", "mcpserver.py", "__main__.py")


def _project(root: Path) -> Path:
    client = root / CLIENT_PACKAGE
    client.mkdir(parents=True)
    for name in _CLIENT_FILES:
        (client / name).write_text(f"# {name}\n")
    (client / "__pycache__").mkdir()
    (client / "__pycache__" / "wire.cpython-311.pyc").write_bytes(b"")
    (root / "functions" / "handlers").mkdir(parents=True)
    (root / "functions" / "__init__.py").write_text("")
    (root / "functions" / "handlers" / "message.py").write_text("handler = None\n")
    (root / "functions" / "handlers" / "__pycache__").mkdir()
    (root / "functions" / "handlers" / "__pycache__" / "message.cpython-311.pyc").write_bytes(b"")
    # No requirements: pip installs nothing, so the test needs no network.
    (root / "requirements.txt").write_text("# nothing\n")
    return root


def test_the_bundle_holds_the_functions_package_without_bytecode(tmp_path: Path) -> None:
    # Given a project with a functions package and its requirements
    root = _project(tmp_path / "project")
    bundler = LocalPipBundler(
        project_root=root, python_version="3.14", cache_root=tmp_path / "cache"
    )
    output = tmp_path / "asset"
    output.mkdir()
    # When it bundles
    assert bundler.try_bundle(str(output), image=None) is True  # type: ignore[arg-type]
    # Then the handlers are importable by their dotted path from the asset root
    assert (output / "functions" / "handlers" / "message.py").read_text() == "handler = None\n"
    # And host bytecode and the cache marker stay out of the asset
    assert not list(output.rglob("__pycache__"))
    assert not (output / ".complete").exists()


def test_the_bundle_holds_tabrelay_wire_and_nothing_else_of_the_client(tmp_path: Path) -> None:
    # Given a project whose client package has the protocol and websockets-based modules
    root = _project(tmp_path / "project")
    bundler = LocalPipBundler(
        project_root=root, python_version="3.14", cache_root=tmp_path / "cache"
    )
    output = tmp_path / "asset"
    output.mkdir()
    # When it bundles
    bundler.try_bundle(str(output), image=None)  # type: ignore[arg-type]
    # Then the asset's tabrelay package is the protocol module alone, as the project has it
    client = output / "tabrelay"
    assert sorted(p.name for p in client.iterdir()) == ["__init__.py", "py.typed", "wire.py"]
    assert (client / "wire.py").read_text() == "# wire.py\n"


def test_a_second_bundle_reuses_the_installed_dependencies(tmp_path: Path) -> None:
    # Given a first bundle
    root = _project(tmp_path / "project")
    cache = tmp_path / "cache"
    bundler = LocalPipBundler(project_root=root, python_version="3.14", cache_root=cache)
    first = tmp_path / "first"
    first.mkdir()
    bundler.try_bundle(str(first), image=None)  # type: ignore[arg-type]
    (cached,) = [path for path in cache.iterdir() if (path / ".complete").exists()]
    (cached / "marker.txt").write_text("from cache")
    # When the same requirements are bundled again
    second = tmp_path / "second"
    second.mkdir()
    bundler.try_bundle(str(second), image=None)  # type: ignore[arg-type]
    # Then the cached install is copied, not reinstalled
    assert (second / "marker.txt").read_text() == "from cache"
