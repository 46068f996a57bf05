#!/usr/bin/env python3
"""CDK entry point (``cdk synth``/``cdk deploy``): builds the tabrelay stack, nothing more."""

from __future__ import annotations

from infra.synth import build_app

if __name__ == "__main__":
    app, _stack = build_app()
    app.synth()
