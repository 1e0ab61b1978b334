//! Poster frames: one JPEG per output video, encoded in Rust from the RGBA frame the pipeline
//! already drew, on a thread of its own so the drawing loop only pays for one copy.
//!
//! Encoding here rather than in ffmpeg avoids a second output (and its colour conversion) in
//! the encoder's command line; a 1080p JPEG takes a few tens of milliseconds once per video.

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use super::RenderError;

/// JPEG quality of posters.
pub const QUALITY: u8 = 85;
/// Posters wider than this are halved (a 4K poster is a thumbnail, not a master).
pub const MAX_WIDTH: usize = 1920;

/// A poster being written.
pub struct PosterJob {
    path: PathBuf,
    thread: JoinHandle<Result<(), RenderError>>,
}

impl PosterJob {
    /// Start encoding the opaque RGBA frame `rgba` (`w × h`) to `path`. The frame is copied
    /// (dropping alpha, and halved when wide), so the caller's buffer is free at once.
    pub fn start(rgba: &[u8], w: usize, h: usize, path: &Path) -> Result<PosterJob, RenderError> {
        let (rgb, pw, ph) = to_rgb(rgba, w, h);
        let target = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("poster".into())
            .spawn(move || write_jpeg(&rgb, pw, ph, &target))
            .map_err(|e| RenderError::Io("starting the poster thread".into(), e))?;
        Ok(PosterJob {
            path: path.to_path_buf(),
            thread,
        })
    }

    /// Wait for the file; returns its path.
    pub fn finish(self) -> Result<PathBuf, RenderError> {
        match self.thread.join() {
            Ok(r) => r.map(|()| self.path),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

/// RGB bytes of an opaque RGBA frame, box-halved while wider than [`MAX_WIDTH`].
fn to_rgb(rgba: &[u8], w: usize, h: usize) -> (Vec<u8>, usize, usize) {
    if w <= MAX_WIDTH || w < 2 || h < 2 {
        let rgb = rgba
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2]])
            .collect();
        return (rgb, w, h);
    }
    let (hw, hh) = (w / 2, h / 2);
    let mut rgb = Vec::with_capacity(hw * hh * 3);
    for y in 0..hh {
        let (r0, r1) = (&rgba[2 * y * w * 4..], &rgba[(2 * y + 1) * w * 4..]);
        for x in 0..hw {
            let i = 2 * x * 4;
            for c in 0..3 {
                let sum = r0[i + c] as u32
                    + r0[i + 4 + c] as u32
                    + r1[i + c] as u32
                    + r1[i + 4 + c] as u32;
                rgb.push(((sum + 2) / 4) as u8);
            }
        }
    }
    if hw > MAX_WIDTH {
        // never happens for the shipped qualities (4K halves to 1080p); keep it general anyway
        let rgba: Vec<u8> = rgb
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect();
        return to_rgb(&rgba, hw, hh);
    }
    (rgb, hw, hh)
}

fn write_jpeg(rgb: &[u8], w: usize, h: usize, path: &Path) -> Result<(), RenderError> {
    let io = |e: std::io::Error| RenderError::Io(format!("writing poster {}", path.display()), e);
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode(rgb, w as u32, h as u32, image::ExtendedColorType::Rgb8)
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    std::io::Write::flush(&mut out).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posters_are_jpegs_and_wide_frames_are_halved() {
        let dir = tempfile::tempdir().unwrap();
        let (w, h) = (3840usize, 2160usize);
        let rgba: Vec<u8> = (0..w * h).flat_map(|_| [200u8, 40, 90, 255]).collect();
        let path = dir.path().join("p.jpg");
        PosterJob::start(&rgba, w, h, &path)
            .unwrap()
            .finish()
            .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (1920, 1080));
        let px = img.get_pixel(960, 540).0;
        for (got, want) in px.iter().zip([200u8, 40, 90]) {
            assert!((*got as i32 - want as i32).abs() <= 3, "{px:?}");
        }
    }
}
