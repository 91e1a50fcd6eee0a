"""Imported by Python at start-up in every process ``sigobs run`` starts (see ``flask_sigobs.bootstrap``)."""

try:
    from flask_sigobs.bootstrap import initialize
except Exception as exc:  # flask-sigobs not importable from this interpreter: run the command anyway
    import sys

    print(f"flask-sigobs (sigobs run): not attached: {type(exc).__name__}: {exc}", file=sys.stderr)
else:
    initialize()
