//! Poster frames: one JPEG per output video, encoded in Rust from the RGBA frame the pipeline
//! already drew, on a thread of its own so the drawing loop pays for one copy at most (none
//! when the frame it hands over is already its own, as on the base-picture path).
//!
//! Encoding here rather than in ffmpeg avoids a second output (and its colour conversion) in
//! the encoder's command line. `jpeg-encoder` (AVX2 where the CPU has it) takes the RGBA as it
//! is and writes a 1080p poster in a few milliseconds, once per video.

use std::borrow::Cow;
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
    /// Start encoding the opaque RGBA frame `rgba` (`w × h`) to `path`. A borrowed frame is
    /// copied, so the caller's buffer is free at once; an owned one is moved.
    pub fn start(
        rgba: Cow<'_, [u8]>,
        w: usize,
        h: usize,
        path: &Path,
    ) -> Result<PosterJob, RenderError> {
        let frame = rgba.into_owned();
        let target = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("poster".into())
            .spawn(move || {
                let (px, pw, ph) = halved(frame, w, h);
                write_jpeg(&px, pw, ph, &target)
            })
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

/// An opaque RGBA frame, box-halved while wider than [`MAX_WIDTH`].
fn halved(rgba: Vec<u8>, w: usize, h: usize) -> (Vec<u8>, usize, usize) {
    if w <= MAX_WIDTH || w < 2 || h < 2 {
        return (rgba, w, h);
    }
    let (hw, hh) = (w / 2, h / 2);
    let mut out = Vec::with_capacity(hw * hh * 4);
    for y in 0..hh {
        let (r0, r1) = (&rgba[2 * y * w * 4..], &rgba[(2 * y + 1) * w * 4..]);
        for x in 0..hw {
            let i = 2 * x * 4;
            for c in 0..3 {
                let sum = r0[i + c] as u32
                    + r0[i + 4 + c] as u32
                    + r1[i + c] as u32
                    + r1[i + 4 + c] as u32;
                out.push(((sum + 2) / 4) as u8);
            }
            out.push(255);
        }
    }
    halved(out, hw, hh)
}

fn write_jpeg(rgba: &[u8], w: usize, h: usize, path: &Path) -> Result<(), RenderError> {
    let io = |e: std::io::Error| RenderError::Io(format!("writing poster {}", path.display()), e);
    let too_big = || {
        io(std::io::Error::other(format!(
            "a {w}x{h} poster is too large"
        )))
    };
    let (w16, h16) = (
        u16::try_from(w).map_err(|_| too_big())?,
        u16::try_from(h).map_err(|_| too_big())?,
    );
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = std::io::BufWriter::new(file);
    jpeg_encoder::Encoder::new(&mut out, QUALITY)
        .encode(rgba, w16, h16, jpeg_encoder::ColorType::Rgba)
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
        PosterJob::start(Cow::Borrowed(&rgba), w, h, &path)
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

    #[test]
    fn a_poster_keeps_the_picture_and_ignores_alpha() {
        // quadrants of four colours, alpha left at 0 (it must not matter: the frame is opaque)
        let (w, h) = (64usize, 48usize);
        let colours = [
            [230u8, 30, 40],
            [20, 200, 60],
            [30, 60, 220],
            [240, 240, 240],
        ];
        let rgba: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                let c = colours[(y >= h / 2) as usize * 2 + (x >= w / 2) as usize];
                [c[0], c[1], c[2], 0]
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.jpg");
        PosterJob::start(Cow::Owned(rgba), w, h, &path)
            .unwrap()
            .finish()
            .unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (w as u32, h as u32));
        for (k, c) in colours.iter().enumerate() {
            // the middle of each quadrant, away from the edges chroma subsampling softens
            let (x, y) = ((k % 2) * w / 2 + w / 4, (k / 2) * h / 2 + h / 4);
            let px = img.get_pixel(x as u32, y as u32).0;
            for (got, want) in px.iter().zip(c) {
                assert!(
                    (*got as i32 - *want as i32).abs() <= 8,
                    "{k}: {px:?} vs {c:?}"
                );
            }
        }
    }
}
