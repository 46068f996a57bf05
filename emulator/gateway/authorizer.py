"""What API Gateway does around a REQUEST authorizer, without calling it (pure).

Before the call: a missing identity source refuses the handshake with 401
without invoking the function. After it: the returned IAM policy must allow
``execute-api:Invoke`` on the method ARN, and the context may hold only
strings, numbers and booleans; it reaches the integrations flattened, with
``principalId`` and ``integrationLatency``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from emulator.events import ConnectionInfo
from emulator.template import Authorizer

__all__ = ["authorizer_context", "identity_missing", "policy_allows"]


def identity_missing(authorizer: Authorizer, info: ConnectionInfo) -> bool:
    """Whether a query string or header the authorizer names is absent or empty."""
    for source in authorizer.identity_sources:
        parts = source.split(".")
        if parts[:3] == ["route", "request", "querystring"]:
            if not info.query.get(parts[3], [""])[-1]:
                return True
        elif parts[:3] == ["route", "request", "header"]:
            lowered = {k.lower(): v for k, v in info.headers.items()}
            if not lowered.get(parts[3].lower(), [""])[-1]:
                return True
    return False


def _matches(pattern: str, value: str) -> bool:
    # fullmatch: "$" would let a value with a trailing newline through.
    regex = re.escape(pattern).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, value, re.DOTALL) is not None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def policy_allows(policy: Any, method_arn: str) -> bool:
    """Evaluate an authorizer's IAM policy for ``execute-api:Invoke`` on ``method_arn``."""
    if not isinstance(policy, dict):
        raise ValueError("policyDocument is not an object")
    allowed = False
    statements = policy.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        actions = _as_list(statement.get("Action"))
        resources = _as_list(statement.get("Resource"))
        if not any(_matches(a, "execute-api:Invoke") for a in actions):
            continue
        if not any(_matches(r, method_arn) for r in resources):
            continue
        effect = str(statement.get("Effect", "")).lower()
        if effect == "deny":
            return False
        if effect == "allow":
            allowed = True
    return allowed


def authorizer_context(result: Any, method_arn: str, latency_ms: int) -> dict[str, Any] | None:
    """The context an allowing ``result`` passes on; None if its policy does not allow.

    Raises ``ValueError``, ``AttributeError`` or ``TypeError`` if ``result`` is
    malformed (API Gateway answers 500).
    """
    if not isinstance(result, dict):
        raise ValueError("authorizer result is not an object")
    allowed = policy_allows(result.get("policyDocument"), method_arn)
    context: Mapping[str, Any] = result.get("context") or {}
    if not isinstance(context, dict) or any(isinstance(v, dict | list) for v in context.values()):
        raise ValueError("authorizer context must hold only strings, numbers, booleans")
    if not allowed:
        return None
    return {
        **context,
        "principalId": result.get("principalId", ""),
        "integrationLatency": latency_ms,
    }
