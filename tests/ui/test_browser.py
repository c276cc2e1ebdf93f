"""The console in a real browser: Debian's chromium, headless, driven by Selenium through chromedriver.

Every page loads with no error in the browser's console, the charts draw their data, hostile text stays
text, and a person who logs in can roll a champion back through the form. Screenshots of each page go to
a temporary folder (printed with -s).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from darkfab.store import Store

from .conftest import TOKEN, ConsoleSite

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    saved = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers online
    try:
        driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    finally:
        if saved is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = saved
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console-screenshots")
    print(f"\nscreenshots of the console: {folder}")
    return folder


def errors_in_console(driver: WebDriver) -> list[str]:
    return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def visit(driver: WebDriver, url: str, shots: Path, name: str) -> None:
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert "Cannot show that" not in driver.page_source, url
    charts = driver.find_elements(By.CSS_SELECTOR, "div.chart")
    for chart in charts:
        WebDriverWait(driver, 30).until(lambda _d, c=chart: c.find_elements(By.CSS_SELECTOR, "svg.main-svg"))
    driver.save_screenshot(str(shots / f"{name}.png"))
    assert errors_in_console(driver) == [], url
    assert driver.execute_script("return window.__pwned === undefined"), f"a hostile script ran on {url}"


def test_every_page_loads_without_console_errors(browser: WebDriver, console_site: ConsoleSite, shots: Path) -> None:
    site = console_site
    pages = {
        "factories": "/",
        "campaign": f"/campaigns/{site.campaign_id}",
        "campaign-sorted": f"/campaigns/{site.campaign_id}?sort=number&order=asc&size=25",
        "trial": "/trials/1",
        "trial-failed": f"/trials/{site.hostile_trial}",
        "trial-code-edit": f"/trials/{site.code_trial}",
        "version": f"/factories/{site.factory}/versions/1",
        "monitor": f"/factories/{site.factory}/monitor",
        "timeline": "/timeline",
        "login": "/login",
    }
    for name, path in pages.items():
        visit(browser, site.url + path, shots, name)
    assert len(list(shots.glob("*.png"))) == len(pages)


def test_the_history_chart_draws_every_scored_trial(browser: WebDriver, console_site: ConsoleSite) -> None:
    browser.get(f"{console_site.url}/campaigns/{console_site.campaign_id}")
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#history svg.main-svg")))
    points = browser.find_elements(By.CSS_SELECTOR, "#history .scatterlayer .trace .points path")
    with Store(console_site.store_url) as st:
        scored = [t for t in st.list_trials(campaign_id=console_site.campaign_id) if t.reward is not None]
    assert scored and len(points) == len(scored)
    assert browser.find_elements(By.CSS_SELECTOR, "#history .scatterlayer .trace .js-line")  # best so far


def test_hostile_error_renders_as_text(browser: WebDriver, console_site: ConsoleSite) -> None:
    browser.get(f"{console_site.url}/trials/{console_site.hostile_trial}")
    shown = browser.find_element(By.ID, "trial-error").text
    assert shown.startswith("ValueError: <script>window.__pwned = 1</script><img src=x")
    assert browser.execute_script("return window.__pwned === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img")


def test_a_visitor_without_the_token_sees_no_lever(browser: WebDriver, console_site: ConsoleSite) -> None:
    browser.delete_all_cookies()
    browser.get(f"{console_site.url}/")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.lever")
    browser.get(f"{console_site.url}/login")
    browser.find_element(By.NAME, "person").send_keys("mallory")
    browser.find_element(By.NAME, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "login-submit").click()
    WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "login-failed")))
    browser.get(f"{console_site.url}/")
    assert not browser.find_elements(By.CSS_SELECTOR, "form.lever")


def test_logging_in_and_rolling_back_in_the_browser(browser: WebDriver, console_site: ConsoleSite, shots: Path) -> None:
    site = console_site
    with Store(site.store_url) as st:
        before = st.aliases(st.get_factory(site.factory).id)["champion"]
    browser.delete_all_cookies()
    browser.get_log("browser")  # drop the earlier tests' refused login
    browser.get(f"{site.url}/login")
    browser.find_element(By.NAME, "person").send_keys("ada")
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-submit").click()
    form = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, f"rollback-{site.factory}")))
    browser.save_screenshot(str(shots / "factories-logged-in.png"))
    target = int(Select(form.find_element(By.NAME, "version")).first_selected_option.get_attribute("value") or 0)
    assert target != before
    form.find_element(By.NAME, "reason").send_keys("the new champion's live accuracy dropped")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 30).until(ec.url_contains(f"/versions/{target}"))
    assert "champion" in browser.find_element(By.TAG_NAME, "main").text
    with Store(site.store_url) as st:
        f = st.get_factory(site.factory)
        assert st.aliases(f.id)["champion"] == target
        event = st.list_events(factory_id=f.id, kinds=("alias_set",), limit=1)[-1]
    assert "ada" in event.reason and "live accuracy dropped" in event.reason
    assert errors_in_console(browser) == []


def test_the_campaign_charts_draw_importance_parallel_coordinates_and_the_front(
    browser: WebDriver, console_site: ConsoleSite, shots: Path
) -> None:
    browser.get_log("browser")
    browser.get(f"{console_site.url}/campaigns/{console_site.campaign_id}")
    for chart in ("importance", "parallel", "pareto"):
        WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, f"#{chart} svg.main-svg")))
    with Store(console_site.store_url) as st:
        trials = st.list_trials(campaign_id=console_site.campaign_id)
    scored = [t for t in trials if t.reward is not None]
    params = {k for t in scored for k in t.params} | {"trainer"}
    bars = browser.find_elements(By.CSS_SELECTOR, "#importance .barlayer .point")
    assert bars and len(bars) <= len(params)
    lines = browser.find_elements(By.CSS_SELECTOR, "#parallel .scatterlayer .trace .js-line")
    assert lines and all(line.get_attribute("d") for line in lines)
    labels = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#parallel .annotation-text")]
    assert "reward" in labels and len({lab for lab in labels if lab in params}) >= 1
    front = browser.find_elements(By.CSS_SELECTOR, "#pareto .scatterlayer .trace .points path")
    completed = [t for t in trials if t.state == "completed"]
    assert len(front) == len(completed)
    assert "epsilon squared" in browser.find_element(By.TAG_NAME, "main").text
    browser.execute_script("document.getElementById('importance').scrollIntoView()")
    browser.save_screenshot(str(shots / "campaign-charts.png"))
    assert errors_in_console(browser) == []


def test_the_lineage_graph_draws_every_step(browser: WebDriver, console_site: ConsoleSite, shots: Path) -> None:
    browser.get_log("browser")
    browser.get(f"{console_site.url}/factories/{console_site.factory}/versions/1")
    graph = WebDriverWait(browser, 30).until(ec.presence_of_element_located((By.ID, "lineage-graph")))
    kinds = [g.get_attribute("class") for g in graph.find_elements(By.CSS_SELECTOR, "g.node")]
    assert kinds[:5] == ["node data", "node proposal", "node trial", "node gate", "node registered"]
    assert "node alias" in kinds
    assert len(graph.find_elements(By.CSS_SELECTOR, "line.edge")) == len(kinds) - 1
    assert graph.size["width"] > 300 and graph.size["height"] > 50  # drawn, not collapsed
    assert "gate verdict" in graph.text
    browser.execute_script("arguments[0].scrollIntoView()", graph)
    browser.save_screenshot(str(shots / "version-lineage.png"))
    assert errors_in_console(browser) == []
