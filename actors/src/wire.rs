//! The wire protocol between a coordinator and its render workers: the only messages of this
//! crate that cross nodes.
//!
//! Each enum here derives `RactorClusterMessage`; every other message enum of the crate derives
//! the local-only `RactorMessage`. A payload is a plain serde struct made `BytesConvertable` by
//! `wire_payload!`: MessagePack with field names (`rmp-serde`), so the spec's tagged enums and
//! optional fields survive the trip, and a payload that does not decode is refused by the
//! receiving node (the derived code turns the decoder's panic into a downcast error) instead of
//! reaching an actor half-read.
//!
//! Nothing here holds an `ActorRef`, an `Arc<dyn …>` or a path of the coordinator: a finished
//! render is described as [`Artifact`]s — files the coordinator fetches from the worker in
//! [`Chunk`]s well below ractor_cluster's 16 MiB frame cap, each checked against its SHA-256, or
//! keys in object storage the worker uploaded to. Every message names its job attempt
//! ([`AttemptId`]), so a message of an older attempt (a node that came back late) is recognised
//! and dropped: results are fenced by attempt number.
//!
//! ```text
//! coordinator ──WorkerMsg::Render / Cancel / Release / Status(rpc) / FetchChunk(rpc)──► worker
//! coordinator ◄──────── CoordinatorMsg::Progress / Finished / Heartbeat ─────────────── worker
//! ```

use ractor::{BytesConvertable, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use serde::{Deserialize, Serialize};
use vidbuilder_domain::job::JobId;
use vidbuilder_domain::ports::{RenderFailure, RenderProgress};
use vidbuilder_domain::spec::{AspectRatio, VideoSpec};

/// Bumped whenever a payload changes shape; a worker of another version is not sent jobs.
pub const WIRE_VERSION: u32 = 2;

/// The most bytes one [`Chunk`] carries (ractor_cluster refuses frames over 16 MiB).
pub const MAX_CHUNK_BYTES: u32 = 1 << 20;

/// Implements `BytesConvertable` for serde payloads: MessagePack with field names.
macro_rules! wire_payload {
    ($($ty:ty),+ $(,)?) => {$(
        impl BytesConvertable for $ty {
            fn into_bytes(self) -> Vec<u8> {
                rmp_serde::to_vec_named(&self).expect("wire payloads always encode")
            }
            fn from_bytes(bytes: Vec<u8>) -> Self {
                // A panic here is caught by the derived decoder and refused as a bad message.
                rmp_serde::from_slice(&bytes).unwrap_or_else(|e| {
                    panic!(concat!("malformed ", stringify!($ty), " on the wire: {}"), e)
                })
            }
        }
    )+};
}

/// One attempt of one job: the fence every message carries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    /// The job the attempt belongs to.
    pub job_id: JobId,
    /// 1 for the first attempt; a message of any other attempt than the job's current one is stale.
    pub attempt: u32,
}

/// Where a worker puts a finished render when the coordinator has object storage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTarget {
    /// The key of the landscape video.
    pub video_key: String,
    /// The key of the vertical reel, when the spec asks for one.
    pub reel_key: Option<String>,
    /// The keys of the other aspect ratios' videos, in the spec's order.
    #[serde(default)]
    pub extra_keys: Vec<(AspectRatio, String)>,
}

/// Render one attempt of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderAssignment {
    /// The attempt to render.
    pub attempt: AttemptId,
    /// The validated spec: the worker renders exactly this.
    pub spec: VideoSpec,
    /// The coordinator's catalog version (themes, tracks, fonts); a worker with another version
    /// refuses the job rather than render it differently.
    pub catalog_version: String,
    /// `Some` when the worker uploads to object storage itself; `None`: the coordinator fetches
    /// the files in chunks.
    pub upload: Option<Box<UploadTarget>>,
}

/// Progress of a remote attempt, throttled at the source like a local one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptProgress {
    /// The attempt that reports.
    pub attempt: AttemptId,
    /// Its latest progress.
    pub progress: RenderProgress,
}

/// Which file of a render an artifact is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArtifactKind {
    /// The landscape MP4.
    Video,
    /// The vertical reel MP4.
    Reel,
    /// The video's JPEG poster frame.
    Poster,
    /// The reel's JPEG poster frame.
    ReelPoster,
    /// The video of another aspect ratio.
    Extra(AspectRatio),
    /// Its JPEG poster frame.
    ExtraPoster(AspectRatio),
}

/// Where an artifact can be had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "at", rename_all = "kebab-case")]
pub enum ArtifactLocation {
    /// On the worker that rendered it: fetch it with [`WorkerMsg::FetchChunk`].
    Worker {
        /// The worker's node name.
        node: String,
    },
    /// In object storage under this key.
    Object {
        /// The object key.
        key: String,
    },
}

/// One finished file of a render, as the coordinator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Which file of the render it is.
    pub kind: ArtifactKind,
    /// Its file name (no directory), as the renderer named it: the coordinator stores it under
    /// this name in its own videos directory.
    pub name: String,
    /// Size of the file, in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the whole file: checked before the job may complete.
    pub sha256: String,
    /// Where the coordinator gets it.
    pub location: ArtifactLocation,
}

/// What a remote render made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedAttempt {
    /// The files the render made.
    pub artifacts: Vec<Artifact>,
    /// Length in seconds of the video.
    pub duration_secs: f64,
    /// Width of the landscape video, in pixels.
    pub width: u32,
    /// Height of the landscape video, in pixels.
    pub height: u32,
    /// Frames in the landscape video.
    pub frames: u64,
}

/// A remote attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptFinished {
    /// The attempt that ended.
    pub attempt: AttemptId,
    /// The node that rendered it.
    pub node: String,
    /// What it made, or why it made nothing.
    pub result: Result<RenderedAttempt, RenderFailure>,
}

/// A worker's state: sent as a heartbeat and as the answer to [`WorkerMsg::Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatus {
    /// The worker's node name.
    pub node: String,
    /// The wire version it speaks ([`WIRE_VERSION`]).
    pub wire_version: u32,
    /// Its catalog version (themes, tracks, fonts); see [`RenderAssignment::catalog_version`].
    pub catalog_version: String,
    /// Renders it runs at once.
    pub capacity: u32,
    /// The attempts it is rendering now.
    pub running: Vec<AttemptId>,
    /// The `seq` of the [`StatusRequest`] this answers; 0 in a heartbeat nobody asked for.
    pub seq: u64,
}

/// A worker's answer to [`WorkerMsg::Render`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderAck {
    /// `None`: the worker started the attempt; `Some(why)`: it refused it (another catalog
    /// version, shutting down) and the coordinator places it elsewhere.
    pub refused: Option<String>,
}

/// The coordinator's receipt of a [`CoordinatorMsg::Finished`]: the worker re-sends the result
/// until it gets one (a message may be lost while a link reconnects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The attempt whose result was received.
    pub attempt: u32,
}

/// A status request; its `seq` comes back in the [`WorkerStatus`], so the coordinator can tell a
/// late answer from the current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// The request's sequence number.
    pub seq: u64,
}

/// Ask for `len` bytes of an artifact from `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRequest {
    /// The attempt whose file is wanted.
    pub attempt: AttemptId,
    /// Which of its files.
    pub kind: ArtifactKind,
    /// The byte offset to read from.
    pub offset: u64,
    /// At most [`MAX_CHUNK_BYTES`].
    pub len: u32,
}

/// Bytes of an artifact; an empty `data` with `eof` ends the file, an `error` refuses the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The byte offset of `data` in the file.
    pub offset: u64,
    /// The bytes read (at most [`MAX_CHUNK_BYTES`]).
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// True when the file ends with this chunk.
    pub eof: bool,
    /// Why the request was refused; `None` when it was served.
    pub error: Option<String>,
}

wire_payload!(
    AttemptId,
    RenderAssignment,
    RenderAck,
    Receipt,
    AttemptProgress,
    AttemptFinished,
    WorkerStatus,
    StatusRequest,
    ChunkRequest,
    Chunk,
);

/// What a coordinator sends to a worker node's render host.
#[derive(RactorClusterMessage)]
pub enum WorkerMsg {
    /// Render this attempt: the worker acknowledges at once, then sends `Progress` and `Finished`.
    #[rpc]
    Render(RenderAssignment, RpcReplyPort<RenderAck>),
    /// Stop this attempt: kill its encoder, remove its partial files.
    Cancel(AttemptId),
    /// The coordinator has the attempt's files (or gave up on them): the worker may delete them.
    Release(AttemptId),
    /// The worker's state now (a heartbeat the coordinator asks for, with a deadline).
    #[rpc]
    Status(StatusRequest, RpcReplyPort<WorkerStatus>),
    /// A piece of a finished artifact.
    #[rpc]
    FetchChunk(ChunkRequest, RpcReplyPort<Chunk>),
}

/// What a worker sends to the coordinator's dispatcher.
#[derive(RactorClusterMessage)]
pub enum CoordinatorMsg {
    /// Progress of an attempt.
    Progress(AttemptProgress),
    /// An attempt ended; the coordinator answers with a [`Receipt`] (the worker re-sends until
    /// it has one).
    #[rpc]
    Finished(AttemptFinished, RpcReplyPort<Receipt>),
    /// The worker is alive, with its free capacity (sent on an interval).
    Heartbeat(WorkerStatus),
}

#[cfg(test)]
mod tests {
    use ractor::message::SerializedMessage;
    use ractor::Message;
    use vidbuilder_domain::ports::{RenderFailureKind, RenderPhase};
    use vidbuilder_domain::spec::{
        validate_spec, Background, Quality, SceneContent, ValidationContext,
    };

    use super::*;

    fn attempt() -> AttemptId {
        AttemptId {
            job_id: JobId::parse("0123456789abcdef").unwrap(),
            attempt: 3,
        }
    }

    /// A spec with tagged enums, optional fields and floats: what must survive the trip.
    fn spec() -> VideoSpec {
        let body = serde_json::json!({
            "theme": "corporate", "quality": "720p", "generateReels": true,
            "music": {"trackId": "corp-1", "volume": 0.3},
            "metadata": {"orderId": "A-1", "n": -3, "f": 0.25, "big": 18446744073709551615u64,
                         "list": [true, null, "x"], "o": {}},
            "scenes": [
                {"type": "hero-title", "duration": 2.5,
                 "content": {"title": "Hello **world**", "subtitle": "sub"},
                 "background": {"gradient": ["#112233", "#445566"], "angle": 45},
                 "transition": {"type": "fade", "duration": 0.4}},
                {"type": "bullet-list", "duration": 3,
                 "content": {"title": "Points", "items": ["one", "two"]}},
                {"type": "image", "duration": 2,
                 "content": {"src": "https://example.com/a.png", "caption": "c"}}
            ]
        });
        let mut ctx = ValidationContext::default();
        ctx.themes.insert("corporate".into());
        ctx.tracks.insert("corp-1".into());
        ctx.default_theme = "corporate".into();
        let spec = validate_spec(&body, &ctx).expect("the test spec is valid");
        assert!(matches!(
            spec.scenes[0].background,
            Some(Background::Gradient { .. })
        ));
        assert!(matches!(spec.scenes[2].content, SceneContent::Image { .. }));
        assert_eq!(spec.quality, Quality::P720);
        spec
    }

    fn rendered() -> RenderedAttempt {
        RenderedAttempt {
            artifacts: vec![
                Artifact {
                    kind: ArtifactKind::Video,
                    name: "0123456789abcdef.mp4".into(),
                    bytes: 123_456,
                    sha256: "ab".repeat(32),
                    location: ArtifactLocation::Worker {
                        node: "worker-1".into(),
                    },
                },
                Artifact {
                    kind: ArtifactKind::Reel,
                    name: "0123456789abcdef_reel.mp4".into(),
                    bytes: 99,
                    sha256: "cd".repeat(32),
                    location: ArtifactLocation::Object {
                        key: "videos/2026-12-02/reels/0123456789abcdef.mp4".into(),
                    },
                },
                Artifact {
                    kind: ArtifactKind::Extra(AspectRatio::Portrait),
                    name: "0123456789abcdef-4x5.mp4".into(),
                    bytes: 98,
                    sha256: "ef".repeat(32),
                    location: ArtifactLocation::Worker {
                        node: "worker-1".into(),
                    },
                },
            ],
            duration_secs: 7.5,
            width: 1280,
            height: 720,
            frames: 225,
        }
    }

    fn status() -> WorkerStatus {
        WorkerStatus {
            node: "worker-1".into(),
            wire_version: WIRE_VERSION,
            catalog_version: "sha256:0011".into(),
            capacity: 2,
            running: vec![attempt()],
            seq: 9,
        }
    }

    /// A cast variant through `Message::serialize`/`deserialize`, as a node session sends it.
    fn cast_round_trip<M: Message>(msg: M) -> (String, M) {
        let ser = msg.serialize().expect("a cluster message serialises");
        let SerializedMessage::Cast { variant, args, .. } = ser else {
            panic!("a cast variant serialises as a cast");
        };
        let back = M::deserialize(SerializedMessage::Cast {
            variant: variant.clone(),
            args,
            metadata: None,
        })
        .unwrap_or_else(|_| panic!("{variant} deserialises"));
        (variant, back)
    }

    /// An rpc variant through the derived codec: its reply port becomes a port of bytes.
    fn call_round_trip<M: Message>(msg: M) -> M {
        let SerializedMessage::Call {
            variant,
            args,
            reply,
            ..
        } = msg.serialize().expect("serialises")
        else {
            panic!("an rpc variant serialises as a call");
        };
        M::deserialize(SerializedMessage::Call {
            variant,
            args,
            reply,
            metadata: None,
        })
        .unwrap_or_else(|_| panic!("deserialises"))
    }

    fn round_trip<T: BytesConvertable + Clone + PartialEq + std::fmt::Debug>(v: T) {
        assert_eq!(T::from_bytes(v.clone().into_bytes()), v);
    }

    #[test]
    fn every_payload_round_trips_through_bytes() {
        round_trip(attempt());
        round_trip(RenderAssignment {
            attempt: attempt(),
            spec: spec(),
            catalog_version: "sha256:0011".into(),
            upload: Some(Box::new(UploadTarget {
                video_key: "videos/2026-12-02/standard/0123456789abcdef.mp4".into(),
                reel_key: None,
                extra_keys: vec![(
                    AspectRatio::Square,
                    "videos/2026-12-02/1x1/0123456789abcdef.mp4".into(),
                )],
            })),
        });
        round_trip(AttemptProgress {
            attempt: attempt(),
            progress: RenderProgress {
                phase: RenderPhase::Encoding,
                frames_done: 10,
                frames_total: 20,
            },
        });
        for result in [
            Ok(rendered()),
            Err(RenderFailure::new(
                RenderFailureKind::Encoder,
                "ffmpeg exited with 1",
            )),
        ] {
            round_trip(AttemptFinished {
                attempt: attempt(),
                node: "worker-1".into(),
                result,
            });
        }
        round_trip(status());
        round_trip(RenderAck { refused: None });
        round_trip(RenderAck {
            refused: Some("catalog sha256:1 here, sha256:2 asked".into()),
        });
        round_trip(Receipt { attempt: 4 });
        round_trip(StatusRequest { seq: 7 });
        round_trip(ChunkRequest {
            attempt: attempt(),
            kind: ArtifactKind::Poster,
            offset: 1 << 33,
            len: MAX_CHUNK_BYTES,
        });
        round_trip(Chunk {
            offset: 5,
            data: (0..=255u8).cycle().take(70_000).collect(),
            eof: false,
            error: None,
        });
    }

    #[test]
    fn a_full_chunk_stays_far_below_the_frame_cap() {
        let chunk = Chunk {
            offset: u64::MAX,
            data: vec![0xff; MAX_CHUNK_BYTES as usize],
            eof: true,
            error: Some("x".repeat(200)),
        };
        // serde_bytes keeps a chunk at its size plus a few bytes of framing.
        let bytes = chunk.into_bytes().len();
        assert!(bytes < MAX_CHUNK_BYTES as usize + 512, "{bytes}");
        assert!(bytes < 16 * 1024 * 1024 / 8);
    }

    #[test]
    fn cast_messages_round_trip_through_the_derived_codec() {
        let (_, back) = cast_round_trip(WorkerMsg::Cancel(attempt()));
        assert!(matches!(back, WorkerMsg::Cancel(a) if a == attempt()));
        let (_, back) = cast_round_trip(WorkerMsg::Release(attempt()));
        assert!(matches!(back, WorkerMsg::Release(a) if a == attempt()));
        let progress = AttemptProgress {
            attempt: attempt(),
            progress: RenderProgress {
                phase: RenderPhase::Rendering,
                frames_done: 1,
                frames_total: 2,
            },
        };
        let (_, back) = cast_round_trip(CoordinatorMsg::Progress(progress.clone()));
        assert!(matches!(back, CoordinatorMsg::Progress(p) if p == progress));
        let (_, back) = cast_round_trip(CoordinatorMsg::Heartbeat(status()));
        assert!(matches!(back, CoordinatorMsg::Heartbeat(s) if s == status()));
    }

    #[tokio::test]
    async fn rpc_messages_carry_their_reply_across_the_codec() {
        // Render: the assignment crosses, the acknowledgement comes back.
        let (tx, rx) = ractor::concurrency::oneshot();
        let assignment = RenderAssignment {
            attempt: attempt(),
            spec: spec(),
            catalog_version: "v".into(),
            upload: None,
        };
        let WorkerMsg::Render(got, port) =
            call_round_trip(WorkerMsg::Render(assignment.clone(), tx.into()))
        else {
            panic!("wrong variant");
        };
        assert_eq!(got, assignment);
        port.send(RenderAck { refused: None }).unwrap();
        assert_eq!(rx.await.unwrap(), RenderAck { refused: None });

        // Finished: the result crosses, the receipt comes back.
        let (tx, rx) = ractor::concurrency::oneshot();
        let finished = AttemptFinished {
            attempt: attempt(),
            node: "w".into(),
            result: Ok(rendered()),
        };
        let CoordinatorMsg::Finished(got, port) =
            call_round_trip(CoordinatorMsg::Finished(finished.clone(), tx.into()))
        else {
            panic!("wrong variant");
        };
        assert_eq!(got, finished);
        port.send(Receipt { attempt: 3 }).unwrap();
        assert_eq!(rx.await.unwrap(), Receipt { attempt: 3 });

        // Status: the request crosses as bytes, the answer comes back through the byte port.
        let (tx, rx) = ractor::concurrency::oneshot();
        let msg = WorkerMsg::Status(StatusRequest { seq: 9 }, tx.into());
        let back = call_round_trip(msg);
        let WorkerMsg::Status(req, port) = back else {
            panic!("wrong variant");
        };
        assert_eq!(req.seq, 9);
        port.send(status()).unwrap();
        assert_eq!(rx.await.unwrap(), status());

        let (tx, rx) = ractor::concurrency::oneshot();
        let ask = ChunkRequest {
            attempt: attempt(),
            kind: ArtifactKind::Video,
            offset: 0,
            len: 4,
        };
        let msg = WorkerMsg::FetchChunk(ask.clone(), tx.into());
        let back = call_round_trip(msg);
        let WorkerMsg::FetchChunk(got, port) = back else {
            panic!("wrong variant");
        };
        assert_eq!(got, ask);
        let chunk = Chunk {
            offset: 0,
            data: vec![1, 2, 3, 4],
            eof: true,
            error: None,
        };
        port.send(chunk.clone()).unwrap();
        assert_eq!(rx.await.unwrap(), chunk);
    }

    #[test]
    fn garbage_is_refused_not_delivered() {
        let refused = WorkerMsg::deserialize(SerializedMessage::Cast {
            variant: "Render".into(),
            args: vec![0, 0, 0, 0, 0, 0, 0, 3, 0xc1, 0xc1, 0xc1],
            metadata: None,
        });
        assert!(refused.is_err());
        let unknown = CoordinatorMsg::deserialize(SerializedMessage::Cast {
            variant: "NoSuchVariant".into(),
            args: Vec::new(),
            metadata: None,
        });
        assert!(unknown.is_err());
    }
}
