"""flask-sigobs: a Flask app's signals as correlated JSON logs and OpenTelemetry span events.

The names below are imported lazily, so ``sigobs tail`` starts without importing Flask or
OpenTelemetry.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SigObs", "auth", "ConfigError", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "SigObs":
        from .extension import SigObs

        return SigObs
    if name == "auth":
        return importlib.import_module("flask_sigobs.auth")
    if name == "ConfigError":
        from .config import ConfigError

        return ConfigError
    raise AttributeError(f"module 'flask_sigobs' has no attribute {name!r}")
