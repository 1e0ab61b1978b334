#!/usr/bin/env python3
"""A variable-frame-rate MP4 plays in Chromium's <video> as its constant-rate twin does.

    python3 tests/browser/test_vfr_playback.py CONSTANT.mp4 VARIABLE.mp4 SECONDS FPS

Both files are renders of one spec (`frameRate` constant and variable). Each is loaded into a
headless Chromium <video> from a loopback HTTP server (as a Blob, so seeks are exact and the
canvas stays readable); the test checks the duration and size, seeks to frames in motion and
in holds (the middle of each frame's interval, the last frame included) and compares the
pictures drawn on a canvas, then plays each file through to its `ended` event. Prints one line
per step and a closing `playback: N passed, N failed` line; exits 1 on failure.

Environment: CHROMIUM, CHROMEDRIVER (default /usr/bin/chromium, /usr/bin/chromedriver).
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import sys
import tempfile
import threading
import traceback

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # pragma: no cover - a setup problem, said plainly
    sys.exit("test_vfr_playback: selenium is not installed (pip install -r tests/browser/requirements.txt)")

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
# The canvas the frames are drawn on: half the draft size, where a title's letters still cover
# enough pixels to tell two frames apart.
CW, CH = 320, 180
# A pixel "differs" when one of its channels is off by more than this many levels: far above
# the coding noise between the two files, far below a letter against its background.
LEVELS = 32

PROBE = """
const [name, times, rate, done] = arguments;
(async () => {
  const v = document.createElement('video');
  v.muted = true;
  v.preload = 'auto';
  document.body.appendChild(v);
  const blob = await (await fetch(name)).blob();
  v.src = URL.createObjectURL(blob);
  await new Promise((ok, bad) => {
    v.onloadeddata = ok;
    v.onerror = () => bad(new Error('media error ' + (v.error && v.error.code) + ': ' + (v.error && v.error.message)));
  });
  const c = document.createElement('canvas');
  c.width = %d; c.height = %d;
  const g = c.getContext('2d', {willReadFrequently: true});
  const settle = () => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const out = {duration: v.duration, width: v.videoWidth, height: v.videoHeight, frames: []};
  for (const t of times) {
    const seeked = new Promise(r => { v.onseeked = r; });
    v.currentTime = t;
    await seeked;
    await settle();
    g.drawImage(v, 0, 0, c.width, c.height);
    out.frames.push(Array.from(g.getImageData(0, 0, c.width, c.height).data));
  }
  const back = new Promise(r => { v.onseeked = r; });
  v.currentTime = 0;
  await back;
  let presented = 0;
  const count = () => { presented += 1; v.requestVideoFrameCallback(count); };
  v.requestVideoFrameCallback(count);
  v.playbackRate = rate;
  const ended = new Promise(r => { v.onended = r; });
  await v.play();
  await ended;
  out.endedAt = v.currentTime;
  out.presented = presented;
  return out;
})().then(done, e => done({error: String(e && e.stack || e)}));
""" % (CW, CH)


def serve(directory: str) -> http.server.ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D401 - keep the test's output to its own lines
        pass


def make_driver() -> webdriver.Chrome:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            raise SystemExit(f"{path} not found (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(120)
    return driver


def changed(a: list[int], b: list[int]) -> float:
    """The share of pixels of two RGBA pictures that differ by more than LEVELS in a channel."""
    n = 0
    for i in range(0, len(a), 4):
        if max(abs(a[i] - b[i]), abs(a[i + 1] - b[i + 1]), abs(a[i + 2] - b[i + 2])) > LEVELS:
            n += 1
    return n / (len(a) // 4)


def main() -> int:
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    constant, variable, seconds, fps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    frames = round(seconds * fps)
    # Mid-frame times from the first frame to the last, in motion and in holds.
    picks = sorted({0, 5, 12, 20, 31, 45, 61, 74, 83, 95, 120, 150, frames - 1})
    times = [(k + 0.5) / fps for k in picks if k < frames]

    root = tempfile.mkdtemp(prefix="vfr-playback-")
    shutil.copy(constant, os.path.join(root, "constant.mp4"))
    shutil.copy(variable, os.path.join(root, "variable.mp4"))
    with open(os.path.join(root, "index.html"), "w") as f:
        f.write("<!doctype html><title>playback</title><body></body>")
    server = serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    passed = failed = 0

    def check(name: str, ok: bool, detail: str) -> None:
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok   {name}: {detail}")
        else:
            failed += 1
            print(f"FAIL {name}: {detail}")

    driver = make_driver()
    try:
        driver.get(base + "/index.html")
        seen = {}
        for name in ("constant", "variable"):
            r = driver.execute_async_script(PROBE, f"/{name}.mp4", times, 2.0)
            if "error" in r:
                check(f"{name} loads and plays", False, r["error"])
                continue
            seen[name] = r
            check(f"{name} duration", abs(r["duration"] - seconds) < 0.05,
                  f"{r['duration']:.3f} s (want {seconds:.3f})")
            check(f"{name} size", (r["width"], r["height"]) == (640, 360),
                  f"{r['width']}x{r['height']}")
            check(f"{name} plays to its end", abs(r["endedAt"] - r["duration"]) < 0.05,
                  f"ended at {r['endedAt']:.3f} s, {r['presented']} frames presented at 2x")
        if len(seen) == 2:
            diffs = [changed(a, b) for a, b in zip(seen["constant"]["frames"], seen["variable"]["frames"])]
            worst = max(range(len(diffs)), key=lambda i: diffs[i])
            check("same pictures at the same times", diffs[worst] < 0.002,
                  f"{len(diffs)} seeks, worst {100 * diffs[worst]:.2f}% of pixels differ at {times[worst]:.3f} s")
            # The check above would pass on a player stuck on one frame; these frames move.
            cf = seen["constant"]["frames"]
            moving = [changed(a, b) for a, b in zip(cf, cf[1:])]
            apart = sum(1 for m in moving if m > 0.004)
            check("the comparison can tell frames apart", apart >= 5,
                  f"{apart} of {len(moving)} consecutive seeks differ in over 0.4% of pixels "
                  f"(up to {100 * max(moving):.1f}%)")
    except Exception:  # noqa: BLE001 - report any failure as such, with its trace
        failed += 1
        traceback.print_exc()
    finally:
        driver.quit()
        server.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print(f"playback: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
