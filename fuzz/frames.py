"""Frame generation: every action with random values, mutations of them, raw and
binary frames, multi-frame sequences, and adversarial tokens.

Everything draws from one ``random.Random``, so a seed replays a run. JSON text is
written by :func:`dumps`, which can emit what ``json.dumps`` cannot or will not
(``1e400``, 39-digit numbers, ``NaN``) and keeps lone surrogates as ``\\uXXXX``
escapes: a text frame is UTF-8 on the wire, so a raw lone surrogate cannot arrive.

Strings a client of tenant ``t`` makes carry a marker ``~m<t>x<n>~``; finding one
in anything sent to another tenant's connection is a cross-tenant delivery.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from random import Random
from typing import Any

__all__ = ["MARKER", "Frame", "FrameMaker", "Raw", "dumps", "token"]

#: A marker of tenant index ``t``; group 1 is the index.
MARKER = re.compile(r"~m(\d+)x\d+~")
#: API Gateway's message limit; the gateway refuses inbound above 127 KB.
LIMIT = 128 * 1024
_SURROGATE = re.compile("[\ud800-\udfff]")


class Raw(str):
    """JSON text written as is (a number JSON allows but Python cannot hold)."""


@dataclass
class Frame:
    """One inbound message: ``body`` is the text (or the base64 of a binary frame)."""

    body: str
    binary: bool = False
    kind: str = ""

    def literal(self) -> str:
        """The frame as a Python literal, to replay it."""
        return repr({"body": self.body, "isBase64Encoded": self.binary})


def dumps(value: Any, *, ascii_only: bool = False) -> str:
    """JSON text of ``value``; :class:`Raw` verbatim, lone surrogates escaped."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        inner = ",".join(
            f"{dumps(str(k), ascii_only=ascii_only)}:{dumps(v, ascii_only=ascii_only)}"
            for k, v in value.items()
        )
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ",".join(dumps(v, ascii_only=ascii_only) for v in value) + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=ascii_only)
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return json.dumps(value)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(key: str, payload_json: str, *, header: str = '{"alg":"HS256","typ":"JWT"}') -> str:
    """An HS256 JWT of exactly this payload text (so ``exp`` can be ``1e400``)."""
    signing = f"{_b64url(header.encode())}.{_b64url(payload_json.encode('utf-8', 'surrogatepass'))}"
    signature = hmac.new(key.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{_b64url(signature)}"


# -- values ---------------------------------------------------------------------------

_NUMBERS: list[Any] = [
    0, 1, -1, 7, 2**31, -(2**31), 2**53 + 1, 10**38 - 1, -(10**38) + 1, 10**38,
    10**39 + 7, -(10**40), 0.5, -0.0, 1e-300, 1.7976931348623157e308,
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e400"),
    Raw("1E+999"), Raw("123456789012345678901234567890123456789"),
    Raw("0.000000000000000000000000000000000000000001"), Raw("1.0e2"), Raw("-0"),
]  # fmt: skip

_ODD_STRINGS = [
    "", " ", "*", "#", "a#b", "T#x", "\n", "b1\n", "\t", "\x00", "\x1b[31mred\x1b[0m",
    "\ud800", "\udfff", "x\ud83dy", "\uffff", "\ufffe", "\u200b", "\u2028", "é", "日本語",
    "🎉", "null", "true", "{", "}", "\\", '"', "<script>alert(1)</script>", "%00", "../..",
]  # fmt: skip


#: Characters for random text: ASCII, Latin, Greek, CJK, symbols (no surrogates).
_ALPHABET = [chr(c) for c in range(0x20, 0x2FF)] + [chr(c) for c in range(0x2000, 0x2FFF, 7)]


class FrameMaker:
    """Makes frames for an actor of tenant index ``tenant``."""

    def __init__(self, rng: Random, tenants: list[str], browsers: dict[str, list[str]]) -> None:
        self.rng = rng
        self.tenants = tenants
        #: Browser client ids per tenant (the other tenant's are fair game for commands).
        self.browsers = browsers
        self._marker = 0
        self._sid = 0
        self._seq: dict[str, int] = {}

    # -- primitives ------------------------------------------------------------------

    def marker(self, tenant: int) -> str:
        self._marker += 1
        return f"~m{tenant}x{self._marker}~"

    def text(self, tenant: int, *, long: bool = True) -> str:
        r = self.rng.random()
        m = self.marker(tenant)
        if r < 0.35:
            return f"w{self.rng.randrange(10**6)}{m}"
        if r < 0.55:
            return self.rng.choice(_ODD_STRINGS) + m + self.rng.choice(_ODD_STRINGS)
        if r < 0.7:
            return "".join(self.rng.choices(_ALPHABET, k=self.rng.randrange(1, 40))) + m
        if r < 0.8:
            return m + "".join(self.rng.choice(_ODD_STRINGS) for _ in range(5))
        if r < 0.9 or not long:
            return self.rng.choice(_ODD_STRINGS)
        size = self.rng.choice([129, 1025, 4097, 8193, 33_000, 127 * 1024, 140_000])
        return m + self.rng.choice(["x", "é", '"', "\x01", "\ud800"]) * size

    def number(self) -> Any:
        if self.rng.random() < 0.5:
            return self.rng.choice(_NUMBERS)
        return self.rng.choice([self.rng.randrange(-1000, 10**6), self.rng.uniform(-1e6, 1e6)])

    def value(self, tenant: int, depth: int = 0) -> Any:
        r = self.rng.random()
        if depth > 3 or r < 0.3:
            return self.text(tenant, long=False)
        if r < 0.5:
            return self.number()
        if r < 0.6:
            return self.rng.choice([True, False, None])
        if r < 0.8:
            return [self.value(tenant, depth + 1) for _ in range(self.rng.randrange(4))]
        return {
            self.text(tenant, long=False): self.value(tenant, depth + 1)
            for _ in range(self.rng.randrange(4))
        }

    def any_of_type(self, tenant: int) -> Any:
        """A value of a random JSON type (for wrong-type mutations)."""
        return self.rng.choice(
            [
                self.number(),
                self.text(tenant, long=False),
                True,
                None,
                [],
                {},
                [self.text(tenant, long=False)],
                {"x": 1},
            ]
        )

    # -- valid messages -------------------------------------------------------------------

    def browser_id(self, tenant: int) -> str:
        r = self.rng.random()
        if r < 0.7:
            return self.rng.choice(self.browsers[self.tenants[tenant]])
        if r < 0.85:
            other = self.tenants[(tenant + 1) % len(self.tenants)]
            return self.rng.choice(self.browsers[other])
        return self.rng.choice(["*", "nobody", "b1 ", "B1", "b1#x", "\ud800", "x" * 128])

    def next_seq(self, client: str) -> int:
        self._seq[client] = self._seq.get(client, 0) + self.rng.randrange(1, 3)
        return self._seq[client]

    def snapshot(self, tenant: int, client: str) -> dict[str, Any]:
        self._sid += 1
        html = f"<html><title>{self.text(tenant, long=False)}</title>{self.text(tenant)}</html>"
        msg: dict[str, Any] = {
            "action": "snapshot",
            "sid": f"s{self._sid}{self.marker(tenant)}",
            "seq": self.next_seq(client),
            "data": html,
        }
        if self.rng.random() < 0.7:
            msg["url"] = f"https://example.com/{self.text(tenant, long=False)}"
            msg["title"] = self.text(tenant, long=False)
        if self.rng.random() < 0.3:
            msg["enc"] = "gzip"
            msg["data"] = base64.b64encode(gzip.compress(html.encode("utf-8", "replace"))).decode()
        if self.rng.random() < 0.2:
            msg["id"] = f"snap{self.marker(tenant)}"
        return msg

    def command(self, tenant: int, command_id: str) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "action": "command",
            "id": command_id,
            "target": self.browser_id(tenant),
            "name": self.rng.choice(["click", "navigate", "evaluate", "type", "screenshot"]),
        }
        if self.rng.random() < 0.8:
            msg["args"] = {
                self.rng.choice(["selector", "url", "text", "x"]): self.value(tenant)
                for _ in range(self.rng.randrange(3))
            }
        if self.rng.random() < 0.7:
            msg["timeout"] = self.rng.choice([1, 2, 5, 10, 30, 30.5, 60, 900])
        return msg

    def result(self, tenant: int, command_id: str) -> dict[str, Any]:
        ok = self.rng.random() < 0.7
        msg: dict[str, Any] = {"action": "result", "id": command_id, "ok": ok}
        if ok:
            msg["value"] = self.value(tenant)
        else:
            msg["error"] = self.text(tenant, long=False)[:4096]
            if self.rng.random() < 0.5:
                msg["code"] = self.rng.choice(["element_not_found", "timeout", "x" * 64])
        return msg

    def subscribe(self, tenant: int, *, unsubscribe: bool = False) -> dict[str, Any]:
        n = self.rng.choice([1, 1, 2, 3, 5, 100])
        browsers = [self.browser_id(tenant) for _ in range(n)]
        if n == 100:
            browsers = [f"{b}-{i}" for i, b in enumerate(browsers)]
        msg: dict[str, Any] = {
            "action": "unsubscribe" if unsubscribe else "subscribe",
            "browsers": browsers,
        }
        if self.rng.random() < 0.5:
            msg["id"] = f"sub{self.marker(tenant)}"
        return msg

    def simple(self, tenant: int, action: str, last_dseq: int) -> dict[str, Any]:
        if action == "ack":
            seq = self.rng.choice([last_dseq, last_dseq, max(0, last_dseq - 1), last_dseq + 5, 0])
            return {"action": "ack", "seq": seq}
        msg: dict[str, Any] = {"action": action}
        if self.rng.random() < 0.7:
            msg["id"] = f"{action}{self.marker(tenant)}"
        return msg

    # -- mutations ---------------------------------------------------------------------

    def mutate(self, msg: dict[str, Any], tenant: int) -> Any:
        """One or more of: wrong type, missing or extra field, odd value, odd action."""
        out: Any = dict(msg)
        for _ in range(self.rng.choice([1, 1, 1, 2, 3])):
            if not isinstance(out, dict):
                break
            keys = [k for k in out if k != "action"]
            r = self.rng.random()
            if r < 0.25 and keys:
                out[self.rng.choice(keys)] = self.any_of_type(tenant)
            elif r < 0.4 and keys:
                del out[self.rng.choice(keys)]
            elif r < 0.5:
                out[self.rng.choice(["extra", "Action", "__proto__", "id", "dseq", ""])] = (
                    self.any_of_type(tenant)
                )
            elif r < 0.65 and keys:
                out[self.rng.choice(keys)] = self.number()
            elif r < 0.8 and keys:
                out[self.rng.choice(keys)] = self.text(tenant)
            elif r < 0.88:
                out["action"] = self.rng.choice(
                    [
                        "SNAPSHOT", "snapshot ", "result", "command", "pong", "error",
                        "subscribed", "browsers", "presence", "", None, 1, ["ping"],
                        "toString", "constructor", "\ud800",
                    ]
                )  # fmt: skip
            elif r < 0.94:
                out = self.rng.choice([[out], "x", 1, None, [], [1, 2]])
            else:
                out["id"] = self.rng.choice(["", "x" * 129, "x" * 128, "\ud800", 5, None])
        return out

    def deep(self, tenant: int) -> str:
        """A message with ``args``/``value``/``data`` nested ``n`` levels deep."""
        n = self.rng.choice([64, 500, 900, 940, 990, 1000, 2000, 20_000])
        inner = ("[" * n + "]" * n) if self.rng.random() < 0.5 else ('{"a":' * n + "1" + "}" * n)
        holder = self.rng.choice(["command", "result", "snapshot"])
        m = self.marker(tenant)
        if holder == "command":
            target = self.rng.choice(self.browsers[self.tenants[tenant]])
            return f'{{"action":"command","id":"deep{m}","target":"{target}","name":"x","args":{{"v":{inner}}}}}'
        if holder == "result":
            return f'{{"action":"result","id":"deep{m}","ok":true,"value":{inner}}}'
        return f'{{"action":"snapshot","sid":"deep{m}","seq":1,"data":"x","extra":{inner}}}'

    # -- raw and binary -----------------------------------------------------------------

    def raw(self, tenant: int, role: str) -> str:
        m = self.marker(tenant)
        if role == "consumer":
            return self.rng.choice(
                [
                    "click", f"name{m}", "  ", "", " x ", "x" * 64, "x" * 65, "\ufffe", "\uffff",
                    f"click{m}\uffff", "\u2028", "[1,2]", "42", "null", "\"str\"", "]", " \t{",
                    "é" * 64, "\x00", "NaN",
                ]
            )  # fmt: skip
        size = self.rng.choice([10, 1000, 30_000, 60_000, 120_000, 127 * 1024 - 50, 130_000])
        fill = self.rng.choice(["x", "<p>", '"', "\\", "\x01", "é", "\uffff", "日"])
        body = f"<html>{m}" + fill * (size // max(1, len(fill.encode())))
        return body[: max(1, size)]

    def binary(self, tenant: int, role: str, valid: dict[str, Any]) -> str:
        r = self.rng.random()
        if r < 0.3:
            data = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 200)))
        elif r < 0.5:
            data = dumps(valid).encode() + b"\xff"
        elif r < 0.65:
            data = b'{"action":"ping","id":"\xc3\x28"}'
        elif r < 0.75:
            data = b"\xed\xa0\x80"  # a UTF-8-encoded surrogate (CESU), invalid UTF-8
        elif r < 0.85:
            data = dumps(valid).encode()
        else:
            data = f"<html>{self.marker(tenant)}".encode() + b"\x80\x81"
        return base64.b64encode(data).decode()

    # -- sequences -----------------------------------------------------------------------

    def snapshot_parts(self, tenant: int, client: str) -> list[dict[str, Any]]:
        """A multi-part gzip snapshot: faithful, or broken in one of many ways."""
        self._sid += 1
        size = self.rng.randrange(100, 20_000)
        html = f"<html>{self.marker(tenant)}" + "".join(self.rng.choices(_ALPHABET, k=size))
        b64 = base64.b64encode(gzip.compress(html.encode("utf-8"))).decode()
        k = self.rng.randrange(2, 6)
        step = max(1, len(b64) // k + 1)
        slices = [b64[i : i + step] for i in range(0, len(b64), step)] or [b64]
        parts = len(slices)
        sid = f"mp{self._sid}{self.marker(tenant)}"
        seq = self.next_seq(client)
        msgs = [
            {"action": "snapshot", "sid": sid, "seq": seq, "data": s, "enc": "gzip",
             "part": i, "parts": parts}
            for i, s in enumerate(slices)
        ]  # fmt: skip
        r = self.rng.random()
        if r < 0.15:
            msgs[0]["data"] = "!!!not base64!!!"
        elif r < 0.3:
            msgs[-1]["parts"] = parts + self.rng.choice([1, 5, 9000])
        elif r < 0.4:
            msgs.pop(self.rng.randrange(len(msgs)))
        elif r < 0.5:
            msgs.append(dict(msgs[0]))
        elif r < 0.6:
            msgs[-1]["data"] = base64.b64encode(b"\x1f\x8b\x08garbage").decode()
        elif r < 0.7:
            msgs[-1]["seq"] = self.rng.choice([0, seq + 1, 10**39])
        self.rng.shuffle(msgs) if self.rng.random() < 0.3 else None
        return msgs

    def result_parts(self, tenant: int, command_id: str) -> list[dict[str, Any]]:
        """A multi-part result: the JSON text of a value cut in slices; maybe inconsistent."""
        text = json.dumps({"png": "A" * self.rng.randrange(10, 3000), "m": self.marker(tenant)})
        k = self.rng.randrange(2, 5)
        step = len(text) // k + 1
        slices = [text[i : i + step] for i in range(0, len(text), step)]
        parts = len(slices)
        msgs = [
            {
                "action": "result",
                "id": command_id,
                "ok": True,
                "value": s,
                "part": i,
                "parts": parts,
            }
            for i, s in enumerate(slices)
        ]
        r = self.rng.random()
        if r < 0.2:
            msgs[-1]["parts"] = self.rng.choice([parts + 1, parts + 50, 2])
        elif r < 0.3:
            msgs[1]["parts"] = 10_000
            msgs[1]["part"] = 9_999
        elif r < 0.4:
            msgs.pop()  # never finished
        elif r < 0.5:
            msgs.append(dict(msgs[0]))
        elif r < 0.6:
            msgs[-1]["ok"] = False
        if self.rng.random() < 0.3:
            self.rng.shuffle(msgs)
        return msgs


@dataclass
class TokenCase:
    """A token to present at ``$connect``; ``may_pass``: accepting it is no defect."""

    token: str
    may_pass: bool
    why: str
    claims: dict[str, Any] = field(default_factory=dict)


def bad_tokens(rng: Random, key: str, tenant: str, role: str, client: str) -> TokenCase:
    """A token the authorizer must refuse (a Deny policy: HTTP 403), never crash on."""
    now = int(time.time())
    base = {"tenant": tenant, "role": role, "client_id": client, "aud": "tabrelay"}

    def payload(**over: Any) -> str:
        claims = {**base, "exp": now + 3600, **over}
        return dumps({k: v for k, v in claims.items() if v is not _DROP})

    cases = [
        ("trailing newline in tenant", payload(tenant=tenant + "\n")),
        ("trailing newline in client_id", payload(client_id=client + "\n")),
        ("exp NaN", payload(exp=Raw("NaN"))),
        ("exp Infinity", payload(exp=Raw("Infinity"))),
        ("exp 1e400", payload(exp=Raw("1e400"))),
        ("exp 39 digits", payload(exp=Raw("9" * 39))),
        ("exp 400 digits", payload(exp=Raw("9" * 400))),
        ("exp string", payload(exp=str(now + 3600))),
        ("exp true", payload(exp=True)),
        ("expired", payload(exp=now - 10)),
        ("no tenant", payload(tenant=_DROP)),
        ("role admin", payload(role="admin")),
        ("tenant with #", payload(tenant=tenant + "#x")),
        ("client 129 chars", payload(client_id="c" * 129)),
        ("tenant empty", payload(tenant="")),
        ("tenant lone surrogate", payload(tenant="\ud800")),
        ("aud missing", payload(aud=_DROP)),
        ("payload not an object", "[1,2]"),
        ("payload not JSON", "{"),
    ]
    why, text = rng.choice(cases)
    r = rng.random()
    if r < 0.8:
        tok = token(key, text)
    elif r < 0.9:
        tok = token("wrong-key", payload())
        why = "wrong key"
    else:
        tok = token(key, payload(), header='{"alg":"none","typ":"JWT"}')
        why = "alg none"
    # A far but finite integer expiry is a valid (if odd) token: either answer is
    # right, as long as it is an answer and not a crash.
    return TokenCase(tok, why.startswith("exp ") and "digits" in why, why)


_DROP: Any = object()
