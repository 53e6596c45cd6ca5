"""What the browser tests share: Debian's Chromium driven by Playwright (never a browser download),
static files the live server can serve, and the folder their screenshots go to."""

import os

import pytest
from playwright import sync_api

from .browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS


@pytest.fixture
def browser():
    # .ci/run installs Debian's chromium; without it these tests must fail, not pass silently.
    assert os.path.exists(CHROMIUM), f"no Chromium at {CHROMIUM}: apt-get install chromium"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def plain_static(settings):
    """The live server serves static files through Django's finders, which know the source names,
    not the hashed names of the manifest storage that whitenoise serves in production."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def artifacts():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {ARTIFACTS}")
    return ARTIFACTS
