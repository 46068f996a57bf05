"""The moto world the real handlers run in outside AWS, shared by the tests, the
benchmark and the fuzzer (none of which it imports).

* :mod:`simulation.environment`: the Lambda environment and the names behind it;
  nothing changes the process at import, callers apply it explicitly;
* :mod:`simulation.resources`: the table, queues and secret the stack makes, in moto;
* :mod:`simulation.events`: API Gateway- and SQS-shaped events, the Lambda context;
* :mod:`simulation.fakes`: what moto lacks: ``@connections`` and SQS delays on a
  virtual clock;
* :mod:`simulation.harness`: the handlers wired to moto clients, driven event by event.

It imports no handler module at import either (Powertools reads the environment
when a handler module creates its logger and metrics), and never the emulator.
"""
