"""The documentation site builds in strict mode: every warning (a broken link between pages, a
link to a heading that is not there, a nav entry without its page, a docstring mkdocstrings
cannot read) fails the build, and so this test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _build(tmp_path: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # the theme's banner about its future, not about these pages
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # the site is built once, in .venv's whole suite: its tools are no part of the
# supported ranges, and the oldest row's resolution of them (mkdocstrings, pymdown-extensions) differs
def test_the_site_builds_in_strict_mode(tmp_path):
    built = _build(tmp_path, ROOT / "mkdocs.yml")
    assert built.returncode == 0, f"mkdocs build --strict failed (install with pip install -e \".[docs]\"):\n{built.stderr}"
    site = tmp_path / "site"
    for page in ("index.html", "getting-started/index.html", "configuration/index.html", "events/index.html",
                 "api/index.html", "changelog/index.html", "speed/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api/index.html").read_text(encoding="utf-8")
    for name in ("SigObs", "init_app", "observe", "login_failed", "ConfigError", "captured_events", "assert_emitted"):
        assert name in api, f"{name} is missing from the API reference"
    assert ":class:`" not in api and ":mod:`" not in api and "written::" not in api, \
        "reST left in the API reference (scripts/griffe_rst.py rewrites it)"


@pytest.mark.slow  # the site is built once, in .venv's whole suite: its tools are no part of the
# supported ranges, and the oldest row's resolution of them (mkdocstrings, pymdown-extensions) differs
def test_a_broken_link_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the other page](nowhere.md) and [a heading](#nothing).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text((ROOT / "mkdocs.yml").read_text(encoding="utf-8")
                      .replace("docs_dir: docs", f"docs_dir: {docs}")
                      .replace("  - scripts/mkdocs_hooks.py", f"  - {ROOT / 'scripts/mkdocs_hooks.py'}")
                      .split("\nnav:")[0] + "\nnav:\n  - Home: index.md\n")
    built = _build(tmp_path, config)
    assert built.returncode != 0
    assert "nowhere.md" in built.stderr and "#nothing" in built.stderr


def test_the_front_page_and_contributing_link_only_to_what_exists():
    """README.md and CONTRIBUTING.md are read on GitHub, outside the site: their relative links
    are checked here, as strict mode checks the pages'."""
    import re

    for name in ("README.md", "CONTRIBUTING.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        text = re.sub(r"```.*?```", "", text, flags=re.S)  # code, not links
        text = re.sub(r"`[^`]*`", "", text)
        links = re.findall(r"\]\(([^)\s]+)\)", text)
        assert links, name
        for link in links:
            if re.match(r"[a-z]+://", link):
                continue
            target = link.split("#", 1)[0]
            assert (ROOT / target).exists(), f"{name} links to {link}, which does not exist"


def test_the_front_page_stays_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move what is not the front page into docs/"
