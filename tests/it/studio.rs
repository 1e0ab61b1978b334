//! The web studio end to end in a real browser: `tests/browser/test_studio.py` (Python selenium
//! driving Debian's headless Chromium with its chromedriver) against the real server binary —
//! submit from the page, watch the progress bar move over the live stream, play the finished
//! `<video>`, cancel another job, list recent jobs, save a screenshot.
//! `scripts/setup.sh --tests` installs what it needs.

use std::process::Command;
use std::time::Duration;

use crate::durability::Proc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_studio_submits_watches_plays_and_cancels_in_a_real_browser() {
    for (path, what) in [
        ("/usr/bin/chromium", "chromium"),
        ("/usr/bin/chromedriver", "chromium-driver"),
    ] {
        assert!(
            std::path::Path::new(path).exists(),
            "{path} is missing: install Debian's {what} (scripts/setup.sh --tests does)"
        );
    }
    let data = tempfile::tempdir().unwrap();
    let server = Proc::start(data.path(), 1, &[]).await;
    let shot = data.path().join("studio.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/test_studio.py");
    let base = server.base.clone();
    let shot_path = shot.clone();
    let out = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg(script)
                .env("VIDBUILDER_URL", base)
                .env("STUDIO_SCREENSHOT", shot_path)
                .output()
                .expect("python3 runs")
        }),
    )
    .await
    .expect("the browser test ends within 10 minutes")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{text}\nserver log:\n{}",
        server.logs()
    );
    assert!(text.contains("browser: 9 passed, 0 failed"), "{text}");
    let png = std::fs::read(&shot).expect("a screenshot was saved");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    server.sigkill();
}
