"""Make docs/answer-page.png: the answer page over the bundled examples, at a desktop size.

    .venv/bin/python -m tests.browser.screenshot [docs/answer-page.png] [question]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from engine.encoders.text import TextEncoder
from tests.browser.conftest import chrome, serve
from tests.conftest import EXAMPLES

WINDOW = (1280, 900)


def main(target: Path, question: str) -> None:
    topics = [line.strip() for line in (EXAMPLES / "topics.txt").read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as root:
        with serve(Path(root), [EXAMPLES / "pages"], topics, TextEncoder("all-MiniLM-L6-v2")) as url:
            driver = chrome(WINDOW)
            try:
                driver.get(f"{url}/?{urlencode({'q': question})}")
                images = driver.find_elements(By.CSS_SELECTOR, "figure img")
                WebDriverWait(driver, 30).until(lambda d: all(img.get_property("complete") for img in images))
                for details in driver.find_elements(By.CSS_SELECTOR, "figure details")[:1]:
                    details.find_element(By.TAG_NAME, "summary").click()  # show one image's score parts
                # The whole page in one picture: the window grows to the page's height (plus its own frame).
                main = driver.find_element(By.TAG_NAME, "main").rect
                driver.set_window_size(WINDOW[0], int(main["y"] + main["height"]) + 200)
                target.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(target))
            finally:
                driver.quit()
    print(target)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/answer-page.png"), sys.argv[2] if len(sys.argv) > 2 else "how is coffee roasted")
