"""The console's approval and pause levers in a real browser (Debian's chromium through Selenium), on a
store whose gate winner waits as ``pending``: the pages show it without console errors, a person who logs
in approves it (it becomes champion, as the Python API then reads it), pauses and resumes the factory.
Screenshots go to the same temporary folder as test_browser's."""

from __future__ import annotations

from pathlib import Path

import pytest

from darkfab.registry import Registry
from darkfab.store import Store

from .conftest import GATED_NAME as NAME
from .conftest import TOKEN, GatedSite

# importing test_browser skips this module where chromium or Selenium is missing
from .test_browser import browser, errors_in_console, shots, visit  # noqa: F401  (module fixtures, reused)
from .test_levers_http import _state

pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


def test_pages_show_the_pending_version_without_console_errors(
    browser: WebDriver,  # noqa: F811
    gated: GatedSite,
    shots: Path,  # noqa: F811
) -> None:
    browser.delete_all_cookies()
    visit(browser, gated.url + "/", shots, "levers-factories-pending")
    assert "waits for a person's approval" in browser.find_element(By.ID, f"pending-{NAME}").text
    visit(browser, gated.url + f"/factories/{NAME}/versions/1", shots, "levers-version-pending")
    assert browser.find_element(By.ID, "pending-here")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.lever")  # reading needs no login; acting does


def _log_in(driver: WebDriver, site: GatedSite) -> None:
    driver.delete_all_cookies()
    driver.get(f"{site.url}/login")
    driver.find_element(By.NAME, "person").send_keys("ada")
    driver.find_element(By.NAME, "token").send_keys(TOKEN)
    driver.find_element(By.ID, "login-submit").click()
    WebDriverWait(driver, 30).until(ec.presence_of_element_located((By.ID, f"pause-{NAME}")))


def test_approving_in_the_browser_makes_the_pending_version_champion(
    browser: WebDriver,  # noqa: F811
    gated: GatedSite,
    shots: Path,  # noqa: F811
) -> None:
    _log_in(browser, gated)
    browser.get(f"{gated.url}/factories/{NAME}/versions/1")
    form = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "approve-1")))
    browser.save_screenshot(str(shots / "levers-version-approve-form.png"))
    form.find_element(By.NAME, "reason").send_keys("sealed-test interval is tight")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(ec.invisibility_of_element_located((By.ID, "pending-here")))
    browser.save_screenshot(str(shots / "levers-version-approved.png"))
    assert errors_in_console(browser) == []
    with Store(gated.store_url) as st:
        assert Registry(st).aliases(NAME) == {"champion": 1}
        (event,) = st.list_events(kinds=("promotion_approved",))
    assert event.data["person"] == "ada" and event.data["reason"] == "sealed-test interval is tight"


def test_pausing_and_resuming_in_the_browser(
    browser: WebDriver,  # noqa: F811
    gated: GatedSite,
    shots: Path,  # noqa: F811
) -> None:
    _log_in(browser, gated)
    form = browser.find_element(By.ID, f"pause-{NAME}")
    form.find_element(By.NAME, "reason").send_keys("the feed is being repaired")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    shown = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, f"paused-{NAME}")))
    assert "ada" in shown.text and "the feed is being repaired" in shown.text
    browser.save_screenshot(str(shots / "levers-factories-paused.png"))
    assert _state(gated)[1] is True
    form = browser.find_element(By.ID, f"resume-{NAME}")
    form.find_element(By.NAME, "reason").send_keys("repaired")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, f"pause-{NAME}")))
    assert not browser.find_elements(By.ID, f"paused-{NAME}")
    assert _state(gated)[1] is False
    with Store(gated.store_url) as st:
        kinds = [(e.kind, e.data["person"]) for e in st.list_events(kinds=("factory_paused", "factory_resumed"))]
    assert kinds == [("factory_paused", "ada"), ("factory_resumed", "ada")]
    assert errors_in_console(browser) == []
