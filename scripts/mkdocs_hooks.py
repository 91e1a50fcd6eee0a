"""MkDocs hooks for the documentation site (mkdocs.yml names this file).

Pages written on other branches arrive in ``docs/`` on their own schedule. A nav entry for a page
that does not exist fails the strict build, and a page missing from the nav is only a note: so
each page expected here is put in its section when, and only when, it exists, and a page no one
placed goes under "More" rather than nowhere. Once a page is named in mkdocs.yml's nav, this hook
leaves it where it is named.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.sigobs")

#: page -> (section of the nav, its title there)
EXPECTED = {
    "audit.md": ("Command line", "sigobs audit"),
    "compatibility.md": ("Reference", "Compatibility"),
}


def _named(nav: list[Any]) -> set[str]:
    found: set[str] = set()
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            found |= _named(value)
        elif isinstance(value, str):
            found.add(value)
    return found


def _section(nav: list[Any], title: str) -> list[Any]:
    for index, item in enumerate(nav):
        if isinstance(item, dict) and title in item:
            if not isinstance(item[title], list):  # a single page: make it a section holding itself
                item[title] = [{title: item[title]}]
            return item[title]
    nav.append({title: []})
    return nav[-1][title]


def on_config(config: Any) -> Any:
    nav = config["nav"]
    if not nav:
        return config
    docs = Path(config["docs_dir"])
    named = _named(nav)
    for page, (section, title) in EXPECTED.items():
        if page not in named and (docs / page).is_file():
            _section(nav, section).append({title: page})
            named.add(page)
    unplaced = sorted(str(path.relative_to(docs)) for path in docs.rglob("*.md") if
                      str(path.relative_to(docs)) not in named)
    if unplaced:
        log.info("pages not named in mkdocs.yml's nav, put under 'More': %s", ", ".join(unplaced))
        _section(nav, "More").extend(unplaced)
    return config
