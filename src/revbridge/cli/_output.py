"""What every command prints the same way: JSON (``--json``, ``dlq show``), its timestamps
as the API writes them (``revbridge.core.timestamps``)."""

from __future__ import annotations

import json
import sys
from typing import Any

from revbridge.core.timestamps import json_default


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=json_default) + "\n")
