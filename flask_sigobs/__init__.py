"""flask-sigobs: a Flask app's signals as correlated JSON logs and OpenTelemetry span events."""

from . import auth
from .config import ConfigError
from .extension import SigObs

__all__ = ["SigObs", "auth", "ConfigError", "__version__"]
__version__ = "0.1.0"
