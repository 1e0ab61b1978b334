//! The catalog: themes, music tracks and fonts.
//!
//! The shipped defaults are compiled into the binary so `vidbuilder serve` works from any
//! directory; a config directory, when given, adds or overrides themes (`themes/*.toml`), tracks
//! (`music/catalog.toml`, files relative to it) and fonts (`fonts/*.ttf|otf`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::ffmpeg::{measure_loudness, normalising_gain_db, AudioInput};
use super::theme::{Theme, ThemeInfo};
use super::RenderError;

const EMBEDDED_THEMES: &[(&str, &str)] = &[
    (
        "corporate",
        include_str!("../../config/themes/corporate.toml"),
    ),
    ("modern", include_str!("../../config/themes/modern.toml")),
    ("minimal", include_str!("../../config/themes/minimal.toml")),
    ("vibrant", include_str!("../../config/themes/vibrant.toml")),
    ("dark", include_str!("../../config/themes/dark.toml")),
];

const EMBEDDED_CATALOG: &str = include_str!("../../config/music/catalog.toml");

const EMBEDDED_TRACK_FILES: &[(&str, &[u8])] = &[
    (
        "corp-1.m4a",
        include_bytes!("../../config/music/corp-1.m4a"),
    ),
    (
        "ambient-1.m4a",
        include_bytes!("../../config/music/ambient-1.m4a"),
    ),
    (
        "upbeat-1.m4a",
        include_bytes!("../../config/music/upbeat-1.m4a"),
    ),
];

const EMBEDDED_FONTS: &[(&str, &[u8])] = &[
    (
        "Inter-Regular.otf",
        include_bytes!("../../config/fonts/Inter-Regular.otf"),
    ),
    (
        "Inter-Bold.otf",
        include_bytes!("../../config/fonts/Inter-Bold.otf"),
    ),
    (
        "Inter-Italic.otf",
        include_bytes!("../../config/fonts/Inter-Italic.otf"),
    ),
    (
        "Inter-BoldItalic.otf",
        include_bytes!("../../config/fonts/Inter-BoldItalic.otf"),
    ),
    (
        "NotoSans-Regular.ttf",
        include_bytes!("../../config/fonts/NotoSans-Regular.ttf"),
    ),
    (
        "NotoSansArabic-Regular.ttf",
        include_bytes!("../../config/fonts/NotoSansArabic-Regular.ttf"),
    ),
    (
        "NotoSansHebrew-Regular.ttf",
        include_bytes!("../../config/fonts/NotoSansHebrew-Regular.ttf"),
    ),
    (
        "NotoSansDevanagari-Regular.ttf",
        include_bytes!("../../config/fonts/NotoSansDevanagari-Regular.ttf"),
    ),
    (
        "NotoSansThai-Regular.ttf",
        include_bytes!("../../config/fonts/NotoSansThai-Regular.ttf"),
    ),
];

/// The default sans-serif family (used when a theme names no family).
pub const DEFAULT_FAMILY: &str = "Inter";

/// A music-track summary for `GET /api/music`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackInfo {
    /// The id a spec's `music.trackId` names.
    pub track_id: String,
    /// Display title.
    pub title: String,
    /// A mood tag, e.g. for picking a track.
    pub mood: String,
    /// Length of the track, in seconds (as its catalog entry states).
    pub duration_secs: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    tracks: Vec<TrackEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrackEntry {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    mood: String,
    file: String,
    duration_secs: f64,
}

#[derive(Debug, Clone)]
enum TrackSource {
    Embedded {
        file: &'static str,
        bytes: &'static [u8],
    },
    File(PathBuf),
}

#[derive(Debug, Clone)]
struct Track {
    info: TrackInfo,
    source: TrackSource,
}

type FontBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Themes + music catalog + fonts.
pub struct Catalog {
    themes: BTreeMap<String, Theme>,
    tracks: BTreeMap<String, Track>,
    fonts: Vec<FontBytes>,
    /// Measured integrated loudness (LUFS) per track file: measured on first use, kept for the
    /// process's life (a file's loudness does not change under a running server).
    loudness: Mutex<HashMap<PathBuf, Option<f64>>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("themes", &self.theme_names())
            .field("tracks", &self.track_ids())
            .field("fonts", &self.fonts.len())
            .finish()
    }
}

fn cfg_err(file: impl AsRef<Path>, message: impl std::fmt::Display) -> RenderError {
    RenderError::Config(format!("{}: {message}", file.as_ref().display()))
}

/// The catalog's version: a SHA-256 over everything a render may read from it — the embedded
/// themes, music catalog, tracks and fonts, then every file under `config_dir` (its relative path
/// and bytes, in sorted order). Two nodes with the same version render a spec identically; a
/// cluster worker with another version is sent no work.
pub fn catalog_version(config_dir: Option<&Path>) -> Result<String, RenderError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut add = |name: &str, bytes: &[u8]| {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    for (name, text) in EMBEDDED_THEMES {
        add(&format!("<embedded>/themes/{name}.toml"), text.as_bytes());
    }
    add("<embedded>/music/catalog.toml", EMBEDDED_CATALOG.as_bytes());
    for (name, bytes) in EMBEDDED_TRACK_FILES {
        add(&format!("<embedded>/music/{name}"), bytes);
    }
    for (name, bytes) in EMBEDDED_FONTS {
        add(&format!("<embedded>/fonts/{name}"), bytes);
    }
    if let Some(dir) = config_dir {
        let mut files = Vec::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            let entries = std::fs::read_dir(&d)
                .map_err(|e| RenderError::Config(format!("reading {}: {e}", d.display())))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    todo.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f)
                .map_err(|e| RenderError::Config(format!("reading {}: {e}", f.display())))?;
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            add(&rel, &bytes);
        }
    }
    let digest = h.finalize();
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("sha256:{hex}"))
}

impl Catalog {
    /// Load the embedded defaults, then (when given) the additions/overrides of `config_dir`.
    pub fn load(config_dir: Option<&Path>) -> Result<Catalog, RenderError> {
        let mut themes = BTreeMap::new();
        for (name, text) in EMBEDDED_THEMES {
            let t = Theme::from_toml(name, text)
                .map_err(|e| cfg_err(format!("<embedded>/themes/{name}.toml"), e))?;
            themes.insert(name.to_string(), t);
        }
        let mut tracks = BTreeMap::new();
        let cat: CatalogFile = toml::from_str(EMBEDDED_CATALOG)
            .map_err(|e| cfg_err("<embedded>/music/catalog.toml", e))?;
        for e in cat.tracks {
            let (file, bytes) = EMBEDDED_TRACK_FILES
                .iter()
                .find(|(f, _)| *f == e.file)
                .ok_or_else(|| {
                    cfg_err(
                        "<embedded>/music/catalog.toml",
                        format!("no embedded file '{}'", e.file),
                    )
                })?;
            tracks.insert(
                e.id.clone(),
                Track {
                    info: e.info(),
                    source: TrackSource::Embedded { file, bytes },
                },
            );
        }
        let mut fonts: Vec<FontBytes> = EMBEDDED_FONTS
            .iter()
            .map(|(_, b)| Arc::new(*b) as FontBytes)
            .collect();

        if let Some(dir) = config_dir {
            if !dir.is_dir() {
                return Err(RenderError::Config(format!(
                    "config directory '{}' does not exist or is not a directory",
                    dir.display()
                )));
            }
            for path in files_with_ext(&dir.join("themes"), &["toml"])? {
                let name = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                if !valid_name(&name) {
                    return Err(cfg_err(
                        &path,
                        "theme file names may use only a-z, 0-9, '-' and '_'",
                    ));
                }
                let text = std::fs::read_to_string(&path).map_err(|e| cfg_err(&path, e))?;
                let t = Theme::from_toml(&name, &text).map_err(|e| cfg_err(&path, e))?;
                themes.insert(name, t);
            }
            let music = dir.join("music");
            let cat_path = music.join("catalog.toml");
            if cat_path.is_file() {
                let text = std::fs::read_to_string(&cat_path).map_err(|e| cfg_err(&cat_path, e))?;
                let cat: CatalogFile = toml::from_str(&text).map_err(|e| cfg_err(&cat_path, e))?;
                for e in cat.tracks {
                    if !valid_name(&e.id) {
                        return Err(cfg_err(
                            &cat_path,
                            format!("track id '{}': use only a-z, 0-9, '-' and '_'", e.id),
                        ));
                    }
                    let file = music.join(&e.file);
                    if !file.is_file() {
                        return Err(cfg_err(
                            &cat_path,
                            format!("track '{}': file '{}' not found", e.id, file.display()),
                        ));
                    }
                    tracks.insert(
                        e.id.clone(),
                        Track {
                            info: e.info(),
                            source: TrackSource::File(file),
                        },
                    );
                }
            }
            for path in files_with_ext(&dir.join("fonts"), &["ttf", "otf", "ttc"])? {
                let bytes = std::fs::read(&path).map_err(|e| cfg_err(&path, e))?;
                fonts.push(Arc::new(bytes));
            }
        }

        let catalog = Catalog {
            themes,
            tracks,
            fonts,
            loudness: Mutex::new(HashMap::new()),
        };
        // Every theme must name a family we actually have.
        let families = catalog.font_families();
        for t in catalog.themes.values() {
            if !families.contains(&t.typography.family) {
                return Err(RenderError::Config(format!(
                    "theme '{}': font family '{}' is not installed; available: {}",
                    t.name,
                    t.typography.family,
                    families.iter().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        Ok(catalog)
    }

    /// The names of all themes.
    pub fn theme_names(&self) -> BTreeSet<String> {
        self.themes.keys().cloned().collect()
    }

    /// The ids of all music tracks.
    pub fn track_ids(&self) -> BTreeSet<String> {
        self.tracks.keys().cloned().collect()
    }

    /// Summaries of all themes, for `GET /api/themes`.
    pub fn themes(&self) -> Vec<ThemeInfo> {
        self.themes.values().map(Theme::info).collect()
    }

    /// Summaries of all music tracks, for `GET /api/music`.
    pub fn tracks(&self) -> Vec<TrackInfo> {
        self.tracks.values().map(|t| t.info.clone()).collect()
    }

    /// The theme called `name`; `None` when there is none.
    pub fn theme(&self, name: &str) -> Option<&Theme> {
        self.themes.get(name)
    }

    /// The font families available to themes.
    pub fn font_families(&self) -> BTreeSet<String> {
        self.font_db()
            .faces()
            .flat_map(|f| f.families.iter().map(|(n, _)| n.clone()))
            .collect()
    }

    fn font_db(&self) -> fontdb::Database {
        let mut db = fontdb::Database::new();
        for f in &self.fonts {
            db.load_font_source(fontdb::Source::Binary(f.clone()));
        }
        db.set_sans_serif_family(DEFAULT_FAMILY);
        db
    }

    /// A fresh text system over the catalog's fonts only (never the host's).
    pub fn font_system(&self) -> cosmic_text::FontSystem {
        self.font_system_with(&[])
    }

    /// A fresh text system over the catalog's fonts and `extra` font files (a spec's own).
    pub fn font_system_with(&self, extra: &[Arc<Vec<u8>>]) -> cosmic_text::FontSystem {
        let mut db = self.font_db();
        for f in extra {
            db.load_font_source(fontdb::Source::Binary(f.clone()));
        }
        cosmic_text::FontSystem::new_with_locale_and_db("en-US".to_string(), db)
    }

    /// Everything the encoder needs to mix `track_id` at `volume`: a readable file and the gain
    /// that normalises its loudness (measured with `ffmpeg` the first time a file is used).
    pub fn track_audio(
        &self,
        track_id: &str,
        volume: f32,
        ffmpeg: &Path,
        work_dir: &Path,
    ) -> Result<AudioInput, RenderError> {
        let path = self.track_file(track_id, work_dir)?;
        let cached = self
            .loudness
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&path)
            .copied();
        let lufs = match cached {
            Some(l) => l,
            None => {
                // measured outside the lock: concurrent first uses measure twice, harmlessly
                let l = measure_loudness(ffmpeg, &path)?;
                self.loudness
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(path.clone(), l);
                l
            }
        };
        Ok(AudioInput {
            path,
            volume,
            gain_db: normalising_gain_db(lufs),
            duck: None,
        })
    }

    /// A file path ffmpeg can read for `track_id`; embedded tracks are written to
    /// `work_dir/music/` once and reused.
    pub fn track_file(&self, track_id: &str, work_dir: &Path) -> Result<PathBuf, RenderError> {
        let track = self
            .tracks
            .get(track_id)
            .ok_or_else(|| RenderError::UnknownTrack(track_id.to_string()))?;
        match &track.source {
            TrackSource::File(p) => Ok(p.clone()),
            TrackSource::Embedded { file, bytes } => {
                let dir = work_dir.join("music");
                let (stem, ext) = file.rsplit_once('.').unwrap_or((file, "m4a"));
                let path = dir.join(format!("{stem}-{:016x}.{ext}", fnv1a(bytes)));
                if std::fs::metadata(&path)
                    .map(|m| m.len() == bytes.len() as u64)
                    .unwrap_or(false)
                {
                    return Ok(path);
                }
                let io =
                    |e| RenderError::Io(format!("writing music track to {}", dir.display()), e);
                std::fs::create_dir_all(&dir).map_err(io)?;
                // Write under a unique name, then rename: concurrent renders may race here.
                let tmp = dir.join(format!(
                    ".{stem}.{}.{:?}.tmp",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::write(&tmp, bytes).map_err(io)?;
                std::fs::rename(&tmp, &path).map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    io(e)
                })?;
                Ok(path)
            }
        }
    }
}

impl TrackEntry {
    fn info(&self) -> TrackInfo {
        TrackInfo {
            track_id: self.id.clone(),
            title: if self.title.is_empty() {
                self.id.clone()
            } else {
                self.title.clone()
            },
            mood: self.mood.clone(),
            duration_secs: self.duration_secs,
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn files_with_ext(dir: &Path, exts: &[&str]) -> Result<Vec<PathBuf>, RenderError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(cfg_err(dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| cfg_err(dir, e))?.path();
        let ok = p
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| exts.contains(&e.to_ascii_lowercase().as_str()));
        if ok == Some(true) && p.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_catalog_version_follows_every_file_of_the_config_dir() {
        let embedded = catalog_version(None).unwrap();
        assert!(embedded.starts_with("sha256:") && embedded.len() == 7 + 24);
        assert_eq!(catalog_version(None).unwrap(), embedded, "stable");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("themes")).unwrap();
        let empty = catalog_version(Some(dir.path())).unwrap();
        assert_eq!(empty, embedded, "an empty config dir changes nothing");
        std::fs::write(dir.path().join("themes/x.toml"), "a = 1").unwrap();
        let one = catalog_version(Some(dir.path())).unwrap();
        assert_ne!(one, embedded);
        std::fs::write(dir.path().join("themes/x.toml"), "a = 2").unwrap();
        assert_ne!(
            catalog_version(Some(dir.path())).unwrap(),
            one,
            "contents count"
        );
    }
    use super::*;

    #[test]
    fn embedded_defaults_load() {
        let c = Catalog::load(None).unwrap();
        let names = c.theme_names();
        for t in ["corporate", "modern", "minimal", "vibrant", "dark"] {
            assert!(names.contains(t), "{names:?}");
        }
        let ids = c.track_ids();
        for t in ["corp-1", "ambient-1", "upbeat-1"] {
            assert!(ids.contains(t), "{ids:?}");
        }
        assert!(c.font_families().contains("Inter"));
        let info = c.themes();
        assert!(info
            .iter()
            .all(|t| !t.description.is_empty() && !t.colors.background.is_empty()));
        let tracks = c.tracks();
        let corp = tracks.iter().find(|t| t.track_id == "corp-1").unwrap();
        assert!(corp.duration_secs >= 30.0 && !corp.title.is_empty());
        let json = serde_json::to_value(&tracks[0]).unwrap();
        assert!(
            json.get("trackId").is_some() && json.get("durationSecs").is_some(),
            "{json}"
        );
        let json = serde_json::to_value(&info[0]).unwrap();
        assert!(
            json["colors"]["accent"].as_str().unwrap().starts_with('#'),
            "{json}"
        );
    }

    #[test]
    fn config_dir_adds_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("themes")).unwrap();
        std::fs::write(
            dir.path().join("themes/ocean.toml"),
            "description = \"Sea\"\n[palette]\nbackground = [\"#003344\", \"#006688\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("themes/dark.toml"),
            "description = \"Mine\"\n",
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("music")).unwrap();
        std::fs::write(dir.path().join("music/beep.m4a"), b"not really audio").unwrap();
        std::fs::write(
            dir.path().join("music/catalog.toml"),
            "[[tracks]]\nid = \"beep\"\ntitle = \"Beep\"\nmood = \"test\"\nfile = \"beep.m4a\"\nduration_secs = 1.0\n",
        )
        .unwrap();
        let c = Catalog::load(Some(dir.path())).unwrap();
        assert!(c.theme_names().contains("ocean"));
        assert!(c.theme_names().contains("corporate"));
        assert_eq!(c.theme("dark").unwrap().description, "Mine");
        assert!(c.track_ids().contains("beep") && c.track_ids().contains("corp-1"));
        assert_eq!(
            c.track_file("beep", dir.path()).unwrap(),
            dir.path().join("music/beep.m4a")
        );

        // A broken theme is a clear error naming the file.
        std::fs::write(
            dir.path().join("themes/bad.toml"),
            "[palette]\nbackground = \"nope\"\n",
        )
        .unwrap();
        let e = Catalog::load(Some(dir.path())).unwrap_err().to_string();
        assert!(e.contains("bad.toml"), "{e}");
        // A missing config dir is an error too.
        let e = Catalog::load(Some(&dir.path().join("missing")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn embedded_tracks_are_extracted_once() {
        let c = Catalog::load(None).unwrap();
        let work = tempfile::tempdir().unwrap();
        let p1 = c.track_file("corp-1", work.path()).unwrap();
        let m1 = std::fs::metadata(&p1).unwrap().modified().unwrap();
        let p2 = c.track_file("corp-1", work.path()).unwrap();
        assert_eq!(p1, p2);
        assert_eq!(std::fs::metadata(&p2).unwrap().modified().unwrap(), m1);
        assert!(matches!(
            c.track_file("nope", work.path()),
            Err(RenderError::UnknownTrack(_))
        ));
    }
}
