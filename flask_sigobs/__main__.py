"""``python -m flask_sigobs tail ...``: the ``sigobs`` command without its console script."""

import sys

from flask_sigobs.cli import main

if __name__ == "__main__":
    sys.exit(main())
