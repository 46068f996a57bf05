"""The client installs alone: ``pip install ./clients/python`` into an empty venv."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def test_given_empty_venv_when_client_installed_then_tabrelay_help_works(tmp_path: Path) -> None:
    # Given an empty virtual environment (no project code on its path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # When the client is installed from its folder (a copy, so no build files land in the repo)
    source = tmp_path / "src"
    subprocess.run(
        ["cp", "-r", str(ROOT / "clients" / "python"), str(source)], check=True, timeout=60
    )
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(source)],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    # Then the command works and the package imports with its typed marker and wire copy
    result = subprocess.run(
        [str(env_dir / "bin" / "tabrelay"), "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "simulate-browser" in result.stdout
    check = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.resources as r, tabrelay, tabrelay.wire as w;"
            "assert r.files('tabrelay').joinpath('py.typed').is_file();"
            "print(w.PROTOCOL_VERSION, tabrelay.__version__)",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr
    # ...and no MCP SDK came with it (the optional extra); `tabrelay mcp` says how to get it
    no_mcp = subprocess.run(
        [str(python), "-c", "import importlib.util as u; assert u.find_spec('mcp') is None"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert no_mcp.returncode == 0, no_mcp.stderr
    missing = subprocess.run(
        [str(env_dir / "bin" / "tabrelay"), "mcp", "ws://127.0.0.1:9/x", "--token", "t"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert missing.returncode == 8
    assert "pip install 'tabrelay[mcp]'" in missing.stderr


@pytest.mark.timeout(1200)  # the MCP SDK brings a dozen packages from PyPI
def test_given_empty_venv_when_client_installed_with_mcp_extra_then_tabrelay_mcp_works(
    tmp_path: Path,
) -> None:
    # Given an empty virtual environment
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    source = tmp_path / "src"
    subprocess.run(
        ["cp", "-r", str(ROOT / "clients" / "python"), str(source)], check=True, timeout=60
    )
    # When the client is installed with its mcp extra (the MCP SDK comes from PyPI)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--prefer-binary", f"{source}[mcp]"],
        check=True,
        timeout=1100,
        cwd=tmp_path,
    )
    # Then `tabrelay mcp --help` works and the server module imports with the SDK
    result = subprocess.run(
        [str(env_dir / "bin" / "tabrelay"), "mcp", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "--browser" in result.stdout and "list_browsers" in result.stdout
    check = subprocess.run(
        [str(python), "-c", "import tabrelay.mcpserver as m; print(len(m.TOOLS))"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert (check.returncode, check.stdout.strip()) == (0, "14"), check.stderr
