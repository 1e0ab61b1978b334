//! The actors' [`Artifacts`] port on the local disk: the finished files of jobs in the videos
//! directory.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vidbuilder_actors::ports::{Artifacts, Transfer};

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

impl Transfer for LocalArtifacts {
    fn read_chunk(&self, path: &Path, offset: u64, len: u32) -> std::io::Result<Vec<u8>> {
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut data = Vec::with_capacity(len as usize);
        file.take(u64::from(len)).read_to_end(&mut data)?;
        Ok(data)
    }

    fn digest(&self, path: &Path) -> std::io::Result<(u64, String)> {
        let mut file = std::fs::File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok((size, hex(&hasher.finalize())))
    }

    fn write_chunk(&self, path: &Path, offset: u64, data: &[u8]) -> std::io::Result<()> {
        let mut file = if offset == 0 {
            std::fs::File::create(path)?
        } else {
            std::fs::OpenOptions::new().write(true).open(path)?
        };
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(data)
    }

    /// On disk before it has its name: a crash leaves a partial file, never a short final one.
    fn commit(&self, partial: &Path, path: &Path) -> std::io::Result<()> {
        std::fs::File::open(partial)?.sync_all()?;
        std::fs::rename(partial, path)
    }

    fn create_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn remove_dir(&self, dir: &Path) -> std::io::Result<()> {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn chunks_written_out_of_a_file_rebuild_it_with_the_same_digest() {
        let dir = tempfile::tempdir().unwrap();
        let a = LocalArtifacts::new(dir.path());
        let src = dir.path().join("src.bin");
        let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&src, &body).unwrap();
        let (size, sha) = a.digest(&src).unwrap();
        assert_eq!(size, body.len() as u64);
        // sha256 of the same bytes, computed independently.
        assert_eq!(sha, hex(&Sha256::digest(&body)));
        let partial = dir.path().join(".dst.partial.bin");
        let mut offset = 0u64;
        loop {
            let data = a.read_chunk(&src, offset, 30_000).unwrap();
            if data.is_empty() {
                break;
            }
            a.write_chunk(&partial, offset, &data).unwrap();
            offset += data.len() as u64;
        }
        let dst = dir.path().join("dst.bin");
        a.commit(&partial, &dst).unwrap();
        assert_eq!(a.digest(&dst).unwrap(), (size, sha));
        assert!(a.read_chunk(&src, size + 10, 5).unwrap().is_empty());
        let sub = dir.path().join("attempt");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), b"1").unwrap();
        a.remove_dir(&sub).unwrap();
        assert!(!sub.exists());
        a.remove_dir(&sub).unwrap();
    }
}
