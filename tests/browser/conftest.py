"""Headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, against a real server.

Selenium is given the driver's path, so Selenium Manager never looks for one on the network.
Without the packages the tests skip with the line that installs them.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from engine.kb import KnowledgeBase
from engine.server.app import create_app
from engine.server.security import Access
from tests.conftest import make_config
from tests.server.conftest import TOPICS, ServerThread

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"
DESKTOP = (1280, 1000)


def chrome(window: tuple[int, int] = DESKTOP):  # noqa: ANN201 - selenium.webdriver.Chrome
    """A headless Chromium that keeps the page's console log (read with ``driver.get_log("browser")``)."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"headless Chromium is not installed ({', '.join(missing)} missing): {INSTALL}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={window[0]},{window[1]}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


@pytest.fixture(scope="session")
def browser():
    driver = chrome()
    try:
        yield driver
    finally:
        driver.quit()


@contextmanager
def serve(root: Path, pages: list[Path], topics: list[str], text_encoder, after_index=None) -> Iterator[str]:  # noqa: ANN001
    """Index ``pages`` for ``topics`` into a store under ``root`` (CLIP off: images ranked by their
    text context, as without CLIP weights), then ``after_index(kb)``, and serve it; yields the
    server's URL once it has loaded."""
    config = make_config(root)
    with KnowledgeBase(config, text_encoder=text_encoder) as kb:
        kb.index(topics, pages)
        if after_index is not None:
            after_index(kb)
        with ServerThread(create_app(config, kb, Access(token=None, loopback=True))) as server:
            url = f"http://127.0.0.1:{server.port}"
            deadline = time.monotonic() + 60
            while httpx.get(f"{url}/v1/status").status_code == 503:
                assert time.monotonic() < deadline, "the knowledge base did not load"
                time.sleep(0.05)
            yield url


@pytest.fixture(scope="module")
def site(tmp_path_factory, text_encoder, examples_dir):
    """The example pages and a saved page full of script payloads, served."""
    from tests.server.test_ui import HOSTILE_TOPIC, store_script_url, write_hostile_page

    root = tmp_path_factory.mktemp("browser")
    hostile = write_hostile_page(root / "hostile")
    with serve(root, [examples_dir / "pages", hostile], [*TOPICS, HOSTILE_TOPIC], text_encoder, store_script_url) as url:
        yield url


def console_errors(driver) -> list[dict]:  # noqa: ANN001 - selenium.webdriver.Chrome
    """The console's errors since the last call (a CSP violation or a failed load is one)."""
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]

