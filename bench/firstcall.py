"""A handler's cold start up to the end of its first invocation, in a fresh interpreter.

``python -m bench.firstcall MODULE EVENT_JSON``: the clock starts before the
handler's import and stops after its first invocation; the time spent inside
AWS calls (botocore's ``Endpoint.make_request``: signing, the HTTP round trip
to a local moto server, parsing) is measured apart and left out, so what
remains is the import plus everything the first invocation builds (clients,
adapters, the idempotency layer, the secrets provider) and its own work.
Prints one JSON line: ``import_s``, ``invoke_s``, ``aws_s``.

Nothing is imported before the clock starts but the standard library.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
import uuid
from typing import Any

__all__ = ["main"]


class _Context:
    function_name = "tabrelay-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:tabrelay-bench"
    log_group_name = "/aws/lambda/tabrelay-bench"
    log_stream_name = "bench"

    def __init__(self) -> None:
        self.aws_request_id = uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def main(argv: list[str]) -> int:
    module_name, event_json = argv
    event: dict[str, Any] = json.loads(event_json)
    started = time.perf_counter()
    module = importlib.import_module(module_name)
    imported = time.perf_counter()

    # Outside the clock: time every AWS call, to leave it out.
    import botocore.endpoint

    spent = [0.0]
    make_request = botocore.endpoint.Endpoint.make_request

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        begin = time.perf_counter()
        try:
            return make_request(self, *args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - begin

    botocore.endpoint.Endpoint.make_request = timed  # type: ignore[method-assign]
    context = _Context()
    invoked = time.perf_counter()
    result = module.handler(event, context)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "invoke_s": done - invoked,
                "aws_s": spent[0],
                "result": result,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
