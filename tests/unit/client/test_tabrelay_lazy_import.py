"""``tabrelay/__init__`` imports lazily: the Lambdas import ``tabrelay.wire`` alone.

The deployment asset carries only ``tabrelay/__init__.py`` and ``wire.py`` of the
client (infra/bundling.py) and no websockets, so importing the protocol must load
nothing else of the package; the public names still resolve on first use.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tabrelay

CLIENT_SRC = Path(__file__).resolve().parents[3] / "clients" / "python"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(CLIENT_SRC), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )


def test_given_a_fresh_interpreter_when_tabrelay_wire_is_imported_then_nothing_else_loads() -> None:
    # Given a fresh interpreter
    # When it imports the protocol module
    done = _run(
        "import json, sys, tabrelay.wire\n"
        "print(json.dumps(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('tabrelay', 'websockets'))))"
    )
    # Then only the package itself and the wire module are loaded, no websockets
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["tabrelay", "tabrelay.wire"]


def test_given_no_websockets_when_the_package_is_imported_then_the_protocol_works() -> None:
    # Given an interpreter where websockets cannot be imported
    done = _run(
        "import sys\n"
        "sys.modules['websockets'] = None  # makes `import websockets` raise ImportError\n"
        "import tabrelay, tabrelay.wire as w\n"
        'print(tabrelay.__version__, type(w.decode(\'{"action":"ping"}\')).__name__)\n'
        "try:\n"
        "    tabrelay.Relay\n"
        "except ImportError:\n"
        "    print('client needs websockets')\n"
    )
    # Then the package and its protocol import and work; only the client needs websockets
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == [
        f"{tabrelay.__version__} Ping",
        "client needs websockets",
    ]


@pytest.mark.parametrize("name", tabrelay.__all__)
def test_given_the_lazy_package_then_every_public_name_resolves(name: str) -> None:
    # When a public name is looked up on the package
    value = getattr(tabrelay, name)
    # Then it is the object its defining module holds
    if name != "__version__":
        module = sys.modules[tabrelay._LAZY[name]]
        assert value is getattr(module, name)
    assert name in dir(tabrelay)


def test_given_the_lazy_package_then_from_import_works_and_unknown_names_fail() -> None:
    from tabrelay import Relay, TabRelayError, connect
    from tabrelay.client import Relay as ClientRelay

    assert Relay is ClientRelay and callable(connect) and issubclass(TabRelayError, Exception)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = tabrelay.Nope  # type: ignore[attr-defined]


def test_every_lazy_name_is_public() -> None:
    assert set(tabrelay._LAZY) | {"__version__"} == set(tabrelay.__all__)
