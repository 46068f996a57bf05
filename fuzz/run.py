"""Play random and adversarial traffic through the real handlers and count what went wrong.

Two tenants, each with browsers and consumers (some client ids shared between the
tenants, some not). Each step picks an actor and one of: a valid message of an
action its role may send, a mutated one, a message of the other role, a deeply
nested one, a raw text frame, a binary frame, a multi-frame sequence (multi-part
snapshots and results, command bursts with reused ids, subscriptions to long
lists), a lifecycle event (connect, supersede, close, vanish) or an adversarial
token. Browsers answer the commands they really received (and some they did
not), consumers ack what they really received. The workers run between steps,
virtual time passes for delayed messages, and at the end every queue is drained
(delayed messages included) until nothing is left.

Counts (all must be 0): ``internal`` answers, exceptions in handlers and workers,
DLQ records, cross-tenant deliveries, invalid JSON sent to clients, and invalid
tokens the authorizer accepted.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from random import Random
from typing import Any

from fuzz.frames import MARKER, Frame, FrameMaker, bad_tokens, dumps, token
from fuzz.world import Connection, Observer, World, allows, moto_world
from simulation.environment import SIGNING_KEY

__all__ = ["FuzzReport", "run"]

TENANTS = ["acme", "acme.evil"]
#: Client ids per tenant and role: "b1"/"c1" exist in both tenants, "only-*" in one.
SHARED_BROWSERS = ["b1", "b2"]
SHARED_CONSUMERS = ["c1", "c2"]

_STEPS: list[tuple[str, float]] = [
    ("valid", 38),
    ("mutated", 24),
    ("sequence", 10),
    ("raw", 7),
    ("binary", 4),
    ("forbidden", 3),
    ("deep", 2),
    ("connect", 4),
    ("close", 2),
    ("vanish", 0.5),
    ("bad_token", 1.5),
    ("huge_subscribe", 0.04),
]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _strict_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} does not fit a double")
    return value


@dataclass
class FuzzReport:
    seed: int
    frames: int
    counts: dict[str, int]
    causes: dict[str, list[dict[str, Any]]]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "frames": self.frames,
            "counts": self.counts,
            "ok": not self.failed,
            "stats": self.stats,
            "causes": self.causes,
        }


class Fuzzer:
    def __init__(
        self, seed: int, frames: int, *, throttle_rate: float = 0.02, progress: bool = False
    ) -> None:
        self.seed = seed
        self.progress = progress
        self.target = frames
        self.rng = Random(seed)
        self.observer = Observer()
        self.observer.counts["invalid_tokens_accepted"] = 0
        self.throttle_rate = throttle_rate
        self.browsers = {t: [*SHARED_BROWSERS, f"only-{i}-b"] for i, t in enumerate(TENANTS)}
        self.consumers = {t: [*SHARED_CONSUMERS, f"only-{i}-c"] for i, t in enumerate(TENANTS)}
        self.maker = FrameMaker(self.rng, TENANTS, self.browsers)
        self.sent = 0
        self.stats: dict[str, Any] = defaultdict(int)
        # What clients really received, to answer and ack like real clients.
        self.delivered_commands: dict[str, list[str]] = defaultdict(list)
        self.answered: dict[str, list[str]] = defaultdict(list)
        #: Markers of another tenant a tenant's clients sent on purpose (guessed ids):
        #: echoed back to the sender they are no leak.
        self.known: dict[int, set[str]] = defaultdict(set)
        self.last_dseq: dict[str, int] = defaultdict(int)
        self.command_ids: dict[str, list[str]] = defaultdict(list)
        self.world: World | None = None
        self.vanished: list[str] = []

    # -- checks on everything a client receives -------------------------------------------

    def on_post(self, connection_id: str, data: bytes) -> None:
        self.stats["posts"] += 1
        obj = self.check(connection_id, data, "post")
        if not isinstance(obj, dict):
            return
        if obj.get("action") == "command" and isinstance(obj.get("id"), str):
            self.delivered_commands[connection_id].append(obj["id"])
        if isinstance(obj.get("dseq"), int):
            self.last_dseq[connection_id] = max(self.last_dseq[connection_id], obj["dseq"])

    def check(self, connection_id: str, data: bytes | str, via: str) -> Any:
        """Strict JSON, no ``internal``, nothing of another tenant. Returns the object."""
        obs = self.observer
        if isinstance(data, bytes):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                obs.add("invalid_json_to_clients", f"{via}: not UTF-8", str(exc))
                return None
        else:
            text = data
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                obs.add("invalid_json_to_clients", f"{via}: lone surrogate in the text", str(exc))
                return None
        try:
            obj = json.loads(text, parse_constant=_refuse_constant, parse_float=_strict_float)
        except (ValueError, RecursionError) as exc:
            obs.add("invalid_json_to_clients", f"{via}: {str(exc).split(':')[0]}", text[:300])
            return None
        action = obj.get("action") if isinstance(obj, dict) else None
        if action == "error" and obj.get("code") == "internal":
            message = re.sub(r"\(ref \w+\)", "(ref ...)", str(obj.get("message", "")))
            obs.add("internal_answers", f"{via}: {message[:80]}", text[:300])
        assert self.world is not None
        conn = self.world.connections.get(connection_id)
        if conn is None:
            return obj
        tenant_index = TENANTS.index(conn.tenant) if conn.tenant in TENANTS else -1
        for match in MARKER.finditer(text):
            if (
                int(match.group(1)) != tenant_index
                and match.group() not in self.known[tenant_index]
            ):
                obs.add(
                    "cross_tenant_deliveries",
                    f"{via}: {action} carried another tenant's data",
                    text[:300],
                )
                break
        self._check_sources(conn, obj, action, via, text)
        return obj

    def _check_sources(self, conn: Connection, obj: Any, action: Any, via: str, text: str) -> None:
        """Client ids named in a delivery must be clients of the receiver's tenant."""
        if not isinstance(obj, dict):
            return
        browsers = set(self.browsers.get(conn.tenant, []))
        consumers = set(self.consumers.get(conn.tenant, []))
        named: list[tuple[Any, set[str]]] = []
        if action in ("snapshot", "result") and "source" in obj:
            named.append((obj["source"], browsers))
        elif action == "command" and "source" in obj:
            named.append((obj["source"], consumers))
        elif action == "presence":
            named.append((obj.get("client_id"), browsers))
        elif action == "browsers":
            named += [(b.get("client_id"), browsers) for b in obj.get("browsers", [])]
        for name, allowed in named:
            if name not in allowed:
                self.observer.add(
                    "cross_tenant_deliveries",
                    f"{via}: {action} names client {name!r} of another tenant",
                    text[:300],
                )

    # -- actors ------------------------------------------------------------------------

    def open_connections(self, role: str | None = None) -> list[Connection]:
        assert self.world is not None
        conns = [self.world.connections[c] for c in sorted(self.world.api.open)]
        return [c for c in conns if role is None or c.role == role]

    def connect(self, tenant: str, role: str, client: str) -> Connection | None:
        assert self.world is not None
        tok = token(
            SIGNING_KEY,
            json.dumps(
                {"tenant": tenant, "role": role, "client_id": client, "aud": "tabrelay",
                 "exp": int(time.time()) + 3600}
            ),
        )  # fmt: skip
        self.observer.current = f"connect {role} {tenant}/{client}"
        conn = self.world.connect(tok, acks=self.rng.random() < 0.5, now_ms=int(time.time() * 1000))
        self.stats["connects"] += 1
        self.world.closed_by_gateway()
        return conn

    def random_client(self) -> tuple[str, str, str]:
        tenant = self.rng.choice(TENANTS)
        role = self.rng.choice(["browser", "consumer"])
        pool = self.browsers[tenant] if role == "browser" else self.consumers[tenant]
        return tenant, role, self.rng.choice(pool)

    def send(self, conn: Connection, frame: Frame) -> None:
        assert self.world is not None
        if conn.connection_id not in self.world.api.open:
            return  # closed by the gateway in the middle of a sequence
        body = frame.body
        shown = body if len(body) <= 400 else f"{body[:300]!r}... ({len(body)} chars)"
        self.observer.current = (
            f"{conn.role} of {conn.tenant} sends {frame.kind}: "
            f"{shown if len(body) > 400 else frame.literal()}"
        )
        self.sent += 1
        self.stats[f"frames_{frame.kind}"] += 1
        reply = self.world.send(conn, body, binary=frame.binary)
        if reply is not None:
            self.stats["replies"] += 1
            self.check(conn.connection_id, reply, "reply")
        self.world.closed_by_gateway()

    def tenant_index(self, conn: Connection) -> int:
        return TENANTS.index(conn.tenant)

    # -- frames for one actor ---------------------------------------------------------------

    def valid(self, conn: Connection) -> list[dict[str, Any]]:
        t = self.tenant_index(conn)
        m = self.maker
        if conn.role == "browser":
            r = self.rng.random()
            if r < 0.45:
                return [m.snapshot(t, conn.client_id)]
            if r < 0.85:
                return [m.result(t, self.result_id(conn))]
            return [
                m.simple(t, self.rng.choice(["ping", "ack"]), self.last_dseq[conn.connection_id])
            ]
        r = self.rng.random()
        if r < 0.45:
            return [m.command(t, self.command_id(conn))]
        if r < 0.65:
            return [m.subscribe(t, unsubscribe=self.rng.random() < 0.35)]
        action = self.rng.choice(["ping", "ack", "ack", "list"])
        return [m.simple(t, action, self.last_dseq[conn.connection_id])]

    def result_id(self, conn: Connection) -> str:
        pending = self.delivered_commands.get(conn.connection_id)
        answered = self.answered[conn.tenant]
        r = self.rng.random()
        if pending and r < 0.8:
            command_id = pending.pop(self.rng.randrange(len(pending)))
            answered.append(command_id)
            return command_id
        if answered and r < 0.9:
            return self.rng.choice(answered[-50:])  # duplicate or late
        other = self.answered[TENANTS[1 - self.tenant_index(conn)]]
        if other and r < 0.95:
            # Another tenant's command id: its result must never reach that tenant.
            command_id = self.rng.choice(other[-50:])
            self.known[self.tenant_index(conn)].update(
                m.group() for m in MARKER.finditer(command_id)
            )
            return command_id
        return f"nope{self.maker.marker(self.tenant_index(conn))}"

    def command_id(self, conn: Connection) -> str:
        used = self.command_ids[f"{conn.tenant}/{conn.client_id}"]
        r = self.rng.random()
        if used and r < 0.1:
            return self.rng.choice(used)  # reused by the same consumer
        if r < 0.14:
            other = self.command_ids[
                f"{conn.tenant}/{self.rng.choice(self.consumers[conn.tenant])}"
            ]
            if other:
                return self.rng.choice(other)  # another consumer's id
        if r < 0.18:
            return "k-1"  # the same literal id in both tenants
        command_id = f"k{len(used)}{self.maker.marker(self.tenant_index(conn))}"
        used.append(command_id)
        return command_id

    def sequence(self, conn: Connection) -> list[dict[str, Any]]:
        t = self.tenant_index(conn)
        if conn.role == "browser":
            pending = self.delivered_commands.get(conn.connection_id)
            if pending and self.rng.random() < 0.5:
                command_id = pending.pop(0)
                self.answered[conn.tenant].append(command_id)
                return self.maker.result_parts(t, command_id)
            return self.maker.snapshot_parts(t, conn.client_id)
        if self.rng.random() < 0.5:
            # A burst at one browser: fills its in-flight window (busy) and reuses ids.
            target = self.rng.choice(self.browsers[conn.tenant])
            burst = []
            for _ in range(self.rng.randrange(3, 15)):
                msg = self.maker.command(t, self.command_id(conn))
                msg["target"] = target
                burst.append(msg)
            return burst
        return [self.maker.subscribe(t) for _ in range(self.rng.randrange(2, 5))]

    def huge_subscribe(self, conn: Connection) -> None:
        """Subscribe to ever more ids of 128 three-byte characters, then leave."""
        t = self.tenant_index(conn)
        rounds = self.rng.randrange(6, 13)
        for r in range(rounds):
            ids = [f"{r}-{i}-" + "日" * 120 for i in range(100)]
            self.send(conn, Frame(dumps({"action": "subscribe", "browsers": ids, "id": f"h{r}{self.maker.marker(t)}"}), kind="huge_subscribe"))  # fmt: skip
        assert self.world is not None
        self.world.disconnect(conn.connection_id)

    # -- the run --------------------------------------------------------------------------------

    def step(self) -> None:
        assert self.world is not None
        kinds, weights = zip(*_STEPS, strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        if kind == "connect" or not self.open_connections():
            self.connect(*self.random_client())
            return
        if kind == "bad_token":
            self.bad_token()
            return
        conn = self.rng.choice(self.open_connections())
        if kind == "close":
            self.stats["closes"] += 1
            self.world.disconnect(conn.connection_id)
        elif kind == "vanish":  # the socket dies; $disconnect never comes (best effort in AWS)
            self.stats["vanished"] += 1
            self.world.api.open.discard(conn.connection_id)
            self.vanished.append(conn.connection_id)
        elif kind == "huge_subscribe":
            consumers = self.open_connections("consumer")
            if consumers:
                self.huge_subscribe(self.rng.choice(consumers))
        elif kind == "sequence":
            self.play_sequence(conn)
        else:
            for frame in self.frames(kind, conn):
                self.send(conn, frame)

    def bad_token(self) -> None:
        """A token the authorizer must refuse (unless the case says it may pass)."""
        assert self.world is not None
        tenant, role, client = self.random_client()
        case = bad_tokens(self.rng, SIGNING_KEY, tenant, role, client)
        self.observer.current = f"authorize token ({case.why}): {case.token!r}"
        self.stats["bad_tokens"] += 1
        if allows(self.world.authorize(case.token)) and not case.may_pass:
            self.observer.add("invalid_tokens_accepted", case.why, case.token)

    def frames(self, kind: str, conn: Connection) -> list[Frame]:
        """The frames of one step of ``kind`` (not a sequence) for ``conn``."""
        t = self.tenant_index(conn)
        if kind == "valid":
            return [Frame(self._dumps(msg), kind="valid") for msg in self.valid(conn)]
        if kind == "mutated":
            return [Frame(self._dumps(self.maker.mutate(msg, t)), kind="mutated") for msg in self.valid(conn)]  # fmt: skip
        if kind == "forbidden":
            other = Connection(conn.connection_id, "consumer" if conn.role == "browser" else "browser",
                               conn.tenant, conn.client_id, conn.authorizer, conn.connected_at)  # fmt: skip
            return [Frame(self._dumps(msg), kind="forbidden") for msg in self.valid(other)]
        if kind == "deep":
            return [Frame(self.maker.deep(t), kind="deep")]
        if kind == "raw":
            return [Frame(self.maker.raw(t, conn.role), kind="raw")]
        if kind == "binary":
            msg = self.valid(conn)[0]
            return [Frame(self.maker.binary(t, conn.role, msg), binary=True, kind="binary")]
        raise ValueError(f"unknown step kind {kind}")

    def play_sequence(self, conn: Connection) -> None:
        """A multi-frame sequence; sometimes the client reconnects in its middle."""
        frames = [Frame(self._dumps(msg), kind="sequence") for msg in self.sequence(conn)]
        if self.rng.random() < 0.2 and len(frames) > 1:
            # Reconnect in the middle of the sequence (a new connection supersedes it).
            cut = self.rng.randrange(1, len(frames))
            for frame in frames[:cut]:
                self.send(conn, frame)
            new = self.connect(conn.tenant, conn.role, conn.client_id)
            frames = frames[cut:]
            conn = new or conn
            self.stats["reconnects_mid_sequence"] += 1
        for frame in frames:
            self.send(conn, frame)

    def _dumps(self, msg: Any) -> str:
        text = dumps(msg, ascii_only=self.rng.random() < 0.2)
        return (" " * self.rng.randrange(3) + text) if self.rng.random() < 0.05 else text

    def run(self) -> FuzzReport:
        started, cpu_started = time.monotonic(), time.process_time()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "No application metrics to publish")
            with moto_world(
                self.observer, self.on_post, self.rng,
                throttle_rate=self.throttle_rate,
                # The deployed rate limit; small windows so parks, conflation and
                # busy happen; few parks so slow consumers get dropped too.
                settings_overrides={"max_unacked": 10, "max_parks": 4, "rate_limit_per_second": 100},
            ) as world:  # fmt: skip
                self.world = world
                self._play(world)
                self._dead_letters(world)
                self.stats["invocations"] = world.invocations
                self.stats["routes"] = dict(sorted(world.routes.items()))
                self.stats["aws_calls"] = dict(sorted(world.calls.items()))
                self.stats["aws_seconds"] = {
                    k: round(v, 2) for k, v in sorted(world.call_seconds.items())
                }
                self.stats["held_at_end"] = world.sqs.held
        self.stats["seconds"] = round(time.monotonic() - started, 1)
        self.stats["cpu_seconds"] = round(time.process_time() - cpu_started, 1)
        causes = {
            count: sorted(
                (
                    {"cause": cause, "n": f.count, "example": f.example, "detail": f.detail}
                    for cause, f in found.items()
                ),
                key=lambda c: -int(c["n"] or 0),
            )
            for count, found in self.observer.causes.items()
        }
        return FuzzReport(
            self.seed, self.sent, dict(self.observer.counts), causes, dict(self.stats)
        )

    def _dead_letters(self, world: World) -> None:
        """DLQ records, grouped by queue and envelope kind (the first of each as example)."""
        total = sum(world.dead_letters().values())
        for queue, body in world.dead_letter_bodies():
            try:
                kind = json.loads(body).get("kind")
            except ValueError:
                kind = "?"
            shown = body if len(body) <= 600 else f"{body[:500]}... ({len(body)} chars)"
            self.observer.current = f"envelope {shown}"
            self.observer.add("dlq_records", f"{queue}: {kind}")
        self.observer.counts["dlq_records"] = total

    def _play(self, world: World) -> None:
        for tenant in TENANTS:
            for client in self.browsers[tenant]:
                self.connect(tenant, "browser", client)
            for client in self.consumers[tenant]:
                self.connect(tenant, "consumer", client)
        world.drain()
        report_at = 500
        while self.sent < self.target:
            self.step()
            if self.progress and self.sent >= report_at:
                report_at += 500
                counts = " ".join(f"{k}={v}" for k, v in self.observer.counts.items() if v)
                print(
                    f"[fuzz] {self.sent} frames, {time.process_time():.0f} s CPU; "
                    f"{counts or 'all counts 0'}",
                    file=sys.stderr,
                    flush=True,
                )
            if self.rng.random() < 0.25:
                world.drain()
            if self.rng.random() < 0.03:
                world.advance(self.rng.choice([1, 2, 4, 10, 31, 60, 901]))
        world.settle()
        # Everyone leaves: $disconnect of every connection, then the last deliveries.
        self.observer.current = "(end: every connection closes)"
        for conn in self.open_connections():
            world.disconnect(conn.connection_id)
        world.settle()
        # $disconnect is best effort in AWS, but it usually comes: for vanished sockets too.
        for connection_id in self.vanished:
            world.disconnect(connection_id)
        world.settle()
        # What is left once everyone left (TTL would remove it eventually): for reading,
        # not a count. Connection items (C, T, S) or pending commands (K) are leaks.
        self.stats["items_left_after_all_disconnected"] = world.leftover_items()


def run(
    seed: int, frames: int, *, throttle_rate: float = 0.02, progress: bool = False
) -> FuzzReport:
    """Fuzz with ``frames`` inbound frames from ``seed``; the report of what went wrong."""
    return Fuzzer(seed, frames, throttle_rate=throttle_rate, progress=progress).run()
