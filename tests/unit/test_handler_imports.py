"""What importing a handler loads: only what its every invocation needs (issue 12).

Each handler is imported in a fresh interpreter, as Lambda's init does, and
the modules it loaded are checked against the heavy ones a cold start must not
pay for at import: the parts of Powertools only some invocations use (batch,
its event classes, idempotency, parameters), asyncio, boto3 (the functions
use botocore's clients, not boto3's resources), and PyJWT with the
``cryptography`` package it imports when installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = ("authorizer", "connect", "disconnect", "message", "router", "commands", "delivery")
NEVER_AT_IMPORT = (
    "aws_lambda_powertools.utilities.batch",
    "aws_lambda_powertools.utilities.data_classes",
    "aws_lambda_powertools.utilities.idempotency",
    "aws_lambda_powertools.utilities.parameters",
    "aws_xray_sdk",
    "asyncio",
    "boto3",
    "cryptography",
    "jwt",
    "multiprocessing",
)
#: The authorizer verifies a token: none of the gateway's rules or messages.
NOT_IN_THE_AUTHORIZER = (
    "functions.logic.envelopes",
    "functions.logic.gateway",
    "functions.logic.ports",
    "functions.models.wire",
)
_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "TABLE_NAME": "t",
    "BUS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bus",
    "DELIVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/delivery",
    "COMMAND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/commands",
    "CALLBACK_URL": "https://abc.execute-api.us-east-1.amazonaws.com/dev",
    "SIGNING_SECRET_ID": "key",
    "POWERTOOLS_SERVICE_NAME": "tabrelay",
    "POWERTOOLS_METRICS_NAMESPACE": "TabRelay",
}


def _loaded_after_import(module: str) -> set[str]:
    probe = f"import sys, json, {module}; print(json.dumps(sorted(sys.modules)))"
    completed = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=dict(os.environ) | _ENV | {"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return set(json.loads(completed.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("handler", HANDLERS)
def test_given_a_handler_when_imported_then_it_loads_nothing_only_some_invocations_use(
    handler: str,
) -> None:
    # Given a fresh interpreter
    # When the handler module is imported
    loaded = _loaded_after_import(f"functions.handlers.{handler}")
    # Then none of the heavy, per-invocation packages came with it
    heavy = NEVER_AT_IMPORT + (NOT_IN_THE_AUTHORIZER if handler == "authorizer" else ())
    assert sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in heavy)) == []
