# Sourced by the other scripts: a virtualenv in .venv with the project and its test tools.
# .venv is the newest set with every extra (the whole suite runs there); the `test` extra itself
# does not pull [otel] or [grpc], so the matrix (noxfile.py) can prove the base install without them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=".venv/.sigobs-installed"
# Set-up output goes to standard error: standard output is the demo's JSON lines.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  {
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[test,apps,otel,grpc]"
    .venv/bin/python -m pip check
  } >&2
  touch "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export SIGOBS_CACHE="${SIGOBS_CACHE:-$HOME/.cache/flask-sigobs}"
