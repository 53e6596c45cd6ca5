"""The Markdown guides in docs/, rendered as pages at /docs/."""

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import markdown
from django.conf import settings
from django.utils.html import escape

DOCS_DIR = Path(settings.BASE_DIR) / "docs"
# The guides' examples are written for a local `make run` on its default port. A page shows them
# with the base URL of the instance serving it instead; tables keep it, since there it is the
# documented default of a setting, not an example.
EXAMPLE_BASE_URL = "http://127.0.0.1:8000"
_BASE_URL_SLOT = "\ue000pgi-base-url\ue000"  # a private-use character cannot occur in the guides
_TABLES = re.compile(r"(<table>.*?</table>)", re.DOTALL)


@dataclass(frozen=True)
class DocPage:
    slug: str
    title: str
    html_template: str  # the rendered page with a slot wherever the example base URL was

    def html(self, base_url: str) -> str:
        """The page with its examples addressed to `base_url` (scheme://host[:port], no slash)."""
        return self.html_template.replace(_BASE_URL_SLOT, escape(base_url))


def base_url_of(request) -> str:
    """Where readers reach this instance: PGI_PUBLIC_URL when set, else what the request addressed."""
    return (settings.PGI_DOCS_BASE_URL or request.build_absolute_uri("/")).rstrip("/")


def _title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


def _slot_example_urls(html: str) -> str:
    parts = _TABLES.split(html)  # odd indexes are tables
    return "".join(part if i % 2 else part.replace(EXAMPLE_BASE_URL, _BASE_URL_SLOT) for i, part in enumerate(parts))


@lru_cache(maxsize=None)
def _render(path: Path, mtime: float) -> DocPage:
    text = path.read_text(encoding="utf-8")
    html = markdown.markdown(text, extensions=["fenced_code", "tables", "toc", "sane_lists"])
    return DocPage(slug=path.stem, title=_title(text, path.stem), html_template=_slot_example_urls(html))


def doc_pages() -> list[DocPage]:
    """Every guide, in file-name order (files are numbered to set the reading order)."""
    return [_render(p, p.stat().st_mtime) for p in sorted(DOCS_DIR.glob("*.md"))]


def doc_page(slug: str) -> DocPage | None:
    path = DOCS_DIR / f"{slug}.md"
    if "/" in slug or not path.is_file():
        return None
    return _render(path, path.stat().st_mtime)
