//! The actors' [`Artifacts`] port on the local disk: the finished files of jobs in the videos
//! directory.

use std::path::{Path, PathBuf};

use vidbuilder_actors::ports::Artifacts;

/// Finished files under one directory (`<data_dir>/videos`).
pub struct LocalArtifacts {
    dir: PathBuf,
}

impl LocalArtifacts {
    /// Serves the finished files under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalArtifacts { dir: dir.into() }
    }
}

impl Artifacts for LocalArtifacts {
    fn size(&self, path: &Path) -> Option<u64> {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    fn remove(&self, files: &[PathBuf]) -> Vec<(PathBuf, String)> {
        files
            .iter()
            .filter_map(|f| match std::fs::remove_file(f) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Some((f.clone(), e.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    /// Partial files are `.<name>.partial.<ext>` (the renderer renames them when complete).
    fn discard_partials(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') && name.contains(".partial.") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_removal_and_partials_on_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalArtifacts::new(dir.path());
        let video = dir.path().join("job.mp4");
        std::fs::write(&video, b"12345").unwrap();
        let partial = dir.path().join(".job.1.partial.mp4");
        let partial_jpg = dir.path().join(".job.1.partial.jpg");
        std::fs::write(&partial, b"x").unwrap();
        std::fs::write(&partial_jpg, b"x").unwrap();
        assert_eq!(a.size(&video), Some(5));
        assert_eq!(a.size(&dir.path().join("missing.mp4")), None);
        assert_eq!(a.size(dir.path()), None, "a directory is no artifact");
        a.discard_partials();
        assert!(!partial.exists() && !partial_jpg.exists() && video.exists());
        let missing = dir.path().join("gone.jpg");
        assert!(a.remove(&[video.clone(), missing]).is_empty());
        assert!(!video.exists());
    }
}
