"""The README's rendered blocks: the text between ``<!-- stmltm:begin NAME -->`` and ``<!-- stmltm:end NAME -->``
is the template ``NAME`` of ``tools/readme_blocks.md`` (one per ``<!-- stmltm:template NAME -->`` heading) rendered
from the data by :mod:`tools.prose`. ``make readme`` (``python -m tools.notebooks --readme``) rewrites them;
``tests/test_prose.py`` fails when the README differs from the rendering."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tools.prose import ROOT, TemplateError, namespace, render

README = ROOT / "README.md"
README_TEMPLATES = Path(__file__).resolve().parent / "readme_blocks.md"

BLOCK = re.compile(r"(<!-- stmltm:begin (?P<name>[\w-]+) -->\n)(?P<body>.*?)(\n<!-- stmltm:end (?P=name) -->)", re.S)
TEMPLATE_HEAD = re.compile(r"^<!-- stmltm:template (?P<name>[\w-]+) -->\n", re.M)


def readme_templates(path: Path | None = None) -> dict[str, str]:
    """``readme_blocks.md``: one template per ``<!-- stmltm:template NAME -->`` heading (up to the next one)."""
    text = (path or README_TEMPLATES).read_text()
    heads = list(TEMPLATE_HEAD.finditer(text))
    return {h["name"]: text[h.end(): nxt.start() if nxt else len(text)].strip("\n")
            for h, nxt in zip(heads, [*heads[1:], None])}


def readme_blocks(text: str) -> dict[str, str]:
    """The current content of each marked block of a README text."""
    return {m["name"]: m["body"] for m in BLOCK.finditer(text)}


def render_readme(text: str, ns: Mapping[str, Any] | None = None, templates: Mapping[str, str] | None = None
                  ) -> str:
    """``text`` with every marked block replaced by its rendered template. A block without a template, or a
    template without a block, is a :class:`TemplateError`."""
    templates = readme_templates() if templates is None else templates
    names = list(readme_blocks(text))
    if sorted(names) != sorted(templates):
        raise TemplateError(f"README blocks {sorted(names)} and templates {sorted(templates)} differ")
    ns = namespace() if ns is None else ns
    return BLOCK.sub(lambda m: m.group(1) + render(templates[m["name"]], ns) + m.group(4), text)


def update_readme(path: Path | None = None) -> bool:
    """Re-render the README's marked blocks in place; True when the file changed."""
    p = path or README
    old = p.read_text()
    new = render_readme(old)
    if new != old:
        p.write_text(new)
    return new != old
