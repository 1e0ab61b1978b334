//! The writer's pipe: frames handed over by reference arrive exactly as a copy would have them.

use std::io::Read;
use std::sync::mpsc::{channel, sync_channel};
use std::time::Duration;

use tiny_skia::Pixmap;

use super::{write_frames, FramePipe, Timing};
use crate::frame::{Canvas, FrameBuf, Picture};
use crate::paint::yuv420p_len;
use crate::theme::Rgb;

/// A picture with detail everywhere (so any misplaced byte shows).
fn picture(w: u32, h: u32, seed: u32) -> Pixmap {
    let mut p = Pixmap::new(w, h).unwrap();
    for (i, px) in p.data_mut().chunks_exact_mut(4).enumerate() {
        let i = i as u32;
        px.copy_from_slice(&[
            (i.wrapping_mul(7) ^ seed) as u8,
            (i / w * 3 + seed) as u8,
            (i % w * 5) as u8,
            255,
        ]);
    }
    p
}

/// Frame `k` of a sequence that takes every path of [`crate::frame::YuvState::convert`]: text
/// moving over a background (incremental), at rest (repeats), drawn in full, a photo drawn as
/// the base picture (moving, then still), and text over it.
fn draw(k: usize, buf: &mut FrameBuf, bg: &Pixmap, layer: &Pixmap, photo: &Picture) {
    let (w, h) = (buf.pixmap.width() as f32, buf.pixmap.height() as f32);
    let t = match k {
        0..=11 => k as f32,
        12..=17 => 12.0, // at rest
        24..=29 => 24.0, // the photo still
        _ => k as f32,
    };
    let text = |c: &mut Canvas| {
        c.layer(layer, 10.0 + t * 7.0, 20.0 + t * 3.0, 0.85);
        c.round_rect(
            [w - 80.0 - t, 30.0, 40.0, 16.0],
            3.0,
            Rgb(250, 200, 10),
            0.9,
        );
        if k == 8 {
            c.mark_all();
        }
    };
    if (18..36).contains(&k) {
        let clear = Pixmap::new(w as u32, h as u32).unwrap();
        let mut draw = |c: &mut Canvas| {
            let scale = 1.0 + t * 0.004;
            c.picture(photo, [0.0, 0.0, w, h], scale, -t * 0.7, -t * 0.4);
            if k >= 30 {
                text(c);
            }
        };
        buf.redraw(&clear, usize::MAX, 2, true, &mut draw);
        assert!(buf.base_filled, "frame {k} takes the base path");
    } else {
        buf.redraw(bg, 1, 1, false, &mut |c: &mut Canvas| text(c));
    }
}

/// Runs the writer over `frames` frames drawn into recycled buffers (as the encoder's pool does),
/// into `out`; the frames' yuv as the writer's state ends.
fn run<O: super::FrameOut>(out: &mut O, w: u32, h: u32, frames: usize) -> super::WriterStats {
    let bg = picture(w, h, 9);
    let layer = picture(120, 40, 77);
    let photo = Picture::new(picture(w + 40, h + 30, 3));
    let (tx, rx) = sync_channel::<FrameBuf>(4);
    let (recycle_tx, recycle) = channel::<FrameBuf>();
    std::thread::scope(|s| {
        s.spawn(move || {
            for k in 0..frames {
                let mut buf = recycle.try_recv().unwrap_or_else(|_| FrameBuf::new(w, h));
                draw(k, &mut buf, &bg, &layer, &photo);
                tx.send(buf).unwrap();
            }
        });
        let (stats, _lent) = write_frames(
            out,
            rx,
            recycle_tx,
            w as usize,
            h as usize,
            Timing::Constant,
        )
        .expect("writes");
        stats
    })
}

#[test]
fn frames_handed_over_by_reference_arrive_exactly_as_copied() {
    // 640×360: a frame is 345,600 bytes, more than twice a default pipe (64 KiB): spliced
    let (w, h, frames) = (640u32, 360u32, 40usize);
    let len = yuv420p_len(w as usize, h as usize);
    let mut copied = Vec::new();
    let copy_stats = run(&mut copied, w, h, frames);
    assert_eq!(copied.len(), len * frames);
    // every path was taken: full, incremental/base, repeats, base frames
    let [full, part, same, base] = copy_stats.conversions;
    assert!(
        full >= 2 && part >= 10 && same >= 8 && base == 18,
        "{:?}",
        copy_stats.conversions
    );

    // a reader that lags: it sleeps between small reads, so the pipe stays full and the writer
    // waits on it, converting each next frame while the last one's pages are still unread
    let (reader, writer) = std::io::pipe().unwrap();
    let slow = std::thread::spawn(move || {
        let mut reader = reader;
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 16 * 1024];
        loop {
            std::thread::sleep(Duration::from_micros(300));
            match reader.read(&mut chunk).unwrap() {
                0 => return got,
                n => got.extend_from_slice(&chunk[..n]),
            }
        }
    });
    let mut pipe = FramePipe::new(writer, len);
    assert!(pipe.splices(), "frames of {len} bytes are spliced");
    let stats = run(&mut pipe, w, h, frames);
    drop(pipe);
    let got = slow.join().unwrap();
    // the same repeats; two buffers take a few more full conversions (each buffer's first)
    assert_eq!(stats.conversions[2..], copy_stats.conversions[2..]);
    assert_eq!(got.len(), copied.len());
    for k in 0..frames {
        let r = k * len..(k + 1) * len;
        assert!(got[r.clone()] == copied[r], "frame {k} differs");
    }
}

#[test]
fn a_spliced_frame_is_read_from_its_memory_so_changing_it_early_shows() {
    // Why the writer never writes into the buffer it lent last: the pipe holds references to
    // the frame's pages, and the reader sees them as they are when it reads.
    let len = 256 * 1024;
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut pipe = FramePipe::new(writer, len);
    assert!(pipe.splices());
    let (changed_tx, changed) = channel::<()>();
    let tail = 32 * 1024;
    let read = std::thread::spawn(move || {
        let mut head = vec![0u8; len - tail];
        reader.read_exact(&mut head).unwrap();
        // the rest of the frame is in the pipe now; the writer changes its memory meanwhile
        changed
            .recv_timeout(Duration::from_secs(20))
            .expect("the writer went on");
        let mut rest = vec![0u8; tail];
        reader.read_exact(&mut rest).unwrap();
        (head, rest)
    });
    let mut frame = vec![1u8; len];
    assert!(pipe.frame(&frame).unwrap(), "handed over by reference");
    frame.fill(2);
    changed_tx.send(()).unwrap();
    let (head, rest) = read.join().unwrap();
    drop(pipe);
    assert!(head.iter().all(|&b| b == 1));
    assert!(
        rest.iter().all(|&b| b == 2),
        "the unread tail shows the change: it was never copied"
    );
    // copied, the same frame arrives as it was written
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut pipe = FramePipe::copying(writer);
    let read = std::thread::spawn(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        all
    });
    frame.fill(3);
    assert!(!pipe.frame(&frame).unwrap());
    frame.fill(4);
    drop(pipe);
    assert!(read.join().unwrap().iter().all(|&b| b == 3));
}
