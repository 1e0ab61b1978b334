//! `frameRate: "variable"` played in a real browser: `vidbuilder render` makes the same spec at
//! a constant and at a variable frame rate, and `tests/browser/test_vfr_playback.py` (Python
//! selenium driving Debian's headless Chromium) loads both into a `<video>`, compares the
//! pictures at seeks through motion and holds, and plays each to its end.
//! `scripts/setup.sh --tests` installs what it needs.

use std::process::Command;

use serde_json::json;

#[test]
fn a_variable_frame_rate_mp4_plays_in_chromium_like_its_constant_twin() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for rate in ["constant", "variable"] {
        // Six seconds of draft: a title that settles and holds, a bullet list faded in, music.
        let spec = json!({
            "theme": "corporate",
            "quality": "draft",
            "frameRate": rate,
            "music": {"trackId": "corp-1", "volume": 0.3},
            "scenes": [
                {"type": "hero-title", "duration": 2.5,
                 "content": {"title": "Held **still**", "subtitle": "after its entrance"},
                 "transition": {"type": "fade", "duration": 0.5}},
                {"type": "bullet-list", "duration": 2.0,
                 "content": {"heading": "What changed", "items": ["Faster renders", "Fewer frames"]}},
                {"type": "hero-title", "duration": 1.5, "content": {"title": "Thank you"}}
            ]
        });
        let spec_path = dir.path().join(format!("{rate}.json"));
        std::fs::write(&spec_path, spec.to_string()).unwrap();
        let out = dir.path().join(format!("{rate}.mp4"));
        let run = Command::new(env!("CARGO_BIN_EXE_vidbuilder"))
            .arg("render")
            .arg(&spec_path)
            .arg("-o")
            .arg(&out)
            .arg("--quiet")
            .output()
            .expect("vidbuilder runs");
        assert!(
            run.status.success(),
            "vidbuilder render ({rate}) failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        paths.push(out);
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/browser/test_vfr_playback.py"
    );
    let out = Command::new("python3")
        .arg(script)
        .args(&paths)
        .args(["6", "30"])
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "the playback test failed:\n{text}");
    assert!(text.contains("playback: 8 passed, 0 failed"), "{text}");
}
