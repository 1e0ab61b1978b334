//! Moving a finished render from a worker to the coordinator without a shared filesystem: each
//! file in [`MAX_CHUNK_BYTES`] pieces, each piece one request/answer (the answer is its
//! acknowledgement), the whole file checked against the SHA-256 the worker announced before it
//! is moved into place.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;
use sha2::{Digest, Sha256};
use vidbuilder_domain::ports::{ExtraOutput, RenderOutput};

use crate::ports::Transfer;
use crate::wire::{
    Artifact, ArtifactKind, ArtifactLocation, AttemptId, ChunkRequest, RenderedAttempt, WorkerMsg,
    MAX_CHUNK_BYTES,
};

/// A chunk request that times out is asked again this many times before the fetch fails.
const CHUNK_TRIES: u32 = 3;

/// Whether `name` is a plain file name of the job's (no directory, not hidden).
pub fn safe_name(name: &str, attempt: &AttemptId) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
        && name.starts_with(attempt.job_id.as_str())
}

/// The hex form of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fetches every artifact of `rendered` that is on `worker` into `dir` and describes the render
/// as a [`RenderOutput`] under `dir`, with the keys of the artifacts already in object storage
/// (the landscape video first; their paths in the output are where they would be, not files).
/// `progress(done, total)` is called after each chunk.
pub async fn fetch_render(
    worker: &ActorRef<WorkerMsg>,
    attempt: &AttemptId,
    rendered: &RenderedAttempt,
    dir: &Path,
    files: &Arc<dyn Transfer>,
    rpc_timeout: Duration,
    progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
) -> Result<(RenderOutput, Vec<String>), String> {
    let total: u64 = rendered
        .artifacts
        .iter()
        .filter(|a| matches!(a.location, ArtifactLocation::Worker { .. }))
        .map(|a| a.bytes)
        .sum();
    let mut keys: Vec<(ArtifactKind, String)> = Vec::new();
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // The files are fetched at once, each in its own task.
    let mut fetches = tokio::task::JoinSet::new();
    let mut out = RenderOutput {
        video: PathBuf::new(),
        reel: None,
        duration_secs: rendered.duration_secs,
        width: rendered.width,
        height: rendered.height,
        frames: rendered.frames,
        poster: None,
        reel_poster: None,
        extras: Vec::new(),
    };
    let mut have_video = false;
    let mut posters = Vec::new();
    for artifact in &rendered.artifacts {
        if !safe_name(&artifact.name, attempt) {
            return Err(format!("refused the file name {:?}", artifact.name));
        }
        let path = dir.join(&artifact.name);
        if let ArtifactLocation::Object { key } = &artifact.location {
            if !matches!(
                artifact.kind,
                ArtifactKind::Video | ArtifactKind::Reel | ArtifactKind::Extra(_)
            ) {
                return Err(format!("{} was stored, not sent", artifact.name));
            }
            keys.push((artifact.kind, key.clone()));
        } else {
            let (worker, attempt, artifact) = (worker.clone(), attempt.clone(), artifact.clone());
            let (path, files) = (path.clone(), files.clone());
            let (done, progress) = (done.clone(), progress.clone());
            fetches.spawn(async move {
                fetch_one(
                    &worker,
                    &attempt,
                    &artifact,
                    &path,
                    &files,
                    rpc_timeout,
                    |n| {
                        let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
                        progress(d, total);
                    },
                )
                .await
            });
        }
        match artifact.kind {
            ArtifactKind::Video => {
                out.video = path;
                have_video = true;
            }
            ArtifactKind::Reel => out.reel = Some(path),
            ArtifactKind::Poster => out.poster = Some(path),
            ArtifactKind::ReelPoster => out.reel_poster = Some(path),
            ArtifactKind::Extra(ratio) => out.extras.push(ExtraOutput {
                ratio,
                video: path,
                poster: None,
            }),
            ArtifactKind::ExtraPoster(_) => posters.push((artifact.kind, path)),
        }
    }
    while let Some(fetched) = fetches.join_next().await {
        fetched.map_err(|e| format!("a fetch task failed: {e}"))??;
    }
    if !have_video {
        return Err("the render has no video".into());
    }
    for (kind, path) in posters {
        let ArtifactKind::ExtraPoster(ratio) = kind else {
            continue;
        };
        match out.extras.iter_mut().find(|e| e.ratio == ratio) {
            Some(e) => e.poster = Some(path),
            None => return Err(format!("a poster of {} without its video", ratio.as_str())),
        }
    }
    // The main video's key first, then the reel's, then the other ratios' in the spec's order,
    // as the job's result lists its objects; either every video was stored or none.
    keys.sort_by_key(|(k, _)| match k {
        ArtifactKind::Video => 0,
        ArtifactKind::Reel => 1,
        _ => 2,
    });
    let videos = 1 + out.reel.is_some() as usize + out.extras.len();
    if !keys.is_empty() && keys.len() != videos {
        return Err(format!(
            "{} of the render's {videos} videos were stored by the worker: all or none",
            keys.len()
        ));
    }
    Ok((out, keys.into_iter().map(|(_, k)| k).collect()))
}

/// Fetches one artifact to `path` (through a partial file), checking size and SHA-256.
async fn fetch_one(
    worker: &ActorRef<WorkerMsg>,
    attempt: &AttemptId,
    artifact: &Artifact,
    path: &Path,
    files: &Arc<dyn Transfer>,
    rpc_timeout: Duration,
    mut on_chunk: impl FnMut(u64),
) -> Result<(), String> {
    let name = &artifact.name;
    let partial = path.with_file_name(format!(".{name}.partial.fetch"));
    let mut hasher = Sha256::new();
    let mut offset = 0u64;
    loop {
        let ask = ChunkRequest {
            attempt: attempt.clone(),
            kind: artifact.kind,
            offset,
            len: MAX_CHUNK_BYTES,
        };
        let chunk = ask_chunk(worker, ask, rpc_timeout).await?;
        if let Some(e) = chunk.error {
            return Err(format!("the worker could not send {name}: {e}"));
        }
        if chunk.offset != offset || chunk.data.len() > MAX_CHUNK_BYTES as usize {
            return Err(format!("the worker sent a wrong piece of {name}"));
        }
        let n = chunk.data.len() as u64;
        if offset + n > artifact.bytes {
            return Err(format!("{name} is longer than announced"));
        }
        hasher.update(&chunk.data);
        let (f, p, data) = (files.clone(), partial.clone(), chunk.data);
        tokio::task::spawn_blocking(move || f.write_chunk(&p, offset, &data))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("writing {name}: {e}"))?;
        offset += n;
        on_chunk(n);
        if chunk.eof || n == 0 {
            break;
        }
    }
    if offset == 0 {
        // An empty file: create it so the commit below has something to move.
        let (f, p) = (files.clone(), partial.clone());
        tokio::task::spawn_blocking(move || f.write_chunk(&p, 0, &[]))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("writing {name}: {e}"))?;
    }
    let sha = hex(&hasher.finalize());
    if offset != artifact.bytes || sha != artifact.sha256 {
        let _ = files.remove_file(&partial);
        return Err(format!(
            "{name} failed its check: {offset} bytes with sha256 {sha}, announced {} bytes with {}",
            artifact.bytes, artifact.sha256
        ));
    }
    let (f, p, to) = (files.clone(), partial.clone(), path.to_path_buf());
    tokio::task::spawn_blocking(move || f.commit(&p, &to))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("storing {name}: {e}"))
}

async fn ask_chunk(
    worker: &ActorRef<WorkerMsg>,
    ask: ChunkRequest,
    rpc_timeout: Duration,
) -> Result<crate::wire::Chunk, String> {
    let mut last = String::new();
    for _ in 0..CHUNK_TRIES {
        let ask = ask.clone();
        match worker
            .call(|reply| WorkerMsg::FetchChunk(ask, reply), Some(rpc_timeout))
            .await
        {
            Ok(CallResult::Success(chunk)) => return Ok(chunk),
            Ok(CallResult::Timeout) => last = "timed out".into(),
            Ok(CallResult::SenderError) => last = "the worker dropped the request".into(),
            Err(e) => return Err(format!("the worker is unreachable: {e}")),
        }
    }
    Err(format!("fetching a piece of a file: {last}"))
}
