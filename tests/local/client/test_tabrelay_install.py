"""The client installs alone: ``pip install ./clients/python`` into an empty venv."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

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
            "import importlib.resources as r, tabrelay, tabrelay._wire as w;"
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
