"""The web UI in headless Chromium: ask and see a cited, illustrated answer; index an upload; run no stored script."""

from __future__ import annotations

import pytest

pytest.importorskip("selenium", reason="selenium is not installed: pip install -e '.[test]'")

from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from tests.browser.conftest import console_errors  # noqa: E402
from tests.server.test_ui import HOSTILE_PAGE, HOSTILE_QUESTION  # noqa: E402

QUESTION = "how is coffee roasted"


def test_a_question_typed_into_the_box_gets_a_cited_answer_with_images(browser, site, tmp_path):
    browser.get(site)
    console_errors(browser)  # start from a clean log
    box = browser.find_element(By.NAME, "q")
    box.send_keys(QUESTION)
    box.submit()
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, "article.answer"))
    assert "q=how+is+coffee+roasted" in browser.current_url  # a shareable URL
    cites = browser.find_elements(By.CSS_SELECTOR, "li.sentence a.cite")
    assert cites and all(browser.find_elements(By.CSS_SELECTOR, c.get_attribute("hash")) for c in cites)
    cites[0].click()
    assert browser.current_url.endswith(cites[0].get_attribute("hash"))  # to its source
    images = browser.find_elements(By.CSS_SELECTOR, "li.sentence figure img")
    assert images, "an image beside the sentence it illustrates"
    WebDriverWait(browser, 30).until(lambda d: all(img.get_property("complete") for img in images))
    assert all(img.get_property("naturalWidth") > 0 for img in images)  # really loaded, from /v1/images
    parts = browser.find_element(By.CSS_SELECTOR, "figure details")
    assert not parts.find_element(By.CSS_SELECTOR, "table").is_displayed()
    parts.find_element(By.TAG_NAME, "summary").click()  # the score parts, on demand
    assert parts.find_element(By.CSS_SELECTOR, "table").is_displayed()
    browser.save_screenshot(str(tmp_path / "answer.png"))
    assert (tmp_path / "answer.png").stat().st_size > 10_000
    assert console_errors(browser) == []  # the CSP blocked none of the page's own style or images


def test_an_upload_from_the_index_page_runs_to_succeeded(browser, site, tmp_path):
    saved = tmp_path / "quillon-pottery.html"
    saved.write_text(HOSTILE_PAGE.replace("Zanzibar", "Quillon"), encoding="utf-8")
    browser.get(f"{site}/index")
    (form,) = [f for f in browser.find_elements(By.CSS_SELECTOR, "form.index") if f.get_attribute("enctype") == "multipart/form-data"]
    form.find_element(By.NAME, "files").send_keys(str(saved))
    form.find_element(By.NAME, "topics").send_keys("quillon pottery")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(lambda d: "/jobs/" in d.current_url)
    # The page reloads itself (meta refresh) until the job ends.
    WebDriverWait(browser, 120).until(lambda d: d.find_element(By.CSS_SELECTOR, "h1 .state").text not in ("queued", "running"))
    assert browser.find_element(By.CSS_SELECTOR, "h1 .state").text == "succeeded"
    assert "1 added" in browser.find_element(By.CSS_SELECTOR, "table.outcome").text
    job_id = browser.current_url.rsplit("/", 1)[-1]
    browser.get(f"{site}/index")
    assert job_id in [a.text for a in browser.find_elements(By.CSS_SELECTOR, "table.jobs a")]


def test_a_stored_page_with_script_payloads_runs_no_script(browser, site):
    browser.get(f"{site}/?q={HOSTILE_QUESTION.replace(' ', '+')}")
    console_errors(browser)
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "<img src=x onerror=alert(1)>" in text  # shown, as text
    assert "javascript:alert(1)" in text and not browser.find_elements(By.CSS_SELECTOR, 'a[href^="javascript"]')
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018 - raises when no script opened one
    errors = console_errors(browser)
    assert not [e for e in errors if "script" in e["message"].lower() or "alert" in e["message"]], errors
    assert errors == []  # no blocked inline script, no request for the payload's "x"
