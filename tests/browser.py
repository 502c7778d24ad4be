"""Headless Chromium for page tests: Debian's chromium driven by Playwright (no browser download). Tests that need
it skip with the reason where either is missing; `make test` installs both."""

from __future__ import annotations

import shutil
from contextlib import contextmanager

import pytest

ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not path:
        pytest.skip("Chromium is not installed (`bash scripts/install-system.sh --test` installs it)")
    return path


@contextmanager
def page():
    """A fresh page in headless Chromium; collects console errors and every request's URL."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
    exe = chromium_path()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=ARGS)
        try:
            pg = browser.new_page(viewport={"width": 1100, "height": 900})
            pg.console_errors = []
            pg.requests = []
            pg.on("console", lambda m: m.type == "error" and pg.console_errors.append(m.text))
            pg.on("request", lambda r: pg.requests.append(r.url))
            yield pg
        finally:
            browser.close()


# JavaScript run in the page: every <audio> loads its metadata (resolves to the durations), every <img> decodes.
AUDIO_DURATIONS = """() => Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(res => {
    const done = () => res(isFinite(a.duration) ? a.duration : -1);
    if (a.readyState >= 1) return done();
    a.addEventListener('loadedmetadata', done); a.addEventListener('error', () => res(-2));
    a.preload = 'metadata'; a.load(); setTimeout(() => res(-3), 10000);
})))"""
IMAGE_WIDTHS = """() => Promise.all([...document.images].map(i => i.decode().then(() => i.naturalWidth, () => 0)))"""
