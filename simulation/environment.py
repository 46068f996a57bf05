"""The Lambda environment the handlers run with in the moto world.

Importing this module changes nothing: call :func:`apply_environment` (or enter
:func:`lambda_environment`) before a handler module is imported, because
Powertools and the settings read the environment when they are created.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

__all__ = [
    "ACCOUNT",
    "API_ID",
    "ENVIRONMENT",
    "HANDLER_NAMES",
    "REGION",
    "SIGNING_KEY",
    "STAGE",
    "apply_environment",
    "handler_modules",
    "lambda_environment",
]

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "abc123"
STAGE = "dev"
SIGNING_KEY = "test-signing-key-0123456789abcdef0123456789abcdef"
HANDLER_NAMES = (
    "authorizer",
    "connect",
    "disconnect",
    "message",
    "router",
    "commands",
    "delivery",
)

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "TABLE_NAME": "tabrelay-connections",
    "BUS_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/tabrelay-bus",
    "DELIVERY_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/tabrelay-delivery",
    "COMMAND_QUEUE_URL": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/tabrelay-commands",
    "CALLBACK_URL": f"https://{API_ID}.execute-api.{REGION}.amazonaws.com/{STAGE}",
    "SIGNING_SECRET_ID": "tabrelay-signing-key",
    "MAX_UNACKED": "100",
    "RATE_LIMIT_PER_SECOND": "100000",
    # One Runtime serves every handler here, as if one container ran them all; a
    # cache would hide what another container's $connect wrote only in AWS.
    "RECIPIENT_CACHE_SECONDS": "0",
    "POWERTOOLS_SERVICE_NAME": "tabrelay",
    "POWERTOOLS_METRICS_NAMESPACE": "TabRelay",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def apply_environment() -> None:
    """Set the Lambda environment in ``os.environ`` (and no endpoint override: moto's)."""
    os.environ.update(ENVIRONMENT)
    os.environ.pop("AWS_ENDPOINT_URL", None)


@contextmanager
def lambda_environment() -> Iterator[None]:
    """The Lambda environment for the ``with`` block; the process's own afterwards."""
    saved = dict(os.environ)
    apply_environment()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def handler_modules() -> dict[str, ModuleType]:
    """The handler modules by name, imported (once per process) in the Lambda environment.

    Applies the environment first: whichever caller imports them first decides what
    their Powertools objects read, and every caller of this gets the same.
    """
    apply_environment()
    return {name: importlib.import_module(f"functions.handlers.{name}") for name in HANDLER_NAMES}
