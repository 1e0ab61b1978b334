#!/usr/bin/env python3
"""End-to-end test of the vidbuilder studio page (studio/) in headless Chromium.

Needs a running vidbuilder server (the harness starts it) whose /api/examples has an example
named `quick` that renders about a second of draft video.

    VIDBUILDER_URL=http://127.0.0.1:8080 python3 tests/browser/test_studio.py

Environment:
    VIDBUILDER_URL       server base URL (default http://127.0.0.1:8080)
    VIDBUILDER_API_KEY   API key to type into the page, when the server has keys (optional)
    STUDIO_SCREENSHOT    where to save the 1280x900 screenshot (default docs/img/studio.png)
    STUDIO_TIMEOUT       seconds a render may take (default 180)
    CHROMIUM, CHROMEDRIVER  browser and driver paths (default /usr/bin/chromium, /usr/bin/chromedriver)

Steps: open the page and wait for the editor and the selects; choose the `quick` example and
draft quality; submit; watch the progress bar move and the status reach `completed`; check the
<video> plays (readyState >= 2, currentTime advances); save the screenshot; submit a longer job
and cancel it while it is queued or processing (status `failed`, shown as cancelled); check that
Recent jobs lists both jobs and that Enter on one makes it the current job again.
Prints one line per step and a closing `browser: N passed, N failed` line; exits 1 on failure.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

try:
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # pragma: no cover - a setup problem, said plainly
    sys.exit("test_studio: selenium is not installed (pip install -r tests/browser/requirements.txt)")

BASE = os.environ.get("VIDBUILDER_URL", "http://127.0.0.1:8080").rstrip("/")
API_KEY = os.environ.get("VIDBUILDER_API_KEY", "")
SCREENSHOT = os.environ.get("STUDIO_SCREENSHOT", "docs/img/studio.png")
RENDER_TIMEOUT = float(os.environ.get("STUDIO_TIMEOUT", "180"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
WIDTH, HEIGHT = 1280, 900
# Scene length of the job that is cancelled: long enough that it is still running when the
# test clicks Cancel (a fraction of a second after submitting), within the default limits.
CANCEL_SCENE_SECONDS = float(os.environ.get("STUDIO_CANCEL_SCENE_SECONDS", "30"))
# Scene length of the job whose progress is watched: long enough (a few seconds of rendering)
# that the bar shows values between 0 and 100 as the live stream reports them.
WATCH_SCENE_SECONDS = float(os.environ.get("STUDIO_WATCH_SCENE_SECONDS", "15"))


class Failure(Exception):
    """A check that did not hold; the message says which and what the page showed."""


def make_driver() -> webdriver.Chrome:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            raise Failure(f"{path} not found (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={WIDTH},{HEIGHT}",
        "--hide-scrollbars",
        "--lang=en-US",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    # An exact 1280x900 viewport, whatever the window decorations.
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


class StudioTest:
    def __init__(self, driver: webdriver.Chrome):
        self.d = driver
        self.passed = 0
        self.steps_total = 9
        self.job1 = None
        self.job2 = None

    # -- helpers ---------------------------------------------------------------------------

    def js(self, script: str, *args):
        return self.d.execute_script(script, *args)

    def text(self, element_id: str) -> str:
        return self.js("const e = document.getElementById(arguments[0]); return e ? e.textContent.trim() : null;", element_id)

    def page_state(self) -> str:
        """What the page shows, for failure messages."""
        s = self.js(
            """
            const t = (id) => { const e = document.getElementById(id); return e && !e.hidden ? e.textContent.trim() : ''; };
            const p = document.getElementById('job-progress');
            return {
              ready: document.body.dataset.ready, jobId: t('job-id'), status: t('job-status'),
              progress: p ? p.value : null, message: t('job-message'), jobError: t('job-error'),
              spec: t('spec-summary'), specProblems: t('spec-problems'), submitError: t('submit-error'),
              loadErrors: t('load-errors'), recentError: t('recent-error'),
            };
            """
        )
        return json.dumps({k: v for k, v in s.items() if v not in ("", None)})

    def wait(self, what: str, cond, timeout: float, poll: float = 0.1):
        """Waits for `cond(driver)` to be truthy; fails saying `what` and what the page showed."""
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=poll).until(cond)
        except TimeoutException:
            raise Failure(f"timed out after {timeout:.0f} s waiting for {what}; page: {self.page_state()}") from None

    def step(self, name: str, fn):
        t0 = time.monotonic()
        fn()
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - t0:.1f} s)", flush=True)

    def current_job_id(self) -> str:
        return self.text("job-id") or ""

    def submit_and_get_job(self, previous: str | None) -> str:
        self.wait("Submit to be enabled (a valid spec)", lambda d: d.find_element(By.ID, "submit-job").is_enabled(), 10)
        self.d.find_element(By.ID, "submit-job").click()

        def new_job(_):
            err = self.text("submit-error")
            if err:
                raise Failure(f"the server refused the spec: {err}")
            jid = self.current_job_id()
            return jid if jid and jid != previous else None

        return self.wait("a new current job after Submit", new_job, 30)

    # -- steps -----------------------------------------------------------------------------

    def open_page(self):
        # A plain request first, for a clear message when the server is not there (or does not
        # serve the studio) rather than a browser timeout.
        try:
            with urllib.request.urlopen(f"{BASE}/", timeout=10) as res:
                page = res.read().decode("utf-8", "replace")
        except (OSError, urllib.error.URLError) as e:
            raise Failure(f"{BASE}/ is not reachable: {e}") from None
        if 'id="editor"' not in page:
            raise Failure(f"{BASE}/ is not the studio page: {page[:200]!r}")
        self.d.get(f"{BASE}/")
        self.wait(
            "the page's first load",
            lambda d: d.execute_script("return document.body.dataset.ready") == "true",
            30,
        )
        if API_KEY:
            key = self.d.find_element(By.ID, "api-key")
            key.clear()
            key.send_keys(API_KEY, Keys.TAB)  # the change event saves it and reloads the lists

    def wait_loaded(self):
        self.wait("the page to load its data", lambda d: d.execute_script("return document.body.dataset.ready") == "true", 30)
        load_errors = self.text("load-errors")
        if load_errors and not self.d.find_element(By.ID, "load-errors").get_attribute("hidden"):
            raise Failure(f"the page could not load its data: {load_errors}")
        self.wait("the editor", lambda d: d.find_elements(By.CSS_SELECTOR, "#editor .cm-content"), 10)

        def options(select_id):
            return [o.get_attribute("value") for o in Select(self.d.find_element(By.ID, select_id)).options]

        self.wait("the `quick` example in the example select", lambda d: "quick" in options("example-select"), 10)
        self.wait("themes in the theme select", lambda d: len(options("theme-select")) > 1, 10)
        self.wait("tracks in the music select", lambda d: len(options("music-select")) > 1, 10)
        self.wait("`draft` in the quality select", lambda d: "draft" in options("quality-select"), 10)

    def choose_quick_draft(self):
        Select(self.d.find_element(By.ID, "example-select")).select_by_value("quick")
        Select(self.d.find_element(By.ID, "quality-select")).select_by_value("draft")

        def spec_is_draft(_):
            try:
                spec = json.loads(self.js("return window.studio.getSpecText()"))
            except (ValueError, TypeError):
                return False
            return spec.get("quality") == "draft"

        self.wait("the editor's spec to have quality draft", spec_is_draft, 10)
        spec = json.loads(self.js("return window.studio.getSpecText()"))
        spec["scenes"][0]["duration"] = WATCH_SCENE_SECONDS
        self.js("window.studio.setSpecText(arguments[0])", json.dumps(spec, indent=2))
        self.wait(
            "the spec to be valid",
            lambda d: d.find_element(By.ID, "spec-errors").get_attribute("data-valid") == "true",
            10,
        )

    def render_and_watch(self):
        self.job1 = self.submit_and_get_job(None)
        seen: list[float] = []

        def completed(_):
            # one read of both: the page sets them together, and two reads could straddle that
            value, status = self.js(
                "return [document.getElementById('job-progress').value,"
                " document.getElementById('job-status').textContent.trim()]"
            )
            value = float(value)
            if not seen or seen[-1] != value:
                seen.append(value)
            if status == "failed":
                raise Failure(f"job {self.job1} failed: {self.text('job-error')}")
            return status == "completed"

        self.wait(f"job {self.job1} to complete", completed, RENDER_TIMEOUT, poll=0.05)
        if not any(0 < v < 100 for v in seen) or seen[-1] != 100:
            raise Failure(f"the progress bar did not move through the render: values seen {seen}")
        print(f"     job {self.job1}: progress values seen {seen}", flush=True)

    def video_plays(self):
        ready = lambda d: d.execute_script("return document.getElementById('job-video').readyState") >= 2
        self.wait("the video to have data (readyState >= 2)", ready, 30)
        # A one-second video may have ended already: play it again from the start.
        self.d.execute_async_script(
            """
            const done = arguments[arguments.length - 1];
            const v = document.getElementById('job-video');
            if (v.ended || v.paused) { v.currentTime = 0; }
            v.play().then(() => done(true), (e) => done(String(e)));
            """
        )
        t1 = self.js("return document.getElementById('job-video').currentTime")
        self.wait(
            f"the video's currentTime to advance past {t1:.3f}",
            lambda d: d.execute_script("return document.getElementById('job-video').currentTime") > t1,
            15,
            poll=0.05,
        )
        t2 = self.js("return document.getElementById('job-video').currentTime")
        print(f"     video currentTime {t1:.3f} -> {t2:.3f}", flush=True)
        for link_id in ("download-video", "download-poster"):
            href = self.d.find_element(By.ID, link_id).get_attribute("href") or ""
            if not (href.startswith("blob:") or f"/api/download/{self.job1}" in href):
                raise Failure(f"#{link_id} points to {href!r}, not to job {self.job1}'s download")

    def screenshot(self):
        self.js("window.scrollTo(0, 0); document.activeElement && document.activeElement.blur();")
        size = self.js("return [window.innerWidth, window.innerHeight]")
        if size != [WIDTH, HEIGHT]:
            raise Failure(f"viewport is {size}, expected {[WIDTH, HEIGHT]}")
        directory = os.path.dirname(os.path.abspath(SCREENSHOT))
        os.makedirs(directory, exist_ok=True)
        if not self.d.save_screenshot(SCREENSHOT):
            raise Failure(f"could not save the screenshot to {SCREENSHOT}")
        print(f"     screenshot saved to {SCREENSHOT}", flush=True)

    def cancel_long_job(self):
        spec = json.loads(self.js("return window.studio.getSpecText()"))
        spec["quality"] = "draft"
        spec["scenes"][0]["duration"] = CANCEL_SCENE_SECONDS
        self.js("window.studio.setSpecText(arguments[0])", json.dumps(spec, indent=2))
        self.wait(
            "the longer spec to be valid",
            lambda d: d.find_element(By.ID, "spec-errors").get_attribute("data-valid") == "true",
            10,
        )
        self.job2 = self.submit_and_get_job(self.job1)

        def cancellable(_):
            status = self.text("job-status")
            if status in ("completed", "failed"):
                raise Failure(f"job {self.job2} was {status} before it could be cancelled")
            return status in ("queued", "processing") and self.d.find_element(By.ID, "cancel-job").is_enabled()

        self.wait(f"Cancel to be enabled for job {self.job2}", cancellable, 30, poll=0.02)
        self.d.find_element(By.ID, "cancel-job").click()

        def failed(_):
            status = self.text("job-status")
            if status == "completed":
                raise Failure(f"job {self.job2} completed although it was cancelled")
            return status == "failed"

        self.wait(f"job {self.job2} to be failed after Cancel", failed, 60)
        # The status event may come a moment before the result that says why.
        self.wait(
            f"the page to say job {self.job2} was cancelled",
            lambda d: "cancel" in (self.text("job-error") or "").lower(),
            15,
        )
        if self.d.find_element(By.ID, "cancel-job").is_enabled():
            raise Failure("Cancel is still enabled for a finished job")

    def recent_jobs(self):
        def listed(_):
            ids = self.js(
                "return [...document.querySelectorAll('#recent-jobs [data-job-id]')].map(e => e.dataset.jobId)"
            )
            return self.job1 in ids and self.job2 in ids

        self.wait(f"Recent jobs to list {self.job1} and {self.job2}", listed, 30)
        row2 = f"#recent-jobs li[data-job-id='{self.job2}']"
        self.wait(
            f"Recent jobs to show {self.job2} as failed",
            lambda d: d.find_element(By.CSS_SELECTOR, row2).get_attribute("data-status") == "failed",
            30,
        )

    def reopen_with_keyboard(self):
        button = self.d.find_element(By.CSS_SELECTOR, f"#recent-jobs li[data-job-id='{self.job1}'] button")
        self.js("arguments[0].focus()", button)
        button.send_keys(Keys.ENTER)
        self.wait(f"Enter on job {self.job1} to make it the current job", lambda d: self.current_job_id() == self.job1, 10)
        self.wait(f"job {self.job1} to show as completed", lambda d: self.text("job-status") == "completed", 15)
        self.wait(
            "its video to load again",
            lambda d: d.execute_script("return document.getElementById('job-video').readyState") >= 2,
            30,
        )

    def run(self):
        self.step("open the studio", self.open_page)
        self.step("editor and selects filled from the API", self.wait_loaded)
        self.step("choose the `quick` example and draft quality", self.choose_quick_draft)
        self.step("submit; progress moves; status reaches completed", self.render_and_watch)
        self.step("the video plays", self.video_plays)
        self.step("screenshot at 1280x900", self.screenshot)
        self.step("a second job is cancelled", self.cancel_long_job)
        self.step("recent jobs list both jobs", self.recent_jobs)
        self.step("Enter on a recent job makes it current", self.reopen_with_keyboard)


def uncaught_errors(driver) -> list[str]:
    """Uncaught JavaScript exceptions from the browser console."""
    try:
        logs = driver.get_log("browser")
    except WebDriverException:
        return []
    return [e["message"] for e in logs if e.get("level") == "SEVERE" and "Uncaught" in e.get("message", "")]


def main() -> int:
    print(f"studio browser test against {BASE}", flush=True)
    driver = None
    test = None
    failed = 0
    try:
        driver = make_driver()
        test = StudioTest(driver)
        test.run()
        errors = uncaught_errors(driver)
        if errors:
            raise Failure("uncaught JavaScript errors: " + " | ".join(errors))
    except Failure as e:
        failed = 1
        print(f"FAIL {e}", file=sys.stderr, flush=True)
    except Exception as e:  # noqa: BLE001 - any other error is a failure too, with its trace
        failed = 1
        print(f"FAIL unexpected error: {e!r}", file=sys.stderr, flush=True)
        traceback.print_exc()
    finally:
        if failed and driver is not None:
            shot = os.path.join(tempfile.gettempdir(), "studio-failure.png")
            try:
                driver.save_screenshot(shot)
                print(f"     failure screenshot: {shot}", file=sys.stderr)
                for line in driver.get_log("browser")[-20:]:
                    print(f"     console: {line.get('level')} {line.get('message')}", file=sys.stderr)
            except WebDriverException:
                pass
        if driver is not None:
            driver.quit()
    passed = test.passed if test else 0
    total = test.steps_total if test else 9
    skipped = total - passed - failed
    print(f"browser: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
