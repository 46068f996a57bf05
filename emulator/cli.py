"""``python -m emulator run`` (what ``make run`` calls) and ``python -m emulator token``.

``run`` synthesizes the CDK app (cached), starts the local gateway on
``ws://localhost:8765`` by default, prints a browser URL and a consumer URL
with tokens, then a compact status line every few seconds; Ctrl-C (or
SIGTERM) closes every connection with a close frame and runs ``$disconnect``.

``token`` prints a token for the local gateway on the last line of its output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emulator.config import DEFAULT_PATH, REPO_ROOT, LocalConfig, load_config, mint_token

if TYPE_CHECKING:
    from emulator.backend import MotoServer

__all__ = ["main"]


class _FunctionOutput:
    """Sends what Lambda threads print to a log file (their CloudWatch), the rest through.

    Handlers log JSON lines (Powertools) and metrics (EMF) to stdout; in a
    terminal they would drown the URLs and the status line.
    """

    def __init__(self, terminal: Any, log: Any) -> None:
        self._terminal = terminal
        self._log = log

    def _target(self) -> Any:
        return self._log if threading.current_thread().name.startswith("lambda") else self._terminal

    def write(self, text: str) -> int:
        return int(self._target().write(text))

    def flush(self) -> None:
        self._terminal.flush()
        self._log.flush()

    def isatty(self) -> bool:
        return bool(self._terminal.isatty())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._terminal, name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve the whole gateway locally")
    run.add_argument("--host", default="localhost", help="interface to bind (default localhost)")
    run.add_argument("--port", type=int, default=8765)
    run.add_argument("--template", type=Path, help="a synthesized template instead of infra/")
    run.add_argument("--code-root", type=Path, default=REPO_ROOT, help="where handler modules live")
    run.add_argument("--context", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a variable in every function's environment",
    )
    run.add_argument("--idle-timeout", type=float, default=600.0)
    run.add_argument("--max-duration", type=float, default=7200.0)
    run.add_argument(
        "--status-interval", type=float, default=5.0, help="0 disables the status line"
    )
    run.add_argument("--config", type=Path, default=DEFAULT_PATH)
    run.add_argument("--tenant", default="demo", help="tenant of the printed tokens")
    run.add_argument("--log-level", default="WARNING")
    run.add_argument(
        "--function-log",
        type=Path,
        default=REPO_ROOT / ".local" / "functions.log",
        help="where the handlers' output goes ('-' for the terminal)",
    )

    dlq = sub.add_parser("dlq", help="print what sits in the DLQs of a running `make run`")
    dlq.add_argument("--port", type=int, default=8765, help="the port `make run` serves on")
    dlq.add_argument("--config", type=Path, default=DEFAULT_PATH)

    token = sub.add_parser("token", help="print a token for the local gateway")
    token.add_argument("--role", required=True, choices=["browser", "consumer"])
    token.add_argument("--tenant", required=True)
    token.add_argument("--client", required=True, help="client id (stable across reconnects)")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="seconds (default one day)")
    token.add_argument("--config", type=Path, default=DEFAULT_PATH)
    return parser


def _pairs(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def _short(logical_id: str) -> str:
    # CDK logical ids end in an 8-hex-digit hash; the status line drops it.
    return re.sub(r"[0-9A-F]{8}$", "", logical_id) or logical_id


async def _status(system: object, interval: float, stop: asyncio.Event) -> None:
    from emulator.system import LocalGateway

    assert isinstance(system, LocalGateway)
    gateway = system.gateway
    model = system.model
    dlq_of = {q.logical_id: q.dead_letter_id for q in model.queues.values() if q.dead_letter_id}
    dlqs = set(dlq_of.values())
    last_in, last_out, last_t = (
        gateway.stats.messages_in,
        gateway.stats.messages_out,
        time.monotonic(),
    )
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
        if stop.is_set():
            return
        now = time.monotonic()
        rate_in = (gateway.stats.messages_in - last_in) / (now - last_t)
        rate_out = (gateway.stats.messages_out - last_out) / (now - last_t)
        last_in, last_out, last_t = gateway.stats.messages_in, gateway.stats.messages_out, now
        roles: dict[str, int] = {}
        for conn in gateway.connections.values():
            if conn.state == "open":
                roles[conn.role] = roles.get(conn.role, 0) + 1
        try:
            depths = await asyncio.to_thread(system.queue_depths)
        except Exception:
            depths = {}
        queues = " ".join(
            f"{_short(lid)}={v + f}"
            + (f"(dlq {sum(depths.get(dlq_of[lid], (0, 0)))})" if lid in dlq_of else "")
            for lid, (v, f) in sorted(depths.items())
            if lid not in dlqs
        )
        conns = " ".join(f"{r}={n}" for r, n in sorted(roles.items())) or "none"
        print(
            f"[{time.strftime('%H:%M:%S')}] connections {conns} | msgs/s in {rate_in:.1f} "
            f"out {rate_out:.1f} | queues {queues or '-'}",
            flush=True,
        )


async def _run(args: argparse.Namespace) -> int:
    from emulator.backend import MotoServer

    config = load_config(args.config)
    if str(args.function_log) != "-":
        args.function_log.parent.mkdir(parents=True, exist_ok=True)
        log_file = args.function_log.open("a", buffering=1)
        sys.stdout = _FunctionOutput(sys.stdout, log_file)
        sys.stderr = _FunctionOutput(sys.stderr, log_file)
    if args.template is not None:
        template = json.loads(args.template.read_text())
    else:
        from emulator.synth import load_template

        print("synthesizing the CDK app (cached after the first run) ...", flush=True)
        template = await asyncio.to_thread(load_template, _pairs(args.context))
    display = "localhost" if args.host in ("localhost", "127.0.0.1", "0.0.0.0", "::") else args.host
    # moto answers only requests signed with the local credentials (config.json).
    moto = MotoServer(credentials=config.credentials)
    await asyncio.to_thread(moto.start)
    try:
        return await _serve(args, config, template, display, moto)
    finally:
        await asyncio.to_thread(moto.stop)


async def _serve(
    args: argparse.Namespace,
    config: LocalConfig,
    template: Any,
    display: str,
    moto: MotoServer,
) -> int:
    from emulator.backend import REGION
    from emulator.dlq import append_failure, failures_path, state_path
    from emulator.system import LocalGateway, Settings

    failures = failures_path(args.config, args.port)
    settings = Settings(
        signing_key=config.signing_key,
        host=args.host,
        port=args.port,
        env_overrides=_pairs(args.env),
        idle_timeout=args.idle_timeout,
        max_duration=args.max_duration,
        code_root=args.code_root,
        public_host=display,
    )
    system = LocalGateway(
        template,
        settings,
        moto=moto,
        on_failure=lambda failure: append_failure(failures, failure),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await system.start()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(
            f"port {args.port} is in use (another `make run`?); try make run PORT=8766",
            file=sys.stderr,
        )
        await system.close()
        return 1
    broken = [f for f in system.functions.values() if f.load_error is not None]
    for function in broken:
        print(
            f"warning: {function.handler_path} failed to import: {function.load_error}", flush=True
        )
    base = f"ws://{display}:{system.port}/{system.stage}"
    browser = mint_token(
        config.signing_key, role="browser", tenant=args.tenant, client_id="browser-1", ttl=86400
    )
    consumer = mint_token(
        config.signing_key, role="consumer", tenant=args.tenant, client_id="consumer-1", ttl=86400
    )
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):
        python = python.relative_to(Path.cwd())
    print(
        "\n".join(
            [
                f"tabrelay local gateway on {base}  (@connections: "
                f"http://{display}:{system.port}/{system.stage}/@connections/{{id}})",
                f"  browser URL : {base}?token={browser}",
                f"  consumer URL: {base}?token={consumer}",
                "  try (two terminals):",
                f"    {python} -m websockets '{base}?token={browser}'",
                f"    {python} -m websockets '{base}?token={consumer}'",
                "  more tokens: make token ROLE=consumer TENANT=demo CLIENT=c2   (Ctrl-C stops)",
                "  AWS credentials of local mode (moto and @connections accept only requests"
                f" signed with them; region {REGION}):",
                f"    AWS_ACCESS_KEY_ID={config.credentials.access_key}"
                f" AWS_SECRET_ACCESS_KEY={config.credentials.secret_key}",
                f"    moto endpoint: {moto.endpoint}   (kept in {args.config})",
                f"  function logs: {args.function_log}",
            ]
        ),
        flush=True,
    )
    # What `make dlq` (another process) needs to find this run. A fresh moto:
    # the failures of an earlier run are gone with its queues.
    failures.unlink(missing_ok=True)
    state = state_path(args.config, args.port)
    fd = os.open(state, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(
            {
                "pid": os.getpid(),
                "moto_endpoint": moto.endpoint,
                "dead_letter_queues": system.dead_letter_queues(),
                "failures": str(failures),
            },
            handle,
        )
    try:
        return await _wait_and_stop(args, system, stop)
    finally:
        state.unlink(missing_ok=True)


async def _wait_and_stop(args: argparse.Namespace, system: Any, stop: asyncio.Event) -> int:
    status = (
        asyncio.create_task(_status(system, args.status_interval, stop))
        if args.status_interval > 0
        else None
    )
    await stop.wait()
    open_count = sum(1 for c in system.gateway.connections.values() if c.state == "open")
    print(f"stopping: closing {open_count} connection(s) and running $disconnect ...", flush=True)
    if status is not None:
        await status
    stats = system.gateway.stats
    before, failed_before = stats.disconnects, stats.disconnect_failures
    await system.close()
    ran, failed = stats.disconnects - before, stats.disconnect_failures - failed_before
    print(f"stopped ($disconnect ran for {ran} connection(s), {failed} failed)", flush=True)
    return 0


def _dlq(args: argparse.Namespace) -> int:
    from emulator.backend import client
    from emulator.dlq import peek, read_failures, render, state_path

    state = state_path(args.config, args.port)
    try:
        run = json.loads(state.read_text())
        os.kill(int(run["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        print(
            f"no local gateway runs on port {args.port} (no live {state}); start it with "
            "`make run`, or pass its port: make dlq PORT=...",
            file=sys.stderr,
        )
        return 1
    config = load_config(args.config)
    sqs = client("sqs", str(run["moto_endpoint"]), config.credentials)
    failures = read_failures(Path(run["failures"]))
    letters = {
        _short(lid): peek(sqs, url, _short(lid), failures)
        for lid, url in dict(run["dead_letter_queues"]).items()
    }
    print(render(letters))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m emulator``."""
    args = _parser().parse_args(argv)
    if args.command == "dlq":
        return _dlq(args)
    if args.command == "token":
        config = load_config(args.config)
        print(
            mint_token(
                config.signing_key,
                role=args.role,
                tenant=args.tenant,
                client_id=args.client,
                ttl=args.ttl,
            )
        )
        return 0
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(_run(args))
