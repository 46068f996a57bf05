"""Infrastructure tests: one synthesis of the CDK app per test session.

The Node tooling (Node 22 for the jsii runtime) is installed by ``make tools`` before
anything imports aws_cdk, so ``make test`` on a fresh machine needs nothing else.
The session synthesizes with ``bundle=false`` (the asset is the plain source): the
template is the same, and no pip download is needed; ``make synth`` bundles.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# Before aws_cdk is imported anywhere: Node 22 under .tools/, which importing the
# infra package selects for the jsii runtime.
subprocess.run(["make", "-s", "tools"], cwd=PROJECT_ROOT, check=True)
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))
import infra  # noqa: E402, F401  imported for its side effect (selects Node 22), after make tools


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The synthesized CloudFormation template of the default (``dev``) stage."""
    from infra.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("cdk.out"), {"bundle": "false"})


# Every optional feature on at once: one extra synthesis shared by the tests of the
# options (reserved concurrency, custom domain with a Route 53 zone).
OPTIONS_CONTEXT = {
    "bundle": "false",
    "reservedConcurrency": "true",
    "routerReservedConcurrency": "20",
    "commandsReservedConcurrency": "20",
    "deliveryReservedConcurrency": "60",
    "domainName": "ws.example.com",
    "certificateArn": (
        "arn:aws:acm:eu-west-1:123456789012:certificate/11111111-2222-3333-4444-555555555555"
    ),
    "hostedZoneId": "Z0123456789ABCDEFGHIJ",
    "hostedZoneName": "example.com",
}


@pytest.fixture(scope="session")
def options_template_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template file of the stack with every optional feature on (cdk-nag checked)."""
    from infra.synth import stack_name, synthesize

    outdir = tmp_path_factory.mktemp("cdk.out.options")
    synthesize(outdir, OPTIONS_CONTEXT)
    return outdir / f"{stack_name('dev')}.template.json"


@pytest.fixture(scope="session")
def options_template(options_template_path: Path) -> dict[str, Any]:
    template: dict[str, Any] = json.loads(options_template_path.read_text())
    return template


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = template["Resources"]
    return resources
