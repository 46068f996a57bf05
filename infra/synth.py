"""Build and synthesize the app in-process: the entry point of app.py, tests and the emulator.

``synthesize(outdir, context)`` needs no CDK CLI and no AWS credentials. With the
context ``{"bundle": "false"}`` the Lambda asset is the plain source (no pip install),
which is what the local emulator runs in place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra.config import StackSettings
from infra.stack import TabRelayStack

__all__ = ["STACK_NAME", "build_app", "stack_name", "synthesize"]

STACK_NAME = "TabRelay"


def stack_name(stage: str) -> str:
    """The CloudFormation stack name for ``stage`` (``TabRelay-dev``)."""
    return f"{STACK_NAME}-{stage}"


def build_app(
    *, outdir: Path | None = None, context: Mapping[str, Any] | None = None
) -> tuple[App, TabRelayStack]:
    """The CDK app with the stack and the cdk-nag AwsSolutions and Serverless packs.

    ``outdir`` is required outside the CDK CLI (which passes it in the environment).
    The stack is environment-agnostic (no ``env``): synth looks nothing up in an account,
    and ``cdk deploy`` targets the account and region of the caller's credentials.
    """
    app = App(outdir=str(outdir) if outdir is not None else None, context=dict(context or {}))
    settings = StackSettings.from_context(app.node)
    stack = TabRelayStack(
        app,
        stack_name(settings.stage),
        settings=settings,
        description=f"tabrelay WebSocket gateway ({settings.stage})",
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))
    return app, stack


def synthesize(outdir: Path, context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Synthesize into ``outdir`` and return the stack's CloudFormation template.

    Raises if a cdk-nag rule reports an unacknowledged finding (synthesis fails).
    """
    app, stack = build_app(outdir=outdir, context=context)
    assembly = app.synth()
    artifact = assembly.get_stack_artifact(stack.artifact_id)
    template_path = Path(assembly.directory) / artifact.template_file
    template: dict[str, Any] = json.loads(template_path.read_text())
    return template
