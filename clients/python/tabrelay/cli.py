"""The ``tabrelay`` command: watch snapshots, send commands, list browsers, simulate a browser.

Output a script can rely on: results and snapshot lines go to stdout, one per
line; diagnostics go to stderr as ``tabrelay: error: CODE: message``; the exit
status is one of :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from tabrelay import wire
from tabrelay.client import Relay, connect
from tabrelay.errors import (
    AuthError,
    BusyError,
    CommandFailedError,
    CommandTimeoutError,
    ConnectError,
    ConnectionClosedError,
    RateLimitedError,
    TabRelayError,
    TargetOfflineError,
)
from tabrelay.models import CommandRequest, Snapshot

__all__ = ["EXIT_CODES", "exit_code_for", "main", "make_page", "safe_json", "safe_text"]

#: Exit statuses of every subcommand.
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "command_failed": 1,  # the browser answered ok: false
    "usage": 2,  # bad arguments (argparse's own status)
    "unauthorized": 3,  # the gateway refused the token (HTTP 401/403)
    "connect_failed": 4,  # cannot connect, or the connection was lost for good
    "timeout": 5,  # no answer in time
    "target_offline": 6,  # the target browser is not connected
    "busy": 7,  # busy or rate_limited: try again later
    "error": 8,  # any other gateway error (forbidden, bad_request, too_large, ...)
    "interrupted": 130,  # Ctrl-C
}

_EPILOG = """\
exit status: 0 ok, 1 the browser answered ok=false, 2 usage error,
3 token refused (HTTP 401/403), 4 cannot connect or connection lost,
5 timeout, 6 target offline, 7 busy or rate limited, 8 other gateway error,
130 interrupted. Errors are printed to stderr as 'tabrelay: error: CODE: message'.
The token may also come from the TABRELAY_TOKEN environment variable.
"""


# Characters a web page must not get to the operator's terminal: C0 controls
# (escape sequences start with ESC), DEL, C1 controls (U+009B is a one-byte
# CSI), bidirectional overrides and isolates (they reorder what is shown),
# line/paragraph separators, and lone surrogates (not printable at all).
_UNSAFE: list[int] = [
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,
    0x2029,
    *range(0xD800, 0xE000),
]
_TEXT_ESCAPES: dict[int, str] = {
    c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in _UNSAFE
}
# In JSON text these can only occur inside strings, where \uXXXX means the same.
_JSON_ESCAPES: dict[int, str] = {c: f"\\u{c:04x}" for c in _UNSAFE}


def safe_text(text: object) -> str:
    """``text`` for a terminal: control, bidi and unprintable characters as ``\\xNN``/``\\uNNNN``."""
    return str(text).translate(_TEXT_ESCAPES)


def safe_json(value: Any) -> str:
    """Compact JSON of ``value`` that is also safe for a terminal and parses back to ``value``."""
    return json.dumps(value, ensure_ascii=False).translate(_JSON_ESCAPES)


class _SafeFormatter(logging.Formatter):
    """Log lines may quote what a page or a peer sent: escape it before it reaches stderr."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(super().format(record))


def exit_code_for(exc: BaseException) -> int:
    """The exit status for an exception that ended a subcommand."""
    if isinstance(exc, AuthError):
        return EXIT_CODES["unauthorized"]
    if isinstance(exc, CommandFailedError):
        return EXIT_CODES["command_failed"]
    if isinstance(exc, (ConnectError, ConnectionClosedError)):
        return EXIT_CODES["connect_failed"]
    if isinstance(exc, CommandTimeoutError):
        return EXIT_CODES["timeout"]
    if isinstance(exc, TargetOfflineError):
        return EXIT_CODES["target_offline"]
    if isinstance(exc, (BusyError, RateLimitedError)):
        return EXIT_CODES["busy"]
    return EXIT_CODES["error"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tabrelay",
        description="Client of the tabrelay WebSocket gateway for browser agents.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log connection events")
    sub = parser.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("url", metavar="URL", help="gateway URL, e.g. ws://localhost:8765/local")
        p.add_argument(
            "--token",
            default=os.environ.get("TABRELAY_TOKEN"),
            help="JWT (default: $TABRELAY_TOKEN, or a token already in URL)",
        )

    watch = sub.add_parser(
        "watch",
        help="print each snapshot as it arrives",
        description="Print one line per snapshot: browser, seq, size (bytes), missed, url, "
        "title, separated by tabs (or a JSON object per line with --json).",
        epilog=_EPILOG,
    )
    common(watch)
    watch.add_argument(
        "-b", "--browser", action="append", default=[], help="only this browser (repeatable)"
    )
    watch.add_argument("-n", "--count", type=int, default=0, help="stop after N snapshots")
    watch.add_argument("--json", action="store_true", help="JSON lines (with the html: --html)")
    watch.add_argument("--html", action="store_true", help="include the HTML in --json output")

    send = sub.add_parser(
        "send",
        help="send a command and print its result",
        description="Send command NAME to browser TARGET and print the result value as JSON. "
        "Arguments are key=value pairs; a value that parses as JSON is used as such "
        "(n=3, flag=true, list=[1,2]), anything else is a string.",
        epilog=_EPILOG,
    )
    common(send)
    send.add_argument("target", metavar="TARGET", help="browser client id")
    send.add_argument("name", metavar="NAME", help="command name (navigate, click, ...)")
    send.add_argument("args", metavar="KEY=VALUE", nargs="*", help="command arguments")
    send.add_argument(
        "--timeout",
        type=float,
        default=wire.DEFAULT_COMMAND_TIMEOUT,
        help=f"seconds ({wire.MIN_COMMAND_TIMEOUT}-{wire.MAX_COMMAND_TIMEOUT}; "
        f"default {wire.DEFAULT_COMMAND_TIMEOUT:g})",
    )

    browsers = sub.add_parser(
        "browsers",
        help="list the tenant's online browsers",
        description="Print one line per online browser: client id, connected-at (epoch ms).",
        epilog=_EPILOG,
    )
    common(browsers)
    browsers.add_argument("--json", action="store_true", help="one JSON array")

    sim = sub.add_parser(
        "simulate-browser",
        help="send snapshots at a rate and answer commands",
        description="Act as a browser: send snapshots (from files, cycled, or generated pages "
        "of --size bytes) at --rate per second with a live rate display on stderr, and answer "
        "commands: 'echo' returns its args, 'sleep' waits args.seconds, 'fail' fails with "
        "args.message, 'snapshot' sends the current page now and returns its sid and seq, "
        "'screenshot' returns a 1x1 PNG, anything else returns {name, args}; page-changing "
        "commands (navigate, click, type, ...) send a snapshot before their result, and "
        "navigate sets the page url. Each command is printed to stdout.",
        epilog=_EPILOG,
    )
    common(sim)
    sim.add_argument("--rate", type=float, default=1.0, help="snapshots per second (default 1)")
    sim.add_argument("-n", "--count", type=int, default=0, help="stop after N snapshots")
    sim.add_argument("--duration", type=float, default=0.0, help="stop after S seconds")
    sim.add_argument("--size", type=int, default=20_000, help="bytes of generated HTML")
    sim.add_argument("--file", action="append", default=[], type=Path, help="HTML file (repeat)")
    sim.add_argument("--page-url", default="https://example.test/", help="snapshot url")
    sim.add_argument("--quiet", action="store_true", help="no rate display")

    mcp = sub.add_parser(
        "mcp",
        help="serve MCP over stdio: LLM agents see and drive the tenant's browsers",
        description="An MCP server on stdin/stdout (for MCP hosts: desktop assistants, IDE "
        "agents, agent frameworks) with the tools list_browsers, get_page, navigate, click, "
        "type, fill, press_key, scroll, select_option, hover, wait_for, back, forward, "
        "screenshot. Needs the optional extra: pip install 'tabrelay[mcp]'.",
        epilog=_EPILOG,
    )
    common(mcp)
    mcp.add_argument("--browser", help="default browser client id for every tool")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (see :data:`EXIT_CODES`)."""
    parser = _parser()
    args = parser.parse_args(argv)
    # Usage errors exit with 2 (argparse's status) before anything connects.
    if args.cmd == "send":
        try:
            args.command_args = _parse_args(args.args)
        except ValueError as exc:
            parser.error(str(exc))
        if not wire.MIN_COMMAND_TIMEOUT <= args.timeout <= wire.MAX_COMMAND_TIMEOUT:
            parser.error(
                f"--timeout must be between {wire.MIN_COMMAND_TIMEOUT} and "
                f"{wire.MAX_COMMAND_TIMEOUT} seconds"
            )
    if args.cmd == "simulate-browser" and args.rate <= 0:
        parser.error("--rate must be > 0")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("tabrelay: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    runners = {
        "watch": _watch,
        "send": _send,
        "browsers": _browsers,
        "simulate-browser": _simulate,
        "mcp": _mcp,
    }
    try:
        return asyncio.run(runners[args.cmd](args))
    except KeyboardInterrupt:
        return EXIT_CODES["interrupted"]
    except TabRelayError as exc:
        print(f"tabrelay: error: {safe_text(exc.code)}: {safe_text(exc.message)}", file=sys.stderr)
        return exit_code_for(exc)
    except BrokenPipeError:  # e.g. `tabrelay watch ... | head`
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        return EXIT_CODES["ok"]


def _relay(args: argparse.Namespace, **options: Any) -> Relay:
    return connect(args.url, token=args.token, **options)


def _line(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()


def _snapshot_line(snap: Snapshot, *, as_json: bool, with_html: bool) -> str:
    if as_json:
        obj: dict[str, Any] = {
            "source": snap.source,
            "sid": snap.sid,
            "seq": snap.seq,
            "url": snap.url,
            "title": snap.title,
            "size": snap.size,
            "missed": snap.missed,
        }
        if with_html:
            obj["html"] = snap.html
        return safe_json(obj)
    # Tabs and newlines inside a field are escaped too: one line, six fields.
    return "\t".join(
        safe_text(f) for f in (snap.source, snap.seq, snap.size, snap.missed, snap.url, snap.title)
    )


async def _watch(args: argparse.Namespace) -> int:
    async with _relay(args, role="consumer") as relay:
        if args.browser:
            await relay.subscribe(args.browser)
        seen = 0
        async for snap in relay.snapshots():
            _line(sys.stdout, _snapshot_line(snap, as_json=args.json, with_html=args.html))
            seen += 1
            if args.count and seen >= args.count:
                break
    return EXIT_CODES["ok"]


def _parse_args(pairs: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"argument {pair!r} is not KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


async def _send(args: argparse.Namespace) -> int:
    command_args: dict[str, Any] = args.command_args
    async with _relay(args, role="consumer") as relay:
        value = await relay.command(args.target, args.name, timeout=args.timeout, args=command_args)
    _line(sys.stdout, safe_json(value))
    return EXIT_CODES["ok"]


async def _browsers(args: argparse.Namespace) -> int:
    async with _relay(args, role="consumer") as relay:
        infos = await relay.browsers()
    if args.json:
        rows = [{"client_id": b.client_id, "connected_at": b.connected_at} for b in infos]
        _line(sys.stdout, json.dumps(rows))
    else:
        for b in infos:
            _line(sys.stdout, f"{safe_text(b.client_id)}\t{b.connected_at}")
    return EXIT_CODES["ok"]


_WORDS = [
    "agent",
    "browser",
    "relay",
    "gateway",
    "snapshot",
    "command",
    "tab",
    "page",
    "click",
    "scroll",
    "type",
    "navigate",
    "lambda",
    "queue",
    "socket",
    "frame",
    "part",
    "ack",
    "conflate",
    "tenant",
    "consumer",
    "extension",
]


def make_page(size: int, n: int, *, rng: random.Random | None = None) -> str:
    """A generated HTML page of about ``size`` bytes (varied text, so gzip has work)."""
    rng = rng or random.Random(n)
    head = f"<!doctype html><html><head><title>page {n}</title></head><body><h1>frame {n}</h1>"
    tail = "</body></html>"
    parts = [head]
    total = len(head) + len(tail)
    i = 0
    while total < size:
        words = " ".join(rng.choice(_WORDS) for _ in range(12))
        para = f'<p id="p{i}" data-r="{rng.randrange(1 << 30)}">{words}</p>'
        parts.append(para)
        total += len(para)
        i += 1
    parts.append(tail)
    return "".join(parts)[: max(size, len(head) + len(tail))]


async def _mcp(args: argparse.Namespace) -> int:
    try:
        from tabrelay.mcpserver import serve  # the optional extra: imported only here
    except ImportError as exc:
        raise TabRelayError(str(exc), code="unsupported") from None
    async with _relay(args, role="consumer") as relay:
        await serve(relay, args.browser)
    return EXIT_CODES["ok"]


# Commands after which a browser sends a snapshot of the changed page (as the extension does).
_MUTATING = frozenset(
    [
        "navigate",
        "back",
        "forward",
        "reload",
        "click",
        "type",
        "fill",
        "press_key",
        "scroll",
        "hover",
        "select_option",
    ]
)
# A 1x1 PNG: what the simulator answers to `screenshot`.
_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


async def _simulated_command(cmd: CommandRequest) -> Any:
    if cmd.name == "echo":
        return cmd.args
    if cmd.name == "sleep":
        await asyncio.sleep(float(cmd.args.get("seconds", 1)))
        return {"slept": cmd.args.get("seconds", 1)}
    if cmd.name == "fail":
        raise RuntimeError(str(cmd.args.get("message", "failed on purpose")))
    return {"name": cmd.name, "args": cmd.args}


async def _simulate(args: argparse.Namespace) -> int:
    pages = [p.read_text(encoding="utf-8") for p in args.file]
    show = not args.quiet and sys.stderr.isatty()

    # The page the simulated browser shows now: the newest one it sent.
    page = {"html": "", "url": args.page_url, "title": ""}

    # One page at a time, so the seq read after a send is that snapshot's own.
    sending = asyncio.Lock()

    async def send_page(html: str, url: str, title: str) -> tuple[str, int]:
        async with sending:
            page.update(html=html, url=url, title=title)
            sid = await relay.send_snapshot(html, url=url, title=title)
            return sid, relay.snapshot_seq

    async def handler(cmd: CommandRequest) -> Any:
        fields = ("command", cmd.id, cmd.name, json.dumps(cmd.args))
        _line(sys.stdout, "\t".join(safe_text(f) for f in fields))
        if cmd.name == "snapshot":  # send the page now; answer what was sent
            # The seq too, as the extension answers: a consumer that waits for this
            # snapshot must also accept a newer one that conflated it.
            sid, seq = await send_page(page["html"], page["url"], page["title"])
            return {"sid": sid, "seq": seq, "url": page["url"], "title": page["title"]}
        if cmd.name == "screenshot":
            return {"mime": "image/png", "data": _PNG, "url": page["url"]}
        if cmd.name == "navigate" and isinstance(cmd.args.get("url"), str):
            page["url"] = args.page_url = cmd.args["url"]  # later snapshots are of it too
        value = await _simulated_command(cmd)
        if cmd.name in _MUTATING:
            await send_page(page["html"], page["url"], page["title"])
        return value

    async with _relay(args, role="browser") as relay:
        relay.on_command(handler)
        loop = asyncio.get_running_loop()
        start = loop.time()
        next_at = start
        sent = 0
        sent_bytes = 0
        last_show = start
        while True:
            now = loop.time()
            if args.count and sent >= args.count:
                break
            if args.duration and now - start >= args.duration:
                break
            html = pages[sent % len(pages)] if pages else make_page(args.size, sent)
            await send_page(html, f"{args.page_url}#{sent}", f"frame {sent}")
            sent += 1
            sent_bytes += len(html)
            now = loop.time()
            if show and (now - last_show >= 0.5 or sent == 1):
                elapsed = max(now - start, 1e-9)
                sys.stderr.write(
                    f"\rsent {sent} snapshots  {sent / elapsed:6.1f}/s  "
                    f"{sent_bytes / elapsed / 1e6:6.2f} MB/s  "
                    f"commands {relay.stats.commands_run}  dropped {relay.stats.outgoing_dropped}  "
                )
                sys.stderr.flush()
                last_show = now
            # Pace by schedule, not by sleeping a fixed time after each send.
            next_at += 1.0 / args.rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        await relay.drain()
        if show:
            sys.stderr.write("\n")
        elapsed = max(loop.time() - start, 1e-9)
        print(
            f"tabrelay: sent {sent} snapshots in {elapsed:.1f} s ({sent / elapsed:.1f}/s), "
            f"answered {relay.stats.commands_run} commands",
            file=sys.stderr,
        )
    return EXIT_CODES["ok"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
