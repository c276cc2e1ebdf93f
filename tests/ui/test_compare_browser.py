"""Answering a preference question in a real browser (Debian's chromium through Selenium), on the real
campaign's store: the compare page loads without console errors, a person who logs in picks the better
model with a reason, and the page comes back with their answer counted and the next pair asked.
Screenshots go to the same temporary folder as test_browser's."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkfab.store import Store

from .conftest import TOKEN, ConsoleSite

# importing test_browser skips this module where chromium or Selenium is missing
from .test_browser import browser, errors_in_console, shots, visit  # noqa: F401  (module fixtures, reused)

pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


def test_answering_in_the_browser_records_the_preference_and_asks_the_next_pair(
    browser: WebDriver,  # noqa: F811
    console_site: ConsoleSite,
    shots: Path,  # noqa: F811
) -> None:
    site = console_site
    browser.delete_all_cookies()
    visit(browser, f"{site.url}/", shots, "compare-link-on-factories")
    browser.find_element(By.ID, f"compare-{site.factory}").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "pref-counts")))
    visit(browser, browser.current_url, shots, "compare-logged-out")
    assert not browser.find_elements(By.ID, "answer")
    browser.get(f"{site.url}/login")
    browser.find_element(By.NAME, "person").send_keys("ada")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-submit").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, f"compare-{site.factory}")))
    visit(browser, f"{site.url}/factories/{site.factory}/compare", shots, "compare")
    pair = browser.find_element(By.ID, "pair")
    asked = (pair.get_attribute("data-a"), pair.get_attribute("data-b"))
    before = int(browser.find_element(By.ID, "count-person").text)
    form = browser.find_element(By.ID, "answer")
    form.find_element(By.NAME, "reason").send_keys("A is half the size for the same accuracy")
    form.find_element(By.ID, "answer-a").click()
    WebDriverWait(browser, 30).until(ec.staleness_of(form))  # the answer's page replaced this one
    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: int(d.find_element(By.ID, "count-person").text) == before + 1
    )
    browser.save_screenshot(str(shots / "compare-answered.png"))
    assert errors_in_console(browser) == []
    shown = browser.find_elements(By.ID, "pair")
    assert not shown or (shown[0].get_attribute("data-a"), shown[0].get_attribute("data-b")) != asked
    assert "A is half the size for the same accuracy" in browser.find_element(By.ID, "recent").text
    with Store(site.store_url) as st:
        last = st.list_preferences(st.get_factory(site.factory).id)[-1]
    assert (str(last.trial_a), str(last.trial_b), last.winner) == (*asked, "a")
    assert last.source == "person:ada" and last.rationale == "A is half the size for the same accuracy"
