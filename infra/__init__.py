"""The tabrelay CDK app: one stack composed of one construct per capability.

This package is CDK only. It names the Lambda handlers by dotted path and never
imports runtime code (``functions``), so the stack can be synthesized without
the Lambda dependencies and the handlers cannot import CDK.
"""

from __future__ import annotations

import os
from pathlib import Path

# The jsii runtime behind aws-cdk-lib starts `node` on first import of aws_cdk. Prefer
# the Node 22 that `make tools` installs under .tools/ over whatever node is on PATH
# (Debian's may be an end-of-life release); an explicit JSII_NODE wins.
_TOOLS_NODE = Path(__file__).resolve().parent.parent / ".tools" / "node_modules" / ".bin" / "node"
if "JSII_NODE" not in os.environ and _TOOLS_NODE.exists():
    os.environ["JSII_NODE"] = str(_TOOLS_NODE)
