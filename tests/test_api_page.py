"""The control API's status page in a real headless browser (Debian's chromium, driven by selenium): sign in
with a read token, then registered versions, deployments with their history, jobs with their state, and an A/B
test with its plot; a wrong token is refused, and the page holds no script."""

from __future__ import annotations

import os
import shutil
import threading
import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REQUIRED = os.environ.get("RCATUNE_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def browser():
    missing = [b for b in ("chromium", "chromedriver") if shutil.which(b) is None]
    try:
        from selenium import webdriver
    except ImportError:
        missing.append("selenium")
    if missing:
        reason = f"{', '.join(missing)} missing: make chromium (and make setup)"
        if REQUIRED:
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1900", "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def _looks(experiment: str):
    """An experiment in the default outcome store with three looks, as hourly analyses leave them."""
    import random

    from rcatune.abtest.analysis import analyse
    from rcatune.abtest.store import OutcomeStore
    from rcatune.config.abtest import ABTestConfig

    store, rng, rows = OutcomeStore(), random.Random(3), []
    store.start(experiment, "1", "2", {})
    for hour in range(3):
        for i in range(150):
            arm = "treatment" if rng.random() < 0.5 else "control"
            rows.append({"request_id": f"{experiment}-{hour}-{i}", "experiment": experiment, "arm": arm,
                         "unit": f"u{hour}-{i}", "at": time.time(), "latency_ms": 90 + rng.random() * 20,
                         "status": 200, "root_cause_correct": rng.random() < (0.75 if arm == "treatment" else 0.5),
                         "query_parses": True, "human_prompts": rng.choice([1, 2, 3]), "time_to_identification": None})
        analysis = analyse(experiment, rows, ABTestConfig(min_effect=0.1), {"control": 0.5, "treatment": 0.5})
        store.add_look(experiment, analysis.as_dict())


def test_the_status_page_signs_in_and_shows_models_deployments_jobs_and_ab_tests(browser, servable_versions,
                                                                               tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from rcatune.api.app import create_app
    from rcatune.config.api import ApiConfig
    from rcatune.deploy import act, release
    from rcatune.processes import free_port
    from rcatune.serving.http import server

    port, deploy_port = free_port(), free_port()
    app = create_app(ApiConfig(deployers={"local": [f"deployer.port={deploy_port}"]}), run_jobs=False)
    reader = app.state.tokens.create("page-reader", ("read",))[1]
    admin = app.state.tokens.create("page-admin", ("admin",))[1]
    experiment = f"page-exp-{int(time.time())}"
    _looks(experiment)
    running = server(app, "127.0.0.1", port)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    import httpx

    from rcatune.deploy.smoke import wait_ready

    wait_ready(base, 30, alive=thread.is_alive, what="the control API")
    client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin}"}, timeout=120)
    from rcatune.config.deployer import LocalDeployerConfig
    from rcatune.config.serving import ServingConfig

    first = servable_versions[0]["number"]
    deployed = LocalDeployerConfig(name="pagecheck", port=deploy_port)
    try:
        assert client.post("/api/v1/jobs", json={"pipeline": "prepare", "overrides": ["data.size=12"]}
                           ).status_code == 202
        act("deploy", deployed, ServingConfig(), release("rcatune-rca", first))

        browser.get(f"{base}/")
        browser.find_element(By.NAME, "token").send_keys("rct_000000000000_" + "x" * 43)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CLASS_NAME, "err"))  # the next page loaded
        assert "not valid" in browser.find_element(By.CLASS_NAME, "err").text
        browser.find_element(By.NAME, "token").send_keys(reader)
        browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_elements(By.TAG_NAME, "h2"))
        headings = [h.text for h in browser.find_elements(By.TAG_NAME, "h2")]
        assert headings == ["Registered versions", "Deployments", "Jobs", "A/B tests"]
        text = browser.find_element(By.TAG_NAME, "body").text
        assert f"v{first}" in text and "local/pagecheck" in text and "prepare" in text and experiment in text
        assert "page-reader" in text  # who is signed in
        plot = browser.find_element(By.CSS_SELECTOR, f"img[alt='{experiment} over time']")
        assert plot.size["width"] > 300 and browser.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", plot) > 300
        assert not browser.find_elements(By.TAG_NAME, "script")
        cookie = browser.get_cookie("rcatune_page_token")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        shot = tmp_path / "status.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 20_000
        if os.environ.get("RCATUNE_SCREENSHOT_TO"):  # how docs/images/api-status-page.png was made
            shutil.copy(shot, os.environ["RCATUNE_SCREENSHOT_TO"])
        browser.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.NAME, "token"))  # signed out: the form again
        assert browser.get_cookie("rcatune_page_token") is None
    finally:
        act("stop", deployed, ServingConfig())
        client.close()
        running.should_exit = True
        thread.join(timeout=10)
