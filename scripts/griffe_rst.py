"""A griffe extension for the API reference: the docstrings' bits of reStructuredText as Markdown.

The package's docstrings are written for ``help()`` and for Sphinx readers alike: literal blocks
introduced by ``::`` and roles such as :class:`Source`. mkdocstrings renders Markdown, in which
those show as they are typed; this rewrites them, at build time only, into fenced code and plain
code spans (mkdocs.yml names this file under mkdocstrings' ``extensions``).
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`~?([^`]+)`")


def markdown(text: str) -> str:
    """``text`` with its reST literal blocks fenced and its roles made code spans."""
    text = _ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.rstrip().endswith("::") and index + 1 < len(lines) and not lines[index + 1].strip():
            block_start = index + 2
            end = block_start
            while end < len(lines) and (not lines[end].strip() or lines[end].startswith((" ", "\t"))):
                end += 1
            block = lines[block_start:end]
            while block and not block[-1].strip():
                block.pop()
            if block:
                head = line.rstrip()[:-2].rstrip()
                if head:
                    out.append(head + ":")
                out += ["", "```python", *textwrap.dedent("\n".join(block)).split("\n"), "```", ""]
                index = end
                continue
        out.append(line)
        index += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
