"""Local configuration (the signing key, the local AWS credentials) and token minting.

Both live in ``.local/config.json`` at the repository root (gitignored, mode
600), created on first use with random values; ``make run`` puts the key into
the Secrets Manager secret the template declares, so the real authorizer
verifies tokens with it exactly as it does in AWS. moto and ``@connections``
accept only requests signed with the credentials (see :mod:`emulator.sigv4`).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from emulator.sigv4 import Credentials

__all__ = ["REPO_ROOT", "LocalConfig", "load_config", "mint_token"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT / ".local" / "config.json"


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """What local mode keeps between runs."""

    signing_key: str
    credentials: Credentials


def load_config(path: Path = DEFAULT_PATH) -> LocalConfig:
    """Read the local config, adding what it lacks (a fresh key, fresh credentials).

    Missing values are generated and written back (mode 600); existing ones are kept.
    """
    data: dict[str, object] = {}
    if path.exists():
        loaded = json.loads(path.read_text())
        if isinstance(loaded, dict):
            data = loaded
    changed = False
    if not isinstance(data.get("signing_key"), str):
        data["signing_key"] = secrets.token_urlsafe(48)
        changed = True
    if not (
        isinstance(data.get("aws_access_key_id"), str)
        and isinstance(data.get("aws_secret_access_key"), str)
    ):
        fresh = Credentials.generate()
        data["aws_access_key_id"], data["aws_secret_access_key"] = (
            fresh.access_key,
            fresh.secret_key,
        )
        changed = True
    if changed:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
    return LocalConfig(
        signing_key=str(data["signing_key"]),
        credentials=Credentials(str(data["aws_access_key_id"]), str(data["aws_secret_access_key"])),
    )


def mint_token(signing_key: str, *, role: str, tenant: str, client_id: str, ttl: int = 3600) -> str:
    """An HS256 JWT naming ``tenant``, ``role`` and ``client_id``, expiring in ``ttl`` s.

    Minted by the project's own token rules (``functions.logic.auth``), so the
    claims are exactly those the real authorizer verifies.
    """
    from functions.logic.auth import mint_token as project_mint

    return project_mint(signing_key, tenant=tenant, role=role, client_id=client_id, ttl_seconds=ttl)
