"""Exceptions of the tabrelay client.

Every exception the client raises on purpose is a :class:`TabRelayError` whose
``code`` is a stable string: the gateway's error codes of wire protocol v1
(``busy``, ``target_offline``, ``timeout``, ...) plus a few that only the
client produces (``closed``, ``queue_full``, ``connect_failed``,
``command_failed``). Scripts may rely on ``code``; messages are for people.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "BadRequestError",
    "BusyError",
    "CommandFailedError",
    "CommandTimeoutError",
    "ConflictError",
    "ConnectError",
    "ConnectionClosedError",
    "ForbiddenError",
    "InternalError",
    "MalformedDeliveryError",
    "MalformedResultError",
    "QueueFullError",
    "RateLimitedError",
    "TabRelayError",
    "TargetOfflineError",
    "TooLargeError",
    "UnknownActionError",
    "error_for_code",
]


class TabRelayError(Exception):
    """Base of every client error: ``code`` is stable, ``message`` is for people.

    ``id`` is the command or request id the error refers to, when there is one.
    """

    code: str = "internal"

    def __init__(self, message: str, *, code: str | None = None, id: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.id = id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class AuthError(TabRelayError):
    """The gateway refused the handshake (HTTP 401/403): the token is invalid,
    expired or not allowed. Never retried; ``status`` is the HTTP status."""

    code = "unauthorized"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConnectError(TabRelayError):
    """The first connection could not be opened (refused, DNS, timeout, non-401/403 status)."""

    code = "connect_failed"


class ConnectionClosedError(TabRelayError):
    """The relay is closed (by :meth:`Relay.close` or after a fatal error)."""

    code = "closed"


class MalformedDeliveryError(TabRelayError):
    """The gateway delivered something this client cannot use (a hostile or broken peer).

    Raised from the one call the delivery answers (a ``list`` or ``subscribe``
    reply, say); the relay itself goes on.
    """

    code = "malformed"


class MalformedResultError(MalformedDeliveryError):
    """A command's result could not be used: parts that disagree or are out of range,
    a value that is not JSON, or more bytes than ``max_result_bytes``.

    Raised from that command's :meth:`Relay.command`; other commands and
    snapshots are unaffected. ``source`` is the browser, when known.
    """

    def __init__(self, message: str, *, id: str | None = None, source: str | None = None) -> None:
        super().__init__(message, id=id)
        self.source = source


class QueueFullError(TabRelayError):
    """A bounded queue with ``overflow="raise"`` was full."""

    code = "queue_full"


class CommandFailedError(TabRelayError):
    """The browser ran the command and answered ``ok: false``.

    ``code`` is the browser's code (``command_failed`` when it gave none) and
    ``source`` the browser's client id.
    """

    code = "command_failed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        id: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message, code=code, id=id)
        self.source = source


class BadRequestError(TabRelayError):
    """The gateway rejected a message as malformed."""

    code = "bad_request"


class UnknownActionError(TabRelayError):
    """The gateway does not know the action that was sent."""

    code = "unknown_action"


class ForbiddenError(TabRelayError):
    """The connection's role or tenant may not do this."""

    code = "forbidden"


class TooLargeError(TabRelayError):
    """A message would exceed a frame or message limit."""

    code = "too_large"


class RateLimitedError(TabRelayError):
    """The connection sent faster than its rate limit."""

    code = "rate_limited"


class TargetOfflineError(TabRelayError):
    """The command's target browser is not connected (or left before answering)."""

    code = "target_offline"


class BusyError(TabRelayError):
    """The target has too much unacknowledged work; the command was not sent."""

    code = "busy"


class CommandTimeoutError(TabRelayError):
    """No result arrived within the command's timeout."""

    code = "timeout"


class ConflictError(TabRelayError):
    """The request conflicts with the gateway's state (e.g. a reused command id)."""

    code = "conflict"


class InternalError(TabRelayError):
    """The gateway failed; the request may be retried."""

    code = "internal"


_BY_CODE: dict[str, type[TabRelayError]] = {
    cls.code: cls
    for cls in (
        AuthError,
        BadRequestError,
        UnknownActionError,
        ForbiddenError,
        TooLargeError,
        RateLimitedError,
        TargetOfflineError,
        BusyError,
        CommandTimeoutError,
        ConflictError,
        InternalError,
    )
}


def error_for_code(code: str, message: str, *, id: str | None = None) -> TabRelayError:
    """The typed exception for a gateway ``error`` message (unknown codes keep their code)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return TabRelayError(message, code=code, id=id)
    if cls is AuthError:
        return AuthError(message)
    return cls(message, id=id)
