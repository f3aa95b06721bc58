"""The dashboard at `/ui` in a real headless Chromium (Debian's `chromium` and `chromedriver`, driven by
Selenium) against `inferq up` on the embedded default: key entry, a job followed live to 100 %, its
events, the throughput chart, downloads through the page, cancel, and a screenshot of it all."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from inferq.client import Client
from tests.e2e.inputs import write_mixed_input
from tests.helpers.ports import free_port
from tests.helpers.processes import Processes, wait_ready

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
RECORDS = 60
BROKEN_EVERY = 20  # 3 broken lines among the 60 good ones
LONG_RECORDS = 1000  # minutes of work for one CPU worker: still running when it is cancelled
JOB_TIMEOUT = 300
# The chart's line colour (#2f6feb); the line drawn above its zero baseline means a rate above 0 was seen.
CHART_LINE_PIXELS_ABOVE_BASELINE = """
const canvas = document.getElementById('chart');
const ratio = canvas.width / canvas.clientWidth;
const ctx = canvas.getContext('2d');
const top = Math.round(10 * ratio), plotBottom = Math.round((canvas.clientHeight - 22) * ratio);
const data = ctx.getImageData(0, top, canvas.width, plotBottom - top - Math.round(4 * ratio)).data;
let n = 0;
for (let i = 0; i < data.length; i += 4) {
  if (data[i + 3] > 200 && Math.abs(data[i] - 47) < 25 && Math.abs(data[i + 1] - 111) < 25
      && Math.abs(data[i + 2] - 235) < 25) n++;
}
return n;
"""


@dataclass
class Browser:
    driver: WebDriver
    downloads: Path

    def wait(self, timeout: float = 30) -> WebDriverWait[WebDriver]:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2)

    def by_css(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def text(self, selector: str) -> str:
        return self.by_css(selector).text


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if shutil.which(path) is None]
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the dashboard test: {reason}")
        pytest.skip(reason)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1360,1300",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        },
    )
    # The driver's path is given, so Selenium Manager never runs (and never downloads anything).
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        yield Browser(driver=driver, downloads=downloads)
    finally:
        driver.quit()


def wait_for_download(folder: Path, name: str, timeout: float = 30) -> Path:
    path = folder / name
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and not any(p.suffix == ".crdownload" for p in folder.iterdir()):
            return path
        time.sleep(0.2)
    raise AssertionError(f"{name} did not arrive in {folder}: {sorted(p.name for p in folder.iterdir())}")


def test_the_dashboard_follows_a_job_and_downloads_its_files(
    processes: Processes, browser: Browser, tmp_path: Path
) -> None:
    # given: `inferq up` on the embedded default, a key, and the dashboard open in Chromium
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFERQ_")}
    env.update(
        {"INFERQ_DATA_DIR": str(tmp_path / "data"), "INFERQ_PART_RECORDS": "10", "INFERQ_TORCH_THREADS": "1"}
    )
    processes.start("up", ["up", "--port", str(port), "--workers", "1"], env)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, processes)
    key = processes.run(["keys", "create", "--tenant", "e2e-dashboard"], env).strip()
    input_path, _, bad_lines = write_mixed_input(
        tmp_path / "input.jsonl", records=RECORDS, broken_every=BROKEN_EVERY
    )
    total = RECORDS + len(bad_lines)
    driver = browser.driver
    driver.get(f"{url}/ui")
    assert driver.title == "inferq dashboard"

    # when: a wrong key is entered first
    browser.by_css("#api-key").send_keys("not-a-key")
    browser.by_css("#key-save").click()
    # then: the page says so
    browser.wait().until(lambda d: browser.text("#conn") == "key rejected")
    assert "refused" in browser.text("#notice")

    # when: the real key is entered, and a job is submitted while the page watches
    field = browser.by_css("#api-key")
    field.clear()
    field.send_keys(key)
    browser.by_css("#key-save").click()
    browser.wait().until(lambda d: browser.text("#conn").startswith("connected"))
    job = Client(url, key).submit_file(input_path, task="embedding", model="minilm-l6")
    row = f'tr[data-job-id="{job.id}"]'
    browser.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, row))
    seen: list[int] = []
    deadline = time.monotonic() + JOB_TIMEOUT
    while browser.by_css(row).get_attribute("data-status") != "succeeded":
        status = browser.by_css(row).get_attribute("data-status")
        assert status in ("queued", "running", "finalizing"), status
        assert time.monotonic() < deadline, f"job still {status} after {JOB_TIMEOUT}s"
        processes.assert_alive()
        seen.append(int(browser.by_css(f"{row} [role=progressbar]").get_attribute("aria-valuenow") or 0))
        time.sleep(0.5)

    # then: the row shows the job done, at 100 %, with its counts, and the key was kept by the browser
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    progressbar = browser.by_css(f"{row} [role=progressbar]")
    browser.wait().until(lambda d: progressbar.get_attribute("aria-valuenow") == "100")
    assert browser.text(f"{row} .badge") == "succeeded"
    assert browser.text(f"{row} .progress-text") == f"{total} / {total} · 100% · {len(bad_lines)} failed"
    assert browser.text(f"{row} .eta") == "done"
    assert not browser.by_css(f"{row} .cancel-btn").is_enabled()
    assert driver.execute_script("return window.localStorage.getItem('inferq.apiKey')") == key
    # and: the throughput chart drew a rate above zero while the job ran
    assert driver.execute_script(CHART_LINE_PIXELS_ABOVE_BASELINE) > 0

    # when: its events are opened
    browser.by_css(f"{row} .events-btn").click()
    # then: they are the API's events, in order, with the job's state changes
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.get(f"{url}/v1/jobs/{job.id}/events?limit=1000", headers=headers, timeout=10)
    events = r.json()["data"]
    browser.wait().until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events-body tr")) == len(events))
    assert browser.text("#events-job") == job.id
    event_rows = driver.find_elements(By.CSS_SELECTOR, "#events-body tr")
    assert [e.get_attribute("data-event-id") for e in event_rows] == [str(e["id"]) for e in events]
    assert any("running → finalizing" in e.text for e in event_rows)
    assert any("finalizing → succeeded" in e.text for e in event_rows)

    # when: the results and the errors are downloaded through the page
    browser.by_css(f"{row} .results-btn").click()
    results = wait_for_download(browser.downloads, f"{job.id}-results.jsonl")
    browser.by_css(f"{row} .errors-btn").click()
    errors = wait_for_download(browser.downloads, f"{job.id}-errors.jsonl")

    # then: they are the API's bytes
    expected = httpx.get(f"{url}/v1/jobs/{job.id}/results", headers=headers, timeout=30).content
    assert results.read_bytes() == expected
    assert len(expected.splitlines()) == RECORDS
    assert len(errors.read_bytes().splitlines()) == len(bad_lines)
    assert browser.text("#notice").startswith(f"Saved {job.id}-errors.jsonl")

    # when: a longer job is cancelled from its row while it runs
    long_input, _, _ = write_mixed_input(tmp_path / "long.jsonl", records=LONG_RECORDS, broken_every=10**6)
    long_job = Client(url, key).submit_file(long_input, task="embedding", model="minilm-l6")
    long_row = f'tr[data-job-id="{long_job.id}"]'
    browser.wait().until(lambda d: d.find_elements(By.CSS_SELECTOR, f"{long_row} .cancel-btn:enabled"))
    browser.by_css(f"{long_row} .cancel-btn").click()
    alert = browser.wait().until(lambda d: d.switch_to.alert)
    assert long_job.id in alert.text
    alert.accept()

    # then: it ends cancelled, short of its total, and the first job's row is unchanged
    browser.wait(120).until(lambda d: browser.by_css(long_row).get_attribute("data-status") == "cancelled")
    assert browser.text(f"{long_row} .badge") == "cancelled"
    assert int(browser.by_css(f"{long_row} [role=progressbar]").get_attribute("aria-valuenow") or 0) < 100
    assert not browser.by_css(f"{long_row} .cancel-btn").is_enabled()
    assert browser.by_css(row).get_attribute("data-status") == "succeeded"
    # and: a screenshot of the page is kept with the test's files
    screenshot = tmp_path / "dashboard.png"
    assert driver.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
