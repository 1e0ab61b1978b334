// vidbuilder studio: write or pick a video spec, submit it, watch the job live, play the result.
//
// Plain ES module, no build step. The only dependency is the vendored vanilla-jsoneditor
// standalone build (scripts/vendor-studio.sh); everything else is the browser's own API.
// All URLs are root-relative: the server serves this page at / and its files at /studio/.

import { createJSONEditor, createAjvValidator } from './vendor/vanilla-jsoneditor.js';

// ---------------------------------------------------------------------------------------------
// Small helpers

const $ = (id) => document.getElementById(id);

const KEY_STORAGE = 'vidbuilder.studio.apiKey';
const RECENT_LIMIT = 20;
const RECENT_REFRESH_MS = 10_000;
const POLL_MS = 1_000; // status polling, only when the event stream is unavailable
const STREAM_IDLE_MS = 45_000; // the server sends a keep-alive every ~15 s: 3 missed = dead
const FALLBACK_QUALITIES = ['draft', '720p', '1080p', '4k'];
const ACTIVE = new Set(['queued', 'processing']);
const FINISHED = new Set(['completed', 'failed']);

/** Resolves after `ms`, or rejects at once when `signal` aborts. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

/** Sets an element's text only when it differs (live regions re-announce any rewrite). */
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function shortId(id) {
  return String(id).slice(0, 8);
}

/** createdAt may be an ISO string or a Unix time (seconds or milliseconds). */
function parseTime(v) {
  if (v == null || v === '') return null;
  if (typeof v === 'number') return new Date(v < 1e12 ? v * 1000 : v);
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

function formatTime(d) {
  if (!d) return '';
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

function clampProgress(p) {
  const n = Number(p);
  return Number.isFinite(n) ? Math.max(0, Math.min(100, n)) : 0;
}

function announce(text) {
  // Clearing first makes a repeated message be read again.
  const el = $('announcer');
  el.textContent = '';
  requestAnimationFrame(() => { el.textContent = text; });
}

// ---------------------------------------------------------------------------------------------
// API access: JSON in and out, the optional API key as a Bearer token.

function apiKey() {
  return localStorage.getItem(KEY_STORAGE) || '';
}

function authHeaders(extra = {}) {
  const h = { ...extra };
  const key = apiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

/** An API answer that was not 2xx; `body` is the server's JSON error when it sent one. */
class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const msg = body?.message || body?.error || `HTTP ${status}`;
    super(msg);
    this.status = status;
    this.body = body || {};
    this.field = body?.field || null;
    this.retryAfter = retryAfter;
  }

  /** One line for people: the message, the field at fault, when to retry. */
  describe() {
    let s = this.message;
    if (this.body.error && this.body.message && this.body.error !== this.body.message) {
      s = `${this.body.error}: ${this.body.message}`;
    }
    if (this.field) s += ` (field: ${this.field})`;
    const more = [];
    if (this.body.hint) more.push(this.body.hint);
    if (this.status === 429 && this.retryAfter) more.push(`Try again in ${this.retryAfter} s.`);
    if (this.status === 401 || this.status === 403) {
      more.push(apiKey() ? 'Check the API key above.' : 'This server needs an API key: enter it above.');
    }
    if (more.length) s = `${/[.!?]$/.test(s) ? s : `${s}.`} ${more.join(' ')}`;
    return s;
  }
}

/**
 * fetch() for the JSON API. `body` may be a string (sent as is) or a value (JSON-encoded).
 * Returns the parsed JSON body (or null); throws ApiError for non-2xx answers.
 */
async function api(path, { method = 'GET', body, signal } = {}) {
  const headers = authHeaders({ Accept: 'application/json' });
  const init = { method, headers, signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text.slice(0, 300) }; }
  }
  if (!res.ok) throw new ApiError(res.status, data, res.headers.get('Retry-After'));
  return data;
}

// ---------------------------------------------------------------------------------------------
// Server-Sent Events over fetch(). EventSource cannot send an Authorization header, so the
// stream is read with a ReadableStream reader and parsed here, following the WHATWG
// "event stream interpretation" rules.

class SseParser {
  /** `onEvent({type, data, id})` per dispatched event; `onComment(text)` per `:` line. */
  constructor(onEvent, onComment = () => {}) {
    this.onEvent = onEvent;
    this.onComment = onComment;
    this.buffer = '';
    this.sawCR = false; // the last chunk ended in \r: a \n starting the next one belongs to it
    this.first = true;
    this.lastEventId = '';
    this.retry = null;
    this.resetEvent();
  }

  resetEvent() {
    this.eventType = '';
    this.data = '';
  }

  /** Feeds decoded text; dispatches every complete event in it. */
  push(chunk) {
    if (this.first && chunk.length) {
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1); // a leading BOM is ignored
      this.first = false;
    }
    if (this.sawCR && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.sawCR = false;
    this.buffer += chunk;
    // Lines end in \r\n, \n or \r.
    const re = /\r\n|\n|\r/g;
    let start = 0;
    let m;
    while ((m = re.exec(this.buffer)) !== null) {
      // A lone \r at the very end may be the first half of \r\n: decide with the next chunk.
      if (m[0] === '\r' && m.index === this.buffer.length - 1) this.sawCR = true;
      this.line(this.buffer.slice(start, m.index));
      start = re.lastIndex;
    }
    this.buffer = this.buffer.slice(start);
  }

  line(line) {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return this.onComment(line.slice(1));
    const colon = line.indexOf(':');
    let field = line;
    let value = '';
    if (colon >= 0) {
      field = line.slice(0, colon);
      value = line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
    }
    switch (field) {
      case 'event': this.eventType = value; break;
      case 'data': this.data += `${value}\n`; break;
      case 'id': if (!value.includes('\0')) this.lastEventId = value; break;
      case 'retry': if (/^\d+$/.test(value)) this.retry = Number(value); break;
      default: break; // unknown fields are ignored
    }
  }

  dispatch() {
    // An event without data is not dispatched (its id, if any, still counts for resuming).
    if (this.data === '') return this.resetEvent();
    const ev = { type: this.eventType || 'message', data: this.data.slice(0, -1), id: this.lastEventId };
    this.resetEvent();
    this.onEvent(ev);
  }
}

/**
 * Follows `/api/job-events/{jobId}` until its `result` event, which it returns (the full
 * job-status body). `onEvent` sees every event. A stream that drops before `result` is
 * reopened with `Last-Event-ID` (the server then sends only what changed since), after a
 * growing pause. Throws ApiError when the server refuses the stream (404, 503 when it has
 * too many streams open…), so the caller can poll the status instead.
 */
async function followJobEvents(jobId, { signal, onEvent }) {
  let lastId = '';
  let retryMs = 1000;
  let failures = 0;
  for (;;) {
    if (signal.aborted) throw signal.reason;
    // One connection; aborted by the caller, or by us when it goes silent too long.
    const conn = new AbortController();
    const stop = () => conn.abort(signal.reason);
    signal.addEventListener('abort', stop, { once: true });
    let idle;
    const touch = () => {
      clearTimeout(idle);
      idle = setTimeout(() => conn.abort(new Error('event stream idle')), STREAM_IDLE_MS);
    };
    let result = null;
    let parser = null;
    try {
      const headers = authHeaders({ Accept: 'text/event-stream' });
      if (lastId) headers['Last-Event-ID'] = lastId;
      touch();
      const res = await fetch(`/api/job-events/${encodeURIComponent(jobId)}`, {
        headers, signal: conn.signal, cache: 'no-store',
      });
      if (res.status === 204) {
        // The server says we saw the end already (our Last-Event-ID is the final one):
        // the final body is the job's status.
        return await api(`/api/job-status/${encodeURIComponent(jobId)}`, { signal });
      }
      if (!res.ok) {
        let body = null;
        try { body = await res.json(); } catch { /* not JSON */ }
        const err = new ApiError(res.status, body, res.headers.get('Retry-After'));
        // 502/504 (a proxy) are retried. Anything else is final: 503/429 ("too many event
        // streams") and 404 make the caller poll the status instead, as the server suggests.
        if (res.status === 502 || res.status === 504) throw Object.assign(err, { retryable: true });
        throw err;
      }
      parser = new SseParser((ev) => {
        failures = 0;
        if (ev.type === 'result') {
          try { result = JSON.parse(ev.data); } catch { result = {}; }
        }
        onEvent(ev);
      }, touch);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      while (result === null) {
        const { value, done } = await reader.read();
        if (done) break;
        touch();
        parser.push(value);
      }
      if (result !== null) {
        reader.cancel().catch(() => {});
        return result;
      }
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof ApiError && !err.retryable) throw err;
      // Network error, idle stream, 5xx: reconnect below.
    } finally {
      clearTimeout(idle);
      signal.removeEventListener('abort', stop);
      // Resume after the last event seen, however the connection ended.
      if (parser) {
        lastId = parser.lastEventId || lastId;
        if (parser.retry != null) retryMs = parser.retry;
      }
    }
    failures += 1;
    if (failures > 8) throw new Error('the event stream keeps failing');
    await sleep(Math.min(retryMs * 2 ** (failures - 1), 15_000), signal);
  }
}

// ---------------------------------------------------------------------------------------------
// The spec editor and its validation

const state = {
  editor: null,
  validator: null, // JSON Schema validator (null until the schema is loaded)
  schemaError: null, // why there is no validator
  specValid: false,
  specJson: null, // the last text that parsed, as a value
  examples: [],
  submitting: false,
  job: null, // the current job's last known status body
  watch: null, // AbortController of the current job's watcher
  objectUrls: [], // blob: URLs to revoke when the current job changes
  recentBusy: false,
};

/**
 * The bundled Ajv validates JSON Schema draft-07, while the server publishes draft 2020-12.
 * The keywords a spec schema uses are the same in both except for those rewritten here; the
 * server validates every submission anyway, this is the as-you-type help.
 */
function toDraft07(schema) {
  const walk = (node) => {
    if (Array.isArray(node)) return node.map(walk);
    if (node === null || typeof node !== 'object') return node;
    const out = {};
    for (const [k, v] of Object.entries(node)) out[k] = walk(v);
    if (Array.isArray(out.prefixItems)) {
      const rest = out.items;
      out.items = out.prefixItems;
      delete out.prefixItems;
      if (rest !== undefined) out.additionalItems = rest;
    }
    if (out.dependentRequired && !out.dependencies) {
      out.dependencies = out.dependentRequired;
      delete out.dependentRequired;
    }
    return out;
  };
  const s = walk(schema);
  delete s.$schema; // Ajv (draft-07) cannot load the 2020-12 meta-schema
  return s;
}

function makeValidator(schema) {
  return createAjvValidator({
    schema: toDraft07(schema),
    // strict: tolerate 2020-12-only keywords; validateFormats: the bundle has no format set
    // (schemars' "uint32", "double"… are not real formats anyway); logger: quiet console.
    ajvOptions: { strict: false, validateFormats: false, logger: false },
    errorSeverity: 'error', // Submit is disabled by these, so mark them as errors, not warnings
  });
}

function editorText() {
  const c = state.editor.get();
  if (c.text !== undefined) return c.text;
  return JSON.stringify(c.json, null, 2);
}

/** Replaces the editor's text (undoable) and re-checks it. */
function setEditorText(text) {
  state.editor.update({ text });
  onSpecChanged(text);
}

function pathToString(path) {
  let s = '';
  for (const p of path || []) s += typeof p === 'number' || /^\d+$/.test(p) ? `[${p}]` : (s ? `.${p}` : p);
  return s || '(root)';
}

/** Checks the spec text, shows the result, enables Submit when valid, syncs the selects. */
function onSpecChanged(text) {
  const box = $('spec-errors');
  const list = $('spec-problems');
  list.replaceChildren();
  let json;
  let problems = [];
  let summary;
  try {
    json = JSON.parse(text);
  } catch (e) {
    state.specValid = false;
    state.specJson = null;
    box.dataset.valid = 'false';
    // The live summary stays the same while one types; the details change below it.
    setText($('spec-summary'), text.trim() ? 'Not valid JSON.' : 'The spec is empty.');
    if (text.trim()) list.append(Object.assign(document.createElement('li'), { textContent: e.message }));
    updateSubmit();
    return;
  }
  state.specJson = json;
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    problems = [{ path: [], message: 'must be an object' }];
  } else if (state.validator) {
    problems = state.validator(json);
  }
  if (problems.length) {
    // Ajv reports every failed branch of a oneOf: show distinct lines, a few of them.
    const seen = new Set();
    const lines = [];
    for (const p of problems) {
      const line = `${pathToString(p.path)}: ${p.message}`;
      if (!seen.has(line)) { seen.add(line); lines.push(line); }
    }
    for (const line of lines.slice(0, 6)) {
      const li = document.createElement('li');
      li.textContent = line;
      list.append(li);
    }
    if (lines.length > 6) {
      const li = document.createElement('li');
      li.textContent = `…and ${lines.length - 6} more (see the markers in the editor)`;
      list.append(li);
    }
    summary = `${lines.length} problem${lines.length === 1 ? '' : 's'} with the spec.`;
    state.specValid = false;
  } else {
    summary = state.validator
      ? 'Valid spec.'
      : `Valid JSON (not checked against the schema: ${state.schemaError || 'loading'}).`;
    state.specValid = true;
  }
  box.dataset.valid = String(state.specValid);
  setText($('spec-summary'), summary);
  reflectSpecInSelects(json);
  updateSubmit();
}

function updateSubmit() {
  $('submit-job').disabled = !state.specValid || state.submitting;
}

// ---------------------------------------------------------------------------------------------
// The theme / music / quality selects mirror fields of the spec in the editor.

/** Selects `value`, adding a marked option first when the list does not have it. */
function selectValue(select, value) {
  value = value == null ? '' : String(value);
  select.querySelectorAll('option[data-unlisted]').forEach((o) => { if (o.value !== value) o.remove(); });
  if (![...select.options].some((o) => o.value === value)) {
    const o = new Option(`${value} (not listed)`, value);
    o.dataset.unlisted = 'true';
    select.add(o);
  }
  select.value = value;
}

function reflectSpecInSelects(json) {
  if (!json || typeof json !== 'object' || Array.isArray(json)) return;
  selectValue($('theme-select'), json.theme);
  const music = json.music && typeof json.music === 'object' ? json.music : null;
  selectValue($('music-select'), music ? music.trackId : '');
  selectValue($('quality-select'), json.quality);
}

/** A select changed: write its value into the spec (or remove the field for "default"). */
function applySelect(field, value) {
  let json;
  try { json = JSON.parse(editorText()); } catch { json = null; }
  if (!json || typeof json !== 'object' || Array.isArray(json)) {
    $('spec-summary').textContent = 'Fix the JSON first: the selects edit the spec object.';
    reflectSpecInSelects(state.specJson);
    return;
  }
  if (field === 'music') {
    if (!value) delete json.music;
    else json.music = { ...(json.music && typeof json.music === 'object' ? json.music : { volume: 0.3 }), trackId: value };
  } else if (!value) {
    delete json[field];
  } else {
    json[field] = value;
  }
  setEditorText(JSON.stringify(json, null, 2));
}

/** Replaces a select's options (but its first, "default" one) with [value, label, title?] items. */
function fillSelect(select, items) {
  const current = select.value;
  const options = items.map(([value, label, title]) => {
    const o = new Option(label, value);
    if (title) o.title = title;
    return o;
  });
  select.replaceChildren(select.options[0], ...options);
  selectValue(select, current);
}

/** The quality enum from the schema (it may sit behind a $ref), else the documented list. */
function qualitiesFrom(schema) {
  const resolve = (node) => {
    if (node && typeof node.$ref === 'string' && node.$ref.startsWith('#/')) {
      return node.$ref.slice(2).split('/').reduce((n, k) => n?.[k.replace(/~1/g, '/').replace(/~0/g, '~')], schema);
    }
    return node;
  };
  const q = resolve(resolve(schema)?.properties?.quality);
  const e = q?.enum || q?.anyOf?.map(resolve).flatMap((x) => x?.enum || (x?.const !== undefined ? [x.const] : []))
    || q?.oneOf?.map(resolve).flatMap((x) => x?.enum || (x?.const !== undefined ? [x.const] : []));
  return Array.isArray(e) && e.length ? e.filter((v) => typeof v === 'string') : FALLBACK_QUALITIES;
}

// ---------------------------------------------------------------------------------------------
// The current job: status, progress, message, cancel, result.

function showJob(job) {
  state.job = job;
  $('job-none').hidden = true;
  $('job-details').hidden = false;
  $('job-id').textContent = job.jobId;
  const status = job.status || 'unknown';
  const el = $('job-status');
  el.textContent = status;
  el.dataset.status = status;
  const progress = clampProgress(status === 'completed' ? 100 : job.progress);
  const bar = $('job-progress');
  bar.value = progress;
  bar.textContent = `${Math.round(progress)}%`;
  $('job-progress-text').textContent = `${Math.round(progress)}%`;
  let message = job.message || '';
  if (status === 'queued' && job.queuePosition && !message) message = `Waiting in queue (position ${job.queuePosition})`;
  $('job-message').textContent = message;
  const err = $('job-error');
  if (status === 'failed') {
    err.hidden = false;
    // A `status` event comes before the `result` that carries `error`/`cancelled`.
    err.textContent = job.cancelled ? 'Cancelled.' : job.error ? `Failed: ${job.error}` : 'Failed.';
    err.dataset.cancelled = job.cancelled ? 'true' : 'false';
  } else {
    err.hidden = true;
    err.textContent = '';
  }
  $('cancel-job').disabled = !ACTIVE.has(status);
  updateRecentRow(job);
}

/** Merges a partial update (one SSE event) into the current job and shows it. */
function patchJob(jobId, fields) {
  if (!state.job || state.job.jobId !== jobId) return;
  const before = state.job.status;
  showJob({ ...state.job, ...fields });
  if (fields.status && fields.status !== before) announceStatus(state.job);
}

function announceStatus(job) {
  const id = shortId(job.jobId);
  let text = `Job ${id} ${job.status}.`;
  if (job.status === 'failed') text = job.cancelled ? `Job ${id} was cancelled.` : `Job ${id} failed${job.error ? `: ${job.error}` : ''}.`;
  if (job.status === 'completed') text = `Job ${id} completed: the video is ready.`;
  // The `status` event and the final `result` both report the end: say it once.
  if (text === state.lastAnnounced) return;
  state.lastAnnounced = text;
  announce(text);
}

function revokeObjectUrls() {
  for (const u of state.objectUrls) URL.revokeObjectURL(u);
  state.objectUrls = [];
}

function clearResult() {
  const video = $('job-video');
  video.pause();
  video.removeAttribute('src');
  video.removeAttribute('poster');
  video.load();
  const gif = $('job-gif');
  gif.removeAttribute('src');
  gif.hidden = true;
  video.hidden = false;
  $('job-result').hidden = true;
  revokeObjectUrls();
}

/** A blob: URL for an API resource (needed when the request must carry the API key). */
async function blobUrl(path, signal) {
  const res = await fetch(path, { headers: authHeaders(), signal });
  if (!res.ok) {
    let body = null;
    try { body = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, body, res.headers.get('Retry-After'));
  }
  const url = URL.createObjectURL(await res.blob());
  state.objectUrls.push(url);
  return url;
}

/** Shows the finished video and its download links. */
async function showResult(job, signal) {
  const videoPath = job.videoUrl || `/api/download/${encodeURIComponent(job.jobId)}`;
  const posterPath = job.posterUrl || `${videoPath}/poster`;
  const video = $('job-video');
  const dlVideo = $('download-video');
  const dlPoster = $('download-poster');
  // The main video's format (a spec's "format"), from its entry in `outputs`.
  const main = Object.values(job.outputs || {}).find((o) => o.videoUrl === job.videoUrl);
  const format = main?.format || 'mp4';
  dlVideo.download = `vidbuilder-${job.jobId}.${format}`;
  dlVideo.textContent = `Download video (${format.toUpperCase()})`;
  dlPoster.download = `vidbuilder-${job.jobId}-poster.jpg`;
  let videoSrc = videoPath;
  let posterSrc = posterPath;
  if (apiKey()) {
    // <video src> and <a href> cannot send the Authorization header: fetch the files instead.
    try {
      [videoSrc, posterSrc] = await Promise.all([
        blobUrl(videoPath, signal),
        blobUrl(posterPath, signal).catch(() => null),
      ]);
    } catch (e) {
      if (signal.aborted) return;
      const err = $('job-error');
      err.hidden = false;
      err.textContent = `Could not load the video: ${e instanceof ApiError ? e.describe() : e.message}`;
      return;
    }
  }
  if (signal.aborted) return;
  $('job-result').hidden = false;
  if (format === 'gif') {
    // a GIF is a picture: <video> does not play it
    video.hidden = true;
    const gif = $('job-gif');
    gif.src = videoSrc;
    gif.hidden = false;
  } else {
    if (posterSrc) video.poster = posterSrc;
    video.src = videoSrc;
  }
  dlVideo.href = videoSrc;
  dlPoster.hidden = !posterSrc;
  if (posterSrc) dlPoster.href = posterSrc;
  // Muted autoplay is allowed by browsers; play() covers the case where the attribute did not.
  if (format !== 'gif') video.play().catch(() => {});
}

/** Makes `jobId` the current job and follows it until it finishes. */
async function watchJob(jobId, initial = null) {
  state.watch?.abort(new DOMException('another job was selected', 'AbortError'));
  const ctl = new AbortController();
  state.watch = ctl;
  const { signal } = ctl;
  clearResult();
  highlightRecent(jobId);
  showJob(initial || { jobId, status: 'unknown', progress: 0, message: 'Loading…' });

  try {
    let job = initial;
    if (!job || !job.status || job.status === 'unknown') {
      job = { jobId, ...(await api(`/api/job-status/${encodeURIComponent(jobId)}`, { signal })) };
      if (signal.aborted) return;
      showJob(job);
      announceStatus(job);
    }
    if (!FINISHED.has(job.status)) {
      job = await followOrPoll(jobId, signal);
      if (signal.aborted) return;
      showJob({ jobId, ...job });
      announceStatus(state.job);
      refreshRecent();
    }
    if (state.job.status === 'completed') await showResult(state.job, signal);
  } catch (e) {
    if (signal.aborted) return;
    const err = $('job-error');
    err.hidden = false;
    err.textContent = `Could not follow the job: ${e instanceof ApiError ? e.describe() : e.message}`;
  }
}

/** The job's final status body: from its event stream, or by polling when there is none. */
async function followOrPoll(jobId, signal) {
  try {
    return await followJobEvents(jobId, {
      signal,
      onEvent(ev) {
        let d;
        try { d = JSON.parse(ev.data); } catch { return; }
        if (!d || typeof d !== 'object') return;
        switch (ev.type) {
          case 'status': patchJob(jobId, { status: d.status }); break;
          case 'progress': patchJob(jobId, { progress: d.progress }); break;
          case 'message': patchJob(jobId, { message: d.message }); break;
          case 'result': break; // returned by followJobEvents
          default: {
            // Unknown event names: take the fields we know, ignore the rest.
            const known = {};
            for (const k of ['status', 'progress', 'message', 'error', 'cancelled']) if (k in d) known[k] = d[k];
            if (Object.keys(known).length) patchJob(jobId, known);
          }
        }
      },
    });
  } catch (e) {
    if (signal.aborted) throw e;
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) throw e;
    // No usable event stream (an older server, a proxy that buffers…): poll the status.
    for (;;) {
      const job = await api(`/api/job-status/${encodeURIComponent(jobId)}`, { signal });
      if (FINISHED.has(job.status)) return job;
      patchJob(jobId, job);
      await sleep(POLL_MS, signal);
    }
  }
}

async function cancelJob() {
  const job = state.job;
  if (!job || !ACTIVE.has(job.status)) return;
  const btn = $('cancel-job');
  btn.disabled = true;
  $('job-message').textContent = 'Cancelling…';
  try {
    await api(`/api/jobs/${encodeURIComponent(job.jobId)}/cancel`, { method: 'POST' });
    announce(`Cancelling job ${shortId(job.jobId)}.`);
    // The event stream brings the final status (failed, cancelled).
  } catch (e) {
    if (e instanceof ApiError && e.status === 409) {
      announce('The job had already finished.');
      // Make sure what is shown is the final state.
      try { patchJob(job.jobId, await api(`/api/job-status/${encodeURIComponent(job.jobId)}`)); } catch { /* shown by the watcher */ }
    } else {
      const err = $('job-error');
      err.hidden = false;
      err.textContent = `Cancel failed: ${e instanceof ApiError ? e.describe() : e.message}`;
      btn.disabled = !ACTIVE.has(state.job?.status);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Submitting

async function submit() {
  if (!state.specValid || state.submitting) return;
  const box = $('submit-error');
  box.hidden = true;
  box.textContent = '';
  state.submitting = true;
  updateSubmit();
  const text = editorText();
  try {
    // The text as written (numbers keep their exact spelling).
    const r = await api('/api/jobs', { method: 'POST', body: text });
    announce(`Job ${shortId(r.jobId)} submitted.`);
    const initial = {
      jobId: r.jobId,
      status: r.status || 'queued',
      progress: 0,
      queuePosition: r.queuePosition,
      message: r.queuePosition ? `Waiting in queue (position ${r.queuePosition})` : '',
      createdAt: new Date().toISOString(),
    };
    addRecentRow(initial);
    watchJob(r.jobId, initial);
    refreshRecent();
  } catch (e) {
    box.hidden = false;
    box.textContent = e instanceof ApiError ? `Not submitted: ${e.describe()}` : `Not submitted: ${e.message}`;
  } finally {
    state.submitting = false;
    updateSubmit();
  }
}

// ---------------------------------------------------------------------------------------------
// Recent jobs

function recentRowText(job) {
  const p = Math.round(clampProgress(job.status === 'completed' ? 100 : job.progress));
  return {
    id: shortId(job.jobId),
    status: job.status || '?',
    progress: `${p}%`,
    time: formatTime(parseTime(job.createdAt)),
  };
}

function renderRecentRow(li, job) {
  const t = recentRowText(job);
  let btn = li.querySelector('button');
  if (!btn) {
    btn = document.createElement('button');
    btn.type = 'button';
    btn.className = 'recent-job';
    btn.addEventListener('click', () => {
      watchJob(li.dataset.jobId);
      $('job-panel').focus({ preventScroll: false });
    });
    li.append(btn);
  }
  btn.dataset.jobId = job.jobId;
  btn.title = job.jobId;
  btn.setAttribute('aria-label', `Job ${job.jobId}, ${t.status}, ${t.progress}${t.time ? `, created ${t.time}` : ''}`);
  const cells = [
    ['job-short', t.id],
    [`status status-${t.status}`, t.status],
    ['job-pct', t.progress],
    ['job-time', t.time],
  ];
  btn.replaceChildren(...cells.map(([cls, text]) => {
    const s = document.createElement('span');
    s.className = cls;
    s.textContent = text;
    return s;
  }));
  li.dataset.status = t.status;
}

function addRecentRow(job) {
  const list = $('recent-jobs');
  if (list.querySelector(`li[data-job-id="${CSS.escape(job.jobId)}"]`)) return;
  const li = document.createElement('li');
  li.dataset.jobId = job.jobId;
  renderRecentRow(li, job);
  list.prepend(li);
  highlightRecent(state.job?.jobId);
}

function updateRecentRow(job) {
  const li = $('recent-jobs').querySelector(`li[data-job-id="${CSS.escape(job.jobId)}"]`);
  if (li) renderRecentRow(li, job);
}

function highlightRecent(jobId) {
  for (const li of $('recent-jobs').children) {
    const btn = li.querySelector('button');
    if (li.dataset.jobId === jobId) btn?.setAttribute('aria-current', 'true');
    else btn?.removeAttribute('aria-current');
  }
}

/** Re-reads the list; rows are updated in place so keyboard focus stays where it was. */
async function refreshRecent() {
  if (state.recentBusy) return;
  state.recentBusy = true;
  const note = $('recent-error');
  try {
    const r = await api(`/api/jobs?limit=${RECENT_LIMIT}`);
    const jobs = Array.isArray(r?.jobs) ? r.jobs : [];
    const list = $('recent-jobs');
    const existing = new Map([...list.children].map((li) => [li.dataset.jobId, li]));
    const rows = jobs.filter((j) => j && j.jobId).map((j) => {
      // The current job's live state (from its stream) is newer than the list's.
      const job = state.job?.jobId === j.jobId ? { ...j, ...pickLive(state.job, j) } : j;
      const li = existing.get(j.jobId) || document.createElement('li');
      li.dataset.jobId = j.jobId;
      renderRecentRow(li, job);
      existing.delete(j.jobId);
      return li;
    });
    // Keep a just-submitted job the server does not list yet.
    for (const [id, li] of existing) if (id === state.job?.jobId) rows.unshift(li);
    // Put the rows in order touching as few nodes as possible: moving the focused row out of
    // the document would drop keyboard focus, so it is given back below if that happened.
    const focused = document.activeElement?.closest?.('#recent-jobs li')?.dataset.jobId;
    rows.forEach((li, i) => { if (list.children[i] !== li) list.insertBefore(li, list.children[i] || null); });
    while (list.children.length > rows.length) list.lastElementChild.remove();
    if (focused && !document.activeElement?.closest?.('#recent-jobs')) {
      const again = list.querySelector(`li[data-job-id="${CSS.escape(focused)}"] button`) || list.querySelector('button');
      again?.focus({ preventScroll: true });
    }
    highlightRecent(state.job?.jobId);
    note.hidden = true;
  } catch (e) {
    note.hidden = false;
    note.textContent = `Could not load recent jobs: ${e instanceof ApiError ? e.describe() : e.message}`;
  } finally {
    state.recentBusy = false;
  }
}

/** Fields of the live job that are at least as new as the listed ones. */
function pickLive(live, listed) {
  if (FINISHED.has(listed.status)) return {};
  return { status: live.status, progress: live.progress };
}

// ---------------------------------------------------------------------------------------------
// Loading the page's data

function loadErrorText(what, e) {
  return `Could not load ${what}: ${e instanceof ApiError ? e.describe() : e.message}`;
}

async function loadSchema() {
  try {
    const schema = await api('/api/schema/video-spec.json');
    state.validator = makeValidator(schema);
    state.schemaError = null;
    state.editor.updateProps({ validator: state.validator });
    fillSelect($('quality-select'), qualitiesFrom(schema).map((v) => [v, v]));
  } catch (e) {
    state.validator = null;
    state.schemaError = e instanceof ApiError ? `schema unavailable (${e.describe()})` : `schema invalid (${e.message})`;
    state.editor.updateProps({ validator: undefined });
    throw e;
  }
}

async function loadExamples() {
  const r = await api('/api/examples');
  state.examples = Array.isArray(r?.examples) ? r.examples : [];
  const sel = $('example-select');
  sel.replaceChildren(
    new Option(state.examples.length ? 'Choose an example…' : '(no examples)', ''),
    ...state.examples.map((ex) => {
      const o = new Option(ex.title || ex.name, ex.name);
      o.title = ex.name;
      return o;
    }),
  );
}

async function loadThemes() {
  const r = await api('/api/themes');
  const themes = Array.isArray(r?.themes) ? r.themes : [];
  fillSelect($('theme-select'), themes.map((t) => [t.name, t.name, t.description]));
}

async function loadMusic() {
  const r = await api('/api/music');
  const tracks = Array.isArray(r?.tracks) ? r.tracks : [];
  fillSelect($('music-select'), tracks.map((t) => {
    const id = t.id ?? t.trackId ?? t.name;
    const extra = [t.mood, t.durationSecs ? `${Math.round(t.durationSecs)} s` : ''].filter(Boolean).join(', ');
    const label = t.title && t.title !== id ? `${t.title} (${id})` : id;
    return [id, label, extra];
  }).filter(([id]) => id != null));
}

function chooseExample(name) {
  const ex = state.examples.find((e) => e.name === name);
  if (!ex) return;
  setEditorText(JSON.stringify(ex.spec, null, 2));
  announce(`Example ${ex.title || ex.name} loaded into the editor.`);
}

/** (Re)loads everything the page shows from the API: at start and when the key changes. */
async function loadAll() {
  // A newer call (the key changed meanwhile) makes this one's outcome moot.
  const gen = (state.loadGen = (state.loadGen || 0) + 1);
  const box = $('load-errors');
  box.replaceChildren();
  box.hidden = true;
  document.body.dataset.ready = 'loading';
  const errors = [];
  const load = (what, fn) => fn().catch((e) => errors.push(loadErrorText(what, e)));
  await Promise.all([
    load('the spec schema', loadSchema),
    load('the examples', loadExamples),
    load('the themes', loadThemes),
    load('the music tracks', loadMusic),
  ]);
  if (gen !== state.loadGen) return;
  box.replaceChildren(...errors.map((text) => Object.assign(document.createElement('p'), { textContent: text })));
  box.hidden = errors.length === 0;
  // Start from the first example when the editor is still empty.
  if (!editorText().trim() && state.examples.length) {
    $('example-select').value = state.examples[0].name;
    chooseExample(state.examples[0].name);
  } else {
    onSpecChanged(editorText());
  }
  refreshRecent();
  document.body.dataset.ready = 'true';
}

// ---------------------------------------------------------------------------------------------
// Start

function init() {
  state.editor = createJSONEditor({
    target: $('editor'),
    props: {
      mode: 'text',
      content: { text: '' },
      askToFormat: false,
      navigationBar: false,
      ariaLabel: 'Spec JSON',
      onChange: (content) => {
        onSpecChanged(content.text !== undefined ? content.text : JSON.stringify(content.json, null, 2));
      },
      // Text mode only: drop the text/tree/table switch (and the separator after it).
      onRenderMenu: (items) => {
        const kept = items.filter((it) => !(it.className || '').includes('jse-group-button'));
        while (kept[0]?.type === 'separator') kept.shift();
        return kept;
      },
    },
  });

  // The key is saved when the field changes (Tab away) or on Enter.
  const keyInput = $('api-key');
  keyInput.value = apiKey();
  const saveKey = () => {
    const v = keyInput.value.trim();
    if (v === apiKey()) return;
    if (v) localStorage.setItem(KEY_STORAGE, v);
    else localStorage.removeItem(KEY_STORAGE);
    announce(v ? 'API key saved.' : 'API key removed.');
    loadAll();
  };
  keyInput.addEventListener('change', saveKey);
  $('key-form').addEventListener('submit', (e) => { e.preventDefault(); saveKey(); });

  $('example-select').addEventListener('change', (e) => chooseExample(e.target.value));
  $('theme-select').addEventListener('change', (e) => applySelect('theme', e.target.value));
  $('music-select').addEventListener('change', (e) => applySelect('music', e.target.value));
  $('quality-select').addEventListener('change', (e) => applySelect('quality', e.target.value));
  $('submit-job').addEventListener('click', submit);
  $('cancel-job').addEventListener('click', cancelJob);
  $('refresh-jobs').addEventListener('click', refreshRecent);
  setInterval(() => { if (!document.hidden) refreshRecent(); }, RECENT_REFRESH_MS);

  // For automation and debugging: read or replace the spec the way a person would.
  window.studio = {
    getSpecText: editorText,
    setSpecText: setEditorText,
    get currentJob() { return state.job; },
  };

  loadAll();
}

init();
