"""Part 4, cold start: handler import time against a bare ``import boto3``, asset sizes.

Each import is timed inside a fresh interpreter (the clock starts after the
interpreter is up, so only the import counts), the subjects interleaved round
by round so that drift on a shared machine hits all of them alike; the figure
is the median of the rounds. Two settings:

* ``venv``: the development virtualenv, bytecode cached (the usual measure);
* ``asset``: the deployment asset first on ``sys.path`` with no bytecode
  written, as in Lambda, whose ``/var/task`` is read-only and whose bundle is
  built with ``pip --no-compile``: every cold start compiles what it imports
  from the asset. boto3 itself comes from the runtime (here: the venv).

A third figure per handler, ``first_invocation``, is its import plus
everything its first invocation builds (boto3 clients, adapters, the
idempotency layer, the secrets provider), in one fresh interpreter, against a
local moto server, with the time spent inside the AWS calls themselves left
out (``bench/firstcall.py``): lazy building must not just move the cold start
from the import into the first invocation. Its baseline, a bare ``import
boto3``, is timed again in the same rounds (interleaved, as above), so a load
that changes between the two parts of the run does not skew the ratio.

Asset sizes come from a real ``synthesize`` of the CDK app with bundling.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "HANDLERS",
    "asset_sizes",
    "first_invocation_times",
    "import_breakdown",
    "import_times",
    "run_coldstart",
]

ROOT = Path(__file__).resolve().parent.parent
HANDLERS = ("authorizer", "connect", "disconnect", "message", "router", "commands", "delivery")
ASSET_SAMPLE = ("authorizer", "message")

# What every handler reads at import (docs/architecture.md); values need not exist.
_HANDLER_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "TABLE_NAME": "tabrelay-connections",
    "BUS_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bus",
    "DELIVERY_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/delivery",
    "COMMAND_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/commands",
    "CALLBACK_URL": "https://abc.execute-api.us-east-1.amazonaws.com/dev",
    "SIGNING_SECRET_ID": "tabrelay-signing-key",
    "POWERTOOLS_SERVICE_NAME": "tabrelay",
    "POWERTOOLS_METRICS_NAMESPACE": "TabRelay",
    "POWERTOOLS_TRACE_DISABLED": "1",
}

_PROBE = (
    "import time, importlib; t = time.perf_counter(); importlib.import_module({module!r}); "
    "print(time.perf_counter() - t)"
)


def _time_import(module: str, env: Mapping[str, str], path_first: Path | None) -> float:
    environment = dict(os.environ) | dict(env)
    if path_first is not None:
        environment["PYTHONPATH"] = os.pathsep.join([str(path_first), str(ROOT)])
        environment["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        environment["PYTHONPATH"] = str(ROOT)
        # The venv setting measures with bytecode cached, whatever the caller's shell says.
        environment.pop("PYTHONDONTWRITEBYTECODE", None)
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        cwd=str(path_first or ROOT),
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(completed.stdout.strip().splitlines()[-1])


def import_times(
    modules: Sequence[str], *, rounds: int, path_first: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Median (and every sample) of each module's import seconds, interleaved by round.

    ``path_first``: a directory put first on ``sys.path`` with bytecode writing
    off (a deployment asset); ``boto3`` is always imported without it.
    """
    for module in modules:  # warm the OS file cache and the venv's bytecode
        _time_import(module, _HANDLER_ENV, None)
    samples: dict[str, list[float]] = {m: [] for m in modules}
    for _ in range(rounds):
        for module in modules:
            first = None if module == "boto3" else path_first
            samples[module].append(_time_import(module, _HANDLER_ENV, first))
    return {m: {"median_s": statistics.median(s), "samples_s": s} for m, s in samples.items()}


# The order a connection's life takes: each step finds what the previous ones made.
_FIRST_CALL_ORDER = (
    "authorizer",
    "connect",
    "message",
    "router",
    "commands",
    "delivery",
    "disconnect",
)
_SIGNING_KEY = "bench-signing-key-0123456789abcdef"


def _first_call_events(round_no: int) -> dict[str, dict[str, Any]]:
    """One representative first event per handler (a browser's life, round ``round_no``)."""
    from tabrelay import wire

    from functions.logic import envelopes
    from functions.logic.auth import mint_token
    from functions.logic.ports import Identity

    browser = Identity(
        connection_id=f"browser{round_no}==",
        tenant="acme",
        role="browser",
        client_id=f"b{round_no}",
    )
    consumer = Identity(
        connection_id=f"consumer{round_no}==", tenant="acme", role="consumer", client_id="c1"
    )

    def context(identity: Identity, route: str, kind: str) -> dict[str, Any]:
        return {
            "routeKey": route,
            "eventType": kind,
            "connectionId": identity.connection_id,
            "requestId": f"req-{route}-{round_no}",
            "messageId": f"msg-{round_no}",
            "authorizer": {
                "tenant": identity.tenant,
                "role": identity.role,
                "client_id": identity.client_id,
            },
        }

    def sqs(body: str) -> dict[str, Any]:
        record = {
            "messageId": f"m-{round_no}",
            "receiptHandle": "rh",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q",
            "awsRegion": "us-east-1",
        }
        return {"Records": [record]}

    token = mint_token(_SIGNING_KEY, tenant="acme", role="browser", client_id=browser.client_id)
    command = wire.Command(id=f"cmd{round_no}", target=browser.client_id, name="click")
    snapshot = {"action": "snapshot", "sid": "s1", "seq": 1, "data": "<html>x</html>"}
    return {
        "authorizer": {
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/bench/$connect",
            "queryStringParameters": {"token": token},
            "requestContext": {"connectionId": "pending", "requestId": f"auth-{round_no}"},
        },
        "connect": {
            "queryStringParameters": {"token": "x"},
            "requestContext": context(browser, "$connect", "CONNECT"),
        },
        "message": {
            "requestContext": context(browser, "$default", "MESSAGE"),
            "body": json.dumps(snapshot),
            "isBase64Encoded": False,
        },
        # The router's own traffic: a browser's presence, fanned out to its tenant.
        "router": sqs(
            json.dumps(
                envelopes.Presence(
                    f"cid-{round_no}", "acme", browser.client_id, online=True, at=0
                ).to_dict()
            )
        ),
        "commands": sqs(
            json.dumps(
                envelopes.CommandEnvelope.of(consumer, command, cid=f"cid-{round_no}").to_dict()
            )
        ),
        "delivery": sqs(
            json.dumps(
                envelopes.Timeout(
                    f"cid-{round_no}", "acme", browser.client_id, command.id
                ).to_dict()
            )
        ),
        "disconnect": {"requestContext": context(browser, "$disconnect", "DISCONNECT")},
    }


def _create_resources(endpoint: str) -> None:
    import boto3

    from simulation.resources import create_table

    session = boto3.session.Session(
        region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
    )
    create_table(session.client("dynamodb", endpoint_url=endpoint), _HANDLER_ENV["TABLE_NAME"])
    sqs = session.client("sqs", endpoint_url=endpoint)
    for name in ("BUS_QUEUE_URL", "COMMAND_QUEUE_URL", "DELIVERY_QUEUE_URL"):
        url = _HANDLER_ENV[name]
        sqs.create_queue(QueueName=url.rsplit("/", 1)[-1])
    session.client("secretsmanager", endpoint_url=endpoint).create_secret(
        Name=_HANDLER_ENV["SIGNING_SECRET_ID"], SecretString=_SIGNING_KEY
    )


def first_invocation_times(rounds: int) -> dict[str, dict[str, Any]]:
    """Per handler: import plus first-invocation build, AWS calls excluded (medians);
    under ``boto3``, a bare ``import boto3`` timed in the same rounds (the baseline)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        _create_resources(endpoint)
        environment = (
            dict(os.environ)
            | _HANDLER_ENV
            | {
                "AWS_ENDPOINT_URL": endpoint,
                "PYTHONPATH": str(ROOT),
                "POWERTOOLS_LOG_LEVEL": "ERROR",
            }
        )
        environment.pop("PYTHONDONTWRITEBYTECODE", None)  # the venv setting: bytecode cached
        samples: dict[str, list[dict[str, float]]] = {h: [] for h in _FIRST_CALL_ORDER}
        baseline: list[float] = []
        for round_no in range(rounds + 1):  # round 0 warms the file cache and bytecode
            events = _first_call_events(round_no)
            # The bare ``import boto3`` again, in the same rounds: the ratio holds
            # however the machine's load drifts between this part and the imports.
            boto3_s = _time_import("boto3", _HANDLER_ENV, None)
            if round_no:
                baseline.append(boto3_s)
            for handler in _FIRST_CALL_ORDER:
                completed = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.firstcall",
                        f"functions.handlers.{handler}",
                        json.dumps(events[handler]),
                    ],
                    cwd=str(ROOT),
                    env=environment,
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=120,
                )
                if round_no:
                    samples[handler].append(json.loads(completed.stdout.strip().splitlines()[-1]))
    finally:
        server.stop()
    out: dict[str, dict[str, Any]] = {
        "boto3": {"median_s": statistics.median(baseline), "samples_s": baseline}
    }
    for handler, runs in samples.items():
        totals = [r["import_s"] + r["invoke_s"] - r["aws_s"] for r in runs]
        out[handler] = {
            "median_s": statistics.median(totals),
            "import_median_s": statistics.median(r["import_s"] for r in runs),
            "build_median_s": statistics.median(r["invoke_s"] - r["aws_s"] for r in runs),
            "aws_median_s": statistics.median(r["aws_s"] for r in runs),
            "samples_s": totals,
        }
    return out


def import_breakdown(module: str) -> dict[str, float]:
    """Where one import spends its time: ``-X importtime`` self times summed per
    top-level package, in ms (bytecode cached; the tracing inflates all a little).
    Module-level work, such as creating boto3 clients, counts for its module."""
    environment = dict(os.environ) | _HANDLER_ENV | {"PYTHONPATH": str(ROOT)}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=str(ROOT),
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    totals: dict[str, float] = {}
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = (
            p.strip() for p in line.removeprefix("import time:").split("|")
        )
        top = name.split(".")[0]
        totals[top] = totals.get(top, 0.0) + int(self_us) / 1000
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def asset_sizes(assembly: Path, template: Mapping[str, Any]) -> dict[str, Any]:
    """Size of each function's code asset in a synthesized cloud assembly.

    Unzipped bytes (Lambda's limit: 250 MB), zipped bytes as CDK uploads them
    (deflate), and the largest top-level entries, which say where the bytes go.
    """
    assets: dict[str, dict[str, Any]] = {}
    functions: dict[str, str] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Lambda::Function":
            continue
        key = resource["Properties"].get("Code", {}).get("S3Key", "")
        handler = resource["Properties"].get("Handler", logical_id)
        if not isinstance(key, str) or not key.endswith(".zip"):
            continue
        # The staged asset directory is named after the hash the S3 key carries.
        asset = f"asset.{key.removesuffix('.zip')}"
        functions[handler] = asset
        if asset in assets:
            continue
        directory = assembly / asset
        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "asset.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                for file in sorted(directory.rglob("*")):
                    if file.is_file():
                        zf.write(file, file.relative_to(directory))
            zipped = archive.stat().st_size
        entries = sorted(
            (
                (p.name, _tree_bytes(p) if p.is_dir() else p.stat().st_size)
                for p in directory.iterdir()
            ),
            key=lambda e: -e[1],
        )
        assets[asset] = {
            "unzipped_bytes": _tree_bytes(directory),
            "zipped_bytes": zipped,
            "largest": [{"name": n, "bytes": b} for n, b in entries[:6]],
        }
    return {"functions": functions, "assets": assets}


def _synthesize(outdir: Path) -> dict[str, Any]:
    # Node 22 for the jsii runtime, as tests/infrastructure does (make tools).
    subprocess.run(["make", "-s", "tools"], cwd=ROOT, check=True)
    from infra.synth import synthesize

    return synthesize(outdir, {"bundle": "true", "stage": "bench"})


def run_coldstart(*, rounds: int = 7, bundle: bool = True) -> dict[str, Any]:
    """Import times of every handler and of boto3; the asset sizes (``bundle``)."""
    modules = ["boto3", *(f"functions.handlers.{h}" for h in HANDLERS)]
    print(f"[coldstart] imports, {rounds} rounds", file=sys.stderr, flush=True)
    venv = import_times(modules, rounds=rounds)
    out: dict[str, Any] = {"rounds": rounds, "python": sys.version.split()[0], "venv": venv}
    base = venv["boto3"]["median_s"]
    ratios = {h: venv[f"functions.handlers.{h}"]["median_s"] / base for h in HANDLERS}
    out["ratio_vs_boto3"] = ratios
    out["handler_import_ratio_vs_boto3"] = max(ratios.values())
    out["message_import_breakdown_ms"] = import_breakdown("functions.handlers.message")
    print(f"[coldstart] first invocations, {rounds} rounds", file=sys.stderr, flush=True)
    first = first_invocation_times(rounds)
    out["first_invocation"] = first
    first_base = first["boto3"]["median_s"]
    out["first_invocation_ratio_vs_boto3"] = {
        h: first[h]["median_s"] / first_base for h in HANDLERS
    }
    if bundle:
        print("[coldstart] synthesizing with bundling", file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            outdir = Path(tmp)
            template = _synthesize(outdir)
            sizes = asset_sizes(outdir, template)
            out["assets"] = sizes
            asset_dir = outdir / next(iter(sizes["assets"]))
            print("[coldstart] imports from the asset", file=sys.stderr, flush=True)
            # Every handler imports the same packages from the one shared asset: the
            # lightest and the heaviest handler stand for all (keeps the run short).
            sampled = ["boto3", *(f"functions.handlers.{h}" for h in ASSET_SAMPLE)]
            deployed = import_times(sampled, rounds=3, path_first=asset_dir)
        out["asset"] = deployed
        out["asset_ratio_vs_boto3"] = {
            h: deployed[f"functions.handlers.{h}"]["median_s"] / deployed["boto3"]["median_s"]
            for h in ASSET_SAMPLE
        }
    return out
