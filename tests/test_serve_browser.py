"""The service's web page in a real headless Chromium (Debian's chromium + chromedriver,
driven by Selenium): pick a user, see the rows, click a title to record a play, watch the
rows change.  A screenshot is saved under build/test-artifacts/.

Skipped when no Chromium is installed, unless TASTEMAKER_REQUIRE_BROWSER=1 (set by
.ci/run, which installs it), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("TASTEMAKER_ARTIFACTS", ROOT / "build" / "test-artifacts"))


def _browser_paths():
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")
                   if shutil.which(b)), None)
    driver = shutil.which("chromedriver")
    return binary, driver


@pytest.fixture()
def driver():
    binary, drv = _browser_paths()
    required = os.environ.get("TASTEMAKER_REQUIRE_BROWSER") == "1"
    if binary is None or drv is None:
        if required:
            pytest.fail("TASTEMAKER_REQUIRE_BROWSER=1 but chromium/chromedriver is not "
                        "installed (apt-get install chromium chromium-driver)")
        pytest.skip("no chromium + chromedriver on this machine")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1000"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=drv), options=opts)
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def test_page_shows_rows_and_a_click_records_a_play(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from test_serve import _bundle, _Live
    from tastemaker.serve import create_app

    bundle = _bundle(tmp_path / "b.tmb")
    app = create_app(bundle, watch=False)
    live = _Live(app)
    try:
        driver.get(live.url + "/")
        wait = WebDriverWait(driver, 60)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        user = driver.find_element(By.ID, "user").get_attribute("value")
        rows = driver.find_elements(By.CSS_SELECTOR, "section.row")
        kinds = [r.get_attribute("data-kind") for r in rows]
        assert "top_picks" in kinds and len(rows) >= 3
        titles = [h.text for h in driver.find_elements(By.CSS_SELECTOR, "section.row h2")]
        assert "Top picks for you" in titles
        assert any(t.startswith("Because you watched") for t in titles)
        top = driver.find_element(By.CSS_SELECTOR, 'section.row[data-kind="top_picks"] .card')
        clicked = top.get_attribute("data-item")
        assert top.find_element(By.CSS_SELECTOR, ".r").text  # a reason under the title
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "serve-homepage.png"))
        ready = driver.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
        top.click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
                   != ready)
        assert "played" in driver.find_element(By.ID, "status").text
        # the play reached the Personalizer, and the page now leaves that title out
        p = app.state.service.current()
        key = p.user_key(user)
        assert int(clicked) in p.history(key).items or clicked in map(str, p.history(key).items)
        now = [c.get_attribute("data-item") for c in driver.find_elements(
            By.CSS_SELECTOR, 'section.row[data-kind="top_picks"] .card')]
        assert clicked not in now
        driver.save_screenshot(str(ARTIFACTS / "serve-homepage-after-play.png"))
    finally:
        live.stop()
        app.state.service.close()
    time.sleep(0)
