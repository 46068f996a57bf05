"""Local configuration (the signing key) and token minting.

The key lives in ``.local/config.json`` at the repository root (gitignored),
created on first use with a random key; ``make run`` puts it into the Secrets
Manager secret the template declares, so the real authorizer verifies tokens
with it exactly as it does in AWS.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REPO_ROOT", "LocalConfig", "load_config", "mint_token"]

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = REPO_ROOT / ".local" / "config.json"


@dataclass(frozen=True, slots=True)
class LocalConfig:
    """What local mode keeps between runs."""

    signing_key: str


def load_config(path: Path = DEFAULT_PATH) -> LocalConfig:
    """Read the local config, creating it (mode 600) with a fresh key if missing."""
    if path.exists():
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("signing_key"), str):
            return LocalConfig(signing_key=data["signing_key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    config = LocalConfig(signing_key=secrets.token_urlsafe(48))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"signing_key": config.signing_key}, handle, indent=2)
        handle.write("\n")
    return config


def mint_token(signing_key: str, *, role: str, tenant: str, client_id: str, ttl: int = 3600) -> str:
    """An HS256 JWT naming ``tenant``, ``role`` and ``client_id``, expiring in ``ttl`` s.

    Minted by the project's own token rules (``functions.logic.auth``), so the
    claims are exactly those the real authorizer verifies.
    """
    from functions.logic.auth import mint_token as project_mint

    return project_mint(signing_key, tenant=tenant, role=role, client_id=client_id, ttl_seconds=ttl)
