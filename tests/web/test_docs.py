"""The guides in docs/ as web pages, and the offline API reference pages (Swagger UI, Redoc)."""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

DOCS = sorted((Path(settings.BASE_DIR) / "docs").glob("*.md"))


def title_of(path: Path) -> str:
    return next(line[2:].strip() for line in path.read_text().splitlines() if line.startswith("# "))


class AssetCollector(HTMLParser):
    """Every URL a page makes the browser fetch: scripts, stylesheets, icons, images, preconnects."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe") and attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def assets(html: str) -> list[str]:
    collector = AssetCollector()
    collector.feed(html)
    return collector.urls


def is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme in ("http", "https") or parts.netloc or url.startswith("//"))


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_there_are_guides_to_render():
    assert [p.name for p in DOCS][:4] == [
        "01-integration-guide.md",
        "02-payment-flow.md",
        "03-simulator.md",
        "04-operations.md",
    ]


def test_index_lists_every_guide_in_file_order(client):
    response = client.get("/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    positions = [html.index(f'href="/docs/{p.stem}/"') for p in DOCS]
    assert positions == sorted(positions)
    for path in DOCS:
        assert title_of(path) in html


def test_root_redirects_to_the_docs(client):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"] == "/docs/"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.stem)
def test_each_guide_renders_with_its_title(client, path):
    response = client.get(f"/docs/{path.stem}/")

    assert response.status_code == 200
    html = response.content.decode()
    title = title_of(path)
    assert f"<title>{title} · Payment Gateway Integration</title>" in html
    assert re.search(rf"<h1[^>]*>{re.escape(title)}</h1>", html)
    assert 'aria-current="page"' in html
    assert "<table>" in html  # Markdown tables are rendered, not left as pipes


def test_payment_flow_renders_its_ascii_state_diagram_and_keeps_the_mermaid_source(client):
    html = client.get("/docs/02-payment-flow/").content.decode()

    assert "| Processing  |" in html
    assert 'class="language-mermaid"' in html
    assert "stateDiagram-v2" in html


def test_links_between_guides_resolve(client):
    for path in DOCS:
        html = client.get(f"/docs/{path.stem}/").content.decode()
        for target in set(re.findall(r'href="(/docs/[^"#]*)', html)):
            assert client.get(target).status_code == 200, f"{path.name} links to {target}"


@pytest.mark.parametrize("slug", ["no-such-guide", "..", "01-integration-guide.md"])
def test_an_unknown_guide_is_404(client, slug):
    assert client.get(f"/docs/{slug}/").status_code == 404


def test_docs_pages_load_nothing_from_other_hosts(client):
    for url in ["/docs/", *[f"/docs/{p.stem}/" for p in DOCS]]:
        html = client.get(url).content.decode()
        external = [u for u in assets(html) if is_external(u)]
        assert external == [], f"{url} loads {external}"


@pytest.mark.parametrize("url", ["/v1/schema/swagger", "/v1/schema/redoc"])
def test_api_reference_pages_use_only_local_assets_that_are_served(client, url):
    response = client.get(url)

    assert response.status_code == 200
    html = response.content.decode()
    urls = assets(html)
    external = [u for u in urls if is_external(u)]
    assert external == [], f"{url} loads {external}"
    local = [u for u in urls if not u.startswith("data:")]
    assert any(u.endswith(".js") for u in local), urls
    for asset in local:
        served = client.get(asset)
        assert served.status_code == 200, f"{asset}: {served.status_code}"
        assert body_of(served), asset


def test_api_reference_pages_point_at_the_local_schema(client):
    swagger = client.get("/v1/schema/swagger").content.decode()
    redoc = client.get("/v1/schema/redoc").content.decode()

    assert '"/v1/schema"' in swagger
    assert '"/v1/schema"' in redoc
    assert client.get("/v1/schema").status_code == 200


def test_redoc_page_forbids_requests_to_other_hosts(client):
    """Redoc's bundle inserts a logo from its vendor's CDN with JavaScript, which no HTML check sees;
    the page's Content-Security-Policy keeps the browser from fetching anything not served by PGI."""
    response = client.get("/v1/schema/redoc")

    policy = response.get("Content-Security-Policy")
    assert policy, "no Content-Security-Policy on the Redoc page"
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";") if d.strip())
    assert directives["default-src"] == "'self'"
    for name in ("img-src", "font-src", "style-src", "script-src", "connect-src", "worker-src"):
        sources = directives.get(name, directives["default-src"]).split()
        assert all(s in ("'self'", "'unsafe-inline'", "data:", "blob:") or s.startswith("'nonce-") for s in sources), (
            name,
            sources,
        )
    assert "'unsafe-inline'" not in directives["script-src"]


def outside_tables(html: str) -> str:
    """The page without its tables, which list settings and their defaults."""
    return re.sub(r"<table>.*?</table>", "", html, flags=re.DOTALL)


def test_a_guide_shows_its_examples_at_the_address_the_reader_used(client, settings):
    settings.PGI_DOCS_BASE_URL = ""
    settings.ALLOWED_HOSTS = ["127.0.0.1"]

    html = client.get("/docs/01-integration-guide/", HTTP_HOST="127.0.0.1:8731").content.decode()

    assert "http://127.0.0.1:8731/v1/payments" in html
    assert "export PGI=http://127.0.0.1:8731/v1" in html
    assert "127.0.0.1:8000" not in outside_tables(html)


def test_a_guide_shows_its_examples_at_the_public_url_when_one_is_set(client, settings):
    settings.PGI_DOCS_BASE_URL = "https://pay.example.test"

    for path in DOCS:
        html = client.get(f"/docs/{path.stem}/").content.decode()
        assert "http://127.0.0.1:8000" not in outside_tables(html), path.name
    simulator = client.get("/docs/03-simulator/").content.decode()
    assert "base_url = &quot;https://pay.example.test/v1&quot;" in simulator


def test_a_guides_settings_tables_keep_their_documented_defaults(client, settings):
    settings.PGI_DOCS_BASE_URL = "https://pay.example.test"

    html = client.get("/docs/04-operations/").content.decode()

    table_of_defaults = next(t for t in re.findall(r"<table>.*?</table>", html, flags=re.DOTALL) if "PGI_PUBLIC_URL" in t)
    assert "<code>http://127.0.0.1:8000</code>" in table_of_defaults
