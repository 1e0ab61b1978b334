//! Just enough Matroska to hand ffmpeg raw yuv420p frames with their own timestamps: the pipe
//! format of a variable-frame-rate render (`frameRate: "variable"`), where a frame that repeats
//! the previous one is left out and the previous one lasts longer.
//!
//! Raw video on a pipe (`-f rawvideo`) has no timestamps: every frame lasts `1/fps`. A Matroska
//! stream does: one track (`V_UNCOMPRESSED`, colour space `I420`, as ffmpeg's own muxer writes
//! raw yuv420p), a segment of unknown size (a stream), and one cluster per frame holding one
//! keyframe `SimpleBlock` at the frame's time in milliseconds. ffmpeg's encoder time base is
//! `1/fps` (from the track's default duration), so a frame's millisecond time rounds back to
//! its exact frame number. EBML as in RFC 8794, Matroska as in RFC 9559.

/// EBML element ids (their bytes, length marker included).
mod id {
    pub(super) const EBML: &[u8] = &[0x1A, 0x45, 0xDF, 0xA3];
    pub(super) const EBML_VERSION: &[u8] = &[0x42, 0x86];
    pub(super) const EBML_READ_VERSION: &[u8] = &[0x42, 0xF7];
    pub(super) const EBML_MAX_ID_LENGTH: &[u8] = &[0x42, 0xF2];
    pub(super) const EBML_MAX_SIZE_LENGTH: &[u8] = &[0x42, 0xF3];
    pub(super) const DOC_TYPE: &[u8] = &[0x42, 0x82];
    pub(super) const DOC_TYPE_VERSION: &[u8] = &[0x42, 0x87];
    pub(super) const DOC_TYPE_READ_VERSION: &[u8] = &[0x42, 0x85];
    pub(super) const SEGMENT: &[u8] = &[0x18, 0x53, 0x80, 0x67];
    pub(super) const INFO: &[u8] = &[0x15, 0x49, 0xA9, 0x66];
    pub(super) const TIMESTAMP_SCALE: &[u8] = &[0x2A, 0xD7, 0xB1];
    pub(super) const MUXING_APP: &[u8] = &[0x4D, 0x80];
    pub(super) const WRITING_APP: &[u8] = &[0x57, 0x41];
    pub(super) const TRACKS: &[u8] = &[0x16, 0x54, 0xAE, 0x6B];
    pub(super) const TRACK_ENTRY: &[u8] = &[0xAE];
    pub(super) const TRACK_NUMBER: &[u8] = &[0xD7];
    pub(super) const TRACK_UID: &[u8] = &[0x73, 0xC5];
    pub(super) const TRACK_TYPE: &[u8] = &[0x83];
    pub(super) const FLAG_LACING: &[u8] = &[0x9C];
    pub(super) const CODEC_ID: &[u8] = &[0x86];
    pub(super) const DEFAULT_DURATION: &[u8] = &[0x23, 0xE3, 0x83];
    pub(super) const VIDEO: &[u8] = &[0xE0];
    pub(super) const PIXEL_WIDTH: &[u8] = &[0xB0];
    pub(super) const PIXEL_HEIGHT: &[u8] = &[0xBA];
    pub(super) const COLOUR_SPACE: &[u8] = &[0x2E, 0xB5, 0x24];
    pub(super) const CLUSTER: &[u8] = &[0x1F, 0x43, 0xB6, 0x75];
    pub(super) const TIMESTAMP: &[u8] = &[0xE7];
    pub(super) const SIMPLE_BLOCK: &[u8] = &[0xA3];
}

/// An element size that means "unknown": the segment of a stream ends where the stream does.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// A SimpleBlock's header: track number 1 (as a 1-byte vint), a 0 ms offset from its cluster,
/// and the keyframe flag (every raw frame stands alone).
const BLOCK_HEADER: [u8; 4] = [0x81, 0x00, 0x00, 0x80];

/// `n` as an EBML variable-size integer, in the fewest bytes (all ones is reserved for
/// "unknown", so a value needing `7·k` bits takes `k + 1` bytes).
fn vint(n: u64, out: &mut Vec<u8>) {
    let len = (1..=8)
        .find(|&l| n < (1u64 << (7 * l)) - 1)
        .expect("sizes below 2^56 - 1");
    let marked = n | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn element(id: &[u8], payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(id);
    vint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

fn uint(id: &[u8], v: u64, out: &mut Vec<u8>) {
    let bytes = v.to_be_bytes();
    let skip = (v.leading_zeros() as usize / 8).min(7);
    element(id, &bytes[skip..], out);
}

/// Builds an element from the children written by `f`.
fn nested(id: &[u8], out: &mut Vec<u8>, f: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    f(&mut inner);
    element(id, &inner, out);
}

/// The stream's start: the EBML header, the segment (of unknown size), its info and its one
/// raw yuv420p video track of `width × height` at `fps`.
pub fn header(width: u32, height: u32, fps: u32) -> Vec<u8> {
    let mut out = Vec::new();
    nested(id::EBML, &mut out, |e| {
        uint(id::EBML_VERSION, 1, e);
        uint(id::EBML_READ_VERSION, 1, e);
        uint(id::EBML_MAX_ID_LENGTH, 4, e);
        uint(id::EBML_MAX_SIZE_LENGTH, 8, e);
        element(id::DOC_TYPE, b"matroska", e);
        uint(id::DOC_TYPE_VERSION, 4, e);
        uint(id::DOC_TYPE_READ_VERSION, 2, e);
    });
    out.extend_from_slice(id::SEGMENT);
    out.extend_from_slice(&UNKNOWN_SIZE);
    nested(id::INFO, &mut out, |e| {
        uint(id::TIMESTAMP_SCALE, 1_000_000, e); // timestamps in milliseconds
        element(id::MUXING_APP, b"vidbuilder", e);
        element(id::WRITING_APP, b"vidbuilder", e);
    });
    nested(id::TRACKS, &mut out, |e| {
        nested(id::TRACK_ENTRY, e, |t| {
            uint(id::TRACK_NUMBER, 1, t);
            uint(id::TRACK_UID, 1, t);
            uint(id::TRACK_TYPE, 1, t); // video
            uint(id::FLAG_LACING, 0, t);
            element(id::CODEC_ID, b"V_UNCOMPRESSED", t);
            uint(
                id::DEFAULT_DURATION,
                (1e9 / f64::from(fps.max(1))).round() as u64,
                t,
            );
            nested(id::VIDEO, t, |v| {
                uint(id::PIXEL_WIDTH, u64::from(width), v);
                uint(id::PIXEL_HEIGHT, u64::from(height), v);
                element(id::COLOUR_SPACE, b"I420", v);
            });
        });
    });
    out
}

/// The milliseconds at which frame `n` starts at `fps` (rounded; ffmpeg rounds back to `n`).
pub fn frame_millis(n: u64, fps: u32) -> u64 {
    (n * 1000 + u64::from(fps) / 2) / u64::from(fps.max(1))
}

/// The bytes that go before a frame of `len` bytes shown from frame number `n` at `fps`: a
/// cluster at the frame's time holding one SimpleBlock, whose payload (the frame) follows.
pub fn frame_prefix(n: u64, fps: u32, len: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut timestamp = Vec::with_capacity(10);
    uint(id::TIMESTAMP, frame_millis(n, fps), &mut timestamp);
    let mut block_size = Vec::with_capacity(8);
    let block_len = BLOCK_HEADER.len() + len;
    vint(block_len as u64, &mut block_size);
    let cluster_len = timestamp.len() + id::SIMPLE_BLOCK.len() + block_size.len() + block_len;
    out.extend_from_slice(id::CLUSTER);
    vint(cluster_len as u64, out);
    out.extend_from_slice(&timestamp);
    out.extend_from_slice(id::SIMPLE_BLOCK);
    out.extend_from_slice(&block_size);
    out.extend_from_slice(&BLOCK_HEADER);
}

/// Which frames a variable-frame-rate stream sends: a frame that differs from the previous one,
/// the first, the last, and a repeat once a second has passed since the last one sent (players
/// and editors seek to, and cut at, frames; none is more than a second away).
#[derive(Debug, Clone, Copy)]
pub struct HoldPolicy {
    fps: u32,
    last_sent: Option<u64>,
}

impl HoldPolicy {
    /// A policy for a stream at `fps`.
    pub fn new(fps: u32) -> HoldPolicy {
        HoldPolicy {
            fps: fps.max(1),
            last_sent: None,
        }
    }

    /// Whether frame `n` (`repeat`: identical to frame `n - 1`) goes to the encoder. Frames are
    /// asked about in order; the answer is remembered.
    pub fn send(&mut self, n: u64, repeat: bool) -> bool {
        let send = match self.last_sent {
            None => true,
            Some(last) => !repeat || n - last >= u64::from(self.fps),
        };
        if send {
            self.last_sent = Some(n);
        }
        send
    }

    /// Whether the stream's last frame, `last`, must still be sent (it repeated, and was held
    /// back): the video must last to its end.
    pub fn finish(&self, last: u64) -> bool {
        self.last_sent.is_some_and(|l| l < last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vints_take_the_fewest_bytes_and_avoid_the_reserved_value() {
        let enc = |n| {
            let mut v = Vec::new();
            vint(n, &mut v);
            v
        };
        assert_eq!(enc(0), [0x80]);
        assert_eq!(enc(126), [0xFE]);
        assert_eq!(enc(127), [0x40, 0x7F]); // 0xFF would mean "unknown"
        assert_eq!(enc(1000), [0x43, 0xE8]);
        assert_eq!(enc(3_110_400 + 4), [0x10, 0x2F, 0x76, 0x04]);
    }

    #[test]
    fn frame_times_round_back_to_their_frame_number() {
        for fps in [24u32, 25, 30, 60] {
            for n in 0..100_000u64 {
                let ms = frame_millis(n, fps);
                let back = (ms as f64 * f64::from(fps) / 1000.0).round() as u64;
                assert_eq!(back, n, "frame {n} at {fps} fps ({ms} ms)");
            }
        }
    }

    #[test]
    fn a_prefix_sizes_its_cluster_and_block_for_the_payload() {
        let mut p = Vec::new();
        frame_prefix(45, 30, 1000, &mut p);
        // cluster id, size 4+1+2+4+1000 = 1011 as a 2-byte vint, timestamp 1500 ms
        assert_eq!(&p[..4], id::CLUSTER);
        assert_eq!(&p[4..6], [0x43, 0xF3]);
        assert_eq!(&p[6..10], [0xE7, 0x82, 0x05, 0xDC]);
        assert_eq!(&p[10..13], [0xA3, 0x43, 0xEC]); // block of 4 + 1000 bytes
        assert_eq!(&p[13..], BLOCK_HEADER);
    }

    #[test]
    fn holds_send_once_a_second_and_the_last_frame() {
        let mut h = HoldPolicy::new(30);
        let mut sent = Vec::new();
        // frames 0..10 move, 10..100 hold still
        for n in 0..100 {
            if h.send(n, n >= 10) {
                sent.push(n);
            }
        }
        assert_eq!(sent, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 39, 69, 99]);
        assert!(!h.finish(99), "99 was sent");
        let mut h = HoldPolicy::new(30);
        for n in 0..50 {
            h.send(n, n >= 1);
        }
        assert!(h.finish(49), "the held last frame must still be sent");
    }
}
