"""The house rules that hold for the whole package (issue 20).

Small modules with one job: a module that passes 700 lines has more than one, and becomes a
package (as ``flask_sigobs/tail/`` and ``flask_sigobs/doctor/`` are), one module per job.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "flask_sigobs"
MOST_LINES = 700


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_passes_700_lines():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, f"no module found under {PACKAGE}"
    offenders = [f"{path.relative_to(PACKAGE.parent)}: {lines} lines"
                 for path in modules if (lines := _lines(path)) > MOST_LINES]
    assert not offenders, (f"modules over {MOST_LINES} lines (make each a package, one module per job, as "
                           f"flask_sigobs/tail/ is): " + "; ".join(offenders))
