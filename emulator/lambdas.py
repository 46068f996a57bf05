"""Run Lambda handlers in-process, as the Lambda runtime would.

Each function's module is imported once, with that function's environment
applied (handlers read their settings at import), as a private copy: two
functions naming the same module with different environments get two
modules. Invocations run in worker threads, bounded per function by its
concurrency, so the asyncio loop of the gateway never blocks on handler code.
Events and results pass through JSON, as they do between AWS services, so a
handler that returns something AWS could not serialize fails here too.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "FunctionError",
    "FunctionTimeoutError",
    "LambdaContext",
    "LocalFunction",
    "apply_environment",
]

log = logging.getLogger("emulator.lambda")

_import_lock = threading.Lock()


class _LoggedErrors(logging.Handler):
    """Collects, per invocation thread, the errors a handler logs about SQS messages.

    A log record at WARNING or above with a ``message_id`` attribute (as
    ``logger.exception(..., extra={"message_id": ...})`` makes) is what
    CloudWatch would hold for that message; the pollers keep the last one per
    message so ``make dlq`` can show it. Nothing is printed from here.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.local = threading.local()

    def addFilter(self, filter: Any) -> None:
        # Powertools filters its records out of the root logger's handlers (so
        # that they are not printed twice); this handler prints nothing.
        return

    def emit(self, record: logging.LogRecord) -> None:
        sink: dict[str, str] | None = getattr(self.local, "sink", None)
        message_id = getattr(record, "message_id", None)
        if sink is None or not isinstance(message_id, str):
            return
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            sink[message_id] = f"{type(exc).__name__}: {exc} ({record.getMessage()})"
        else:
            sink[message_id] = record.getMessage()


_logged_errors = _LoggedErrors()
logging.getLogger().addHandler(_logged_errors)


class FunctionError(RuntimeError):
    """The handler raised (``error_type`` is the exception's class name)."""

    def __init__(self, function_name: str, error_type: str, message: str) -> None:
        super().__init__(f"{function_name}: {error_type}: {message}")
        self.function_name = function_name
        self.error_type = error_type
        self.error_message = message
        #: Errors the handler logged about SQS messages before failing, by message id.
        self.logged: dict[str, str] = {}


class FunctionTimeoutError(FunctionError):
    """The invocation ran past the function's timeout."""


@dataclass
class LambdaContext:
    """The parts of the Lambda context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    aws_request_id: str
    deadline_ms: int
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    tenant_id: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.deadline_ms - int(time.time() * 1000))


class apply_environment:
    """Apply ``env`` to ``os.environ`` for the duration of a ``with`` block."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for key, value in self._env.items():
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value

    def __exit__(self, *exc: object) -> None:
        for key, old in self._saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _load_private(module_name: str, code_root: Path, env: Mapping[str, str]) -> ModuleType:
    """Import ``module_name`` from ``code_root`` with ``env`` applied, as a fresh copy."""
    with _import_lock:
        root = str(code_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        importlib.invalidate_caches()
        with apply_environment(env):
            spec = importlib.util.find_spec(module_name)
            if spec is None or spec.loader is None:
                raise ModuleNotFoundError(f"no module named {module_name!r} under {root}")
            module = importlib.util.module_from_spec(spec)
            previous = sys.modules.get(module_name)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                if previous is None:
                    sys.modules.pop(module_name, None)
                else:
                    sys.modules[module_name] = previous
                raise
            # Give the name back: the copy belongs to one function, and a test
            # importing the module later must get its own, not this one.
            if previous is None:
                sys.modules.pop(module_name, None)
            else:
                sys.modules[module_name] = previous
        return module


@dataclass
class LocalFunction:
    """One Lambda function: its handler, environment and concurrency.

    ``concurrency`` bounds simultaneous invocations; callers beyond it wait
    for a slot (Lambda would throttle; see docs/local.md).
    """

    name: str
    arn: str
    handler_path: str
    environment: Mapping[str, str]
    code_root: Path
    executor: ThreadPoolExecutor
    memory_mb: int = 128
    timeout_s: float = 3.0
    concurrency: int = 10
    _handler: Callable[[Any, Any], Any] | None = field(default=None, init=False)
    _load_error: BaseException | None = field(default=None, init=False)
    _semaphore: asyncio.Semaphore | None = field(default=None, init=False)
    invocations: int = field(default=0, init=False)
    errors: int = field(default=0, init=False)

    def load(self) -> None:
        """Import the handler (the cold start). Errors are kept and re-raised per invocation."""
        module_name, _, attr = self.handler_path.rpartition(".")
        try:
            module = _load_private(module_name, self.code_root, self.environment)
            handler = getattr(module, attr)
            if not callable(handler):
                raise TypeError(f"{self.handler_path} is not callable")
            self._handler = handler
        except BaseException as exc:
            self._load_error = exc
            log.error("cannot import %s for %s: %s", self.handler_path, self.name, exc)

    @property
    def load_error(self) -> BaseException | None:
        return self._load_error

    def _run(self, payload: str, request_id: str) -> tuple[str, dict[str, str]]:
        logged: dict[str, str] = {}
        _logged_errors.local.sink = logged
        try:
            return self._run_handler(payload, request_id), logged
        except FunctionError as exc:
            exc.logged = logged
            raise
        finally:
            _logged_errors.local.sink = None

    def _run_handler(self, payload: str, request_id: str) -> str:
        if self._handler is None:
            err = self._load_error or RuntimeError("handler not loaded")
            raise FunctionError(self.name, "Runtime.ImportModuleError", str(err))
        context = LambdaContext(
            function_name=self.name,
            memory_limit_in_mb=self.memory_mb,
            invoked_function_arn=self.arn,
            aws_request_id=request_id,
            deadline_ms=int((time.time() + self.timeout_s) * 1000),
            log_group_name=f"/aws/lambda/{self.name}",
            log_stream_name=f"local/{request_id}",
        )
        try:
            result = self._handler(json.loads(payload), context)
        except Exception as exc:
            log.warning(
                "%s raised %s: %s\n%s",
                self.name,
                type(exc).__name__,
                exc,
                "".join(traceback.format_exception(exc)[-6:]),
            )
            raise FunctionError(self.name, type(exc).__name__, str(exc)) from exc
        try:
            return json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise FunctionError(self.name, "Runtime.MarshalError", str(exc)) from exc

    async def invoke(self, event: Mapping[str, Any]) -> Any:
        """Run the handler on ``event``; its JSON result, or :class:`FunctionError`."""
        result, _logged = await self.invoke_logged(event)
        return result

    async def invoke_logged(self, event: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        """:meth:`invoke`, plus the errors the handler logged per SQS message id."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(max(1, self.concurrency))
        payload = json.dumps(event)
        request_id = str(uuid.uuid4())
        loop = asyncio.get_running_loop()
        await self._semaphore.acquire()
        self.invocations += 1
        future = loop.run_in_executor(self.executor, self._run, payload, request_id)
        # The slot is freed when the thread ends, not at the timeout: a thread
        # cannot be killed, and the bound must hold for real work in flight.
        future.add_done_callback(lambda _f: self._semaphore.release() if self._semaphore else None)
        try:
            result, logged = await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            self.errors += 1
            raise FunctionTimeoutError(
                self.name, "Sandbox.Timedout", f"timed out after {self.timeout_s:g} s"
            ) from None
        except FunctionError:
            self.errors += 1
            raise
        return json.loads(result), logged
