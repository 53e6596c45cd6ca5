"""The Markdown guides in docs/, rendered as pages at /docs/."""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import markdown
from django.conf import settings

DOCS_DIR = Path(settings.BASE_DIR) / "docs"


@dataclass(frozen=True)
class DocPage:
    slug: str
    title: str
    html: str


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


@lru_cache(maxsize=None)
def _render(path: Path, mtime: float) -> DocPage:
    text = path.read_text(encoding="utf-8")
    html = markdown.markdown(text, extensions=["fenced_code", "tables", "toc", "sane_lists"])
    return DocPage(slug=path.stem, title=_title(text, path.stem), html=html)


def doc_pages() -> list[DocPage]:
    """Every guide, in file-name order (files are numbered to set the reading order)."""
    return [_render(p, p.stat().st_mtime) for p in sorted(DOCS_DIR.glob("*.md"))]


def doc_page(slug: str) -> DocPage | None:
    path = DOCS_DIR / f"{slug}.md"
    if "/" in slug or not path.is_file():
        return None
    return _render(path, path.stat().st_mtime)
