// Playing a streamed audio response (/tts/generate, /vc/convert) while it comes in.
//
// fmp4 and webm go through Media Source Extensions: each piece of the body is appended to a
// SourceBuffer only after the previous append's `updateend`, and endOfStream() is called only on
// an idle buffer (calling either on an updating buffer throws and loses audio). Other formats,
// and browsers without MSE (iOS Safari before 17), use <audio src> with the key in the query.

const MSE_TYPES = {
  fmp4: 'audio/mp4; codecs="mp4a.40.2"',
  webm: 'audio/webm; codecs="opus"',
};

// iOS Safari 17+ has only ManagedMediaSource; everything else that streams has MediaSource.
const MediaSourceType = globalThis.MediaSource ?? globalThis.ManagedMediaSource;

/** The MSE type to play `format` with in this browser, or null for the <audio src> path. */
export function mseType(format) {
  const type = MSE_TYPES[format];
  return type && MediaSourceType?.isTypeSupported(type) ? type : null;
}

export const FORMAT_NAMES = {
  fmp4: "fmp4 (AAC in MP4)",
  webm: "webm (Opus)",
  mp3: "mp3",
  aac: "aac (ADTS)",
  ogg: "ogg (Opus)",
  wav: "wav",
  flac: "flac",
};

export const EXTENSIONS = {
  fmp4: "m4a",
  webm: "webm",
  mp3: "mp3",
  aac: "aac",
  ogg: "ogg",
  wav: "wav",
  flac: "flac",
};

/**
 * Point `audio` at a fresh MediaSource and return it with a promise of its `sourceopen`.
 * Called from the click handler itself, so that audio.play() right after it counts as started
 * by the user (Safari's autoplay rule) even though the first bytes come later.
 */
export function attachMediaSource(audio) {
  const source = new MediaSourceType();
  if (MediaSourceType !== globalThis.MediaSource) audio.disableRemotePlayback = true;
  const opened = new Promise((resolve) =>
    source.addEventListener("sourceopen", resolve, { once: true }),
  );
  const url = URL.createObjectURL(source);
  audio.src = url;
  return { source, opened, url };
}

function append(buffer, chunk) {
  return new Promise((resolve, reject) => {
    const settle = (event) => {
      buffer.removeEventListener("updateend", settle);
      buffer.removeEventListener("error", settle);
      buffer.removeEventListener("abort", settle);
      if (event.type === "updateend") resolve();
      else if (event.type === "abort") reject(new DOMException("stopped", "AbortError"));
      else reject(new Error("The browser could not decode the audio stream."));
    };
    buffer.addEventListener("updateend", settle);
    buffer.addEventListener("error", settle);
    buffer.addEventListener("abort", settle);
    buffer.appendBuffer(chunk);
  });
}

function idle(buffer) {
  if (!buffer.updating) return Promise.resolve();
  return new Promise((resolve) => buffer.addEventListener("updateend", resolve, { once: true }));
}

/**
 * Append the response body to the MediaSource as it arrives; `onChunk(bytes)` sees every piece
 * first (for the download and the counters). Resolves once the stream has ended cleanly.
 */
export async function streamInto({ source, opened }, response, mime, onChunk) {
  await opened;
  const buffer = source.addSourceBuffer(mime);
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    onChunk(value);
    await append(buffer, value);
  }
  await idle(buffer);
  if (source.readyState === "open") source.endOfStream();
}

/** Stop whatever `audio` plays and let go of its source (a pending play() rejects, quietly). */
export function detach(audio) {
  const url = audio.src;
  audio.pause();
  audio.removeAttribute("src");
  audio.load();
  if (url.startsWith("blob:")) URL.revokeObjectURL(url);
}

/** Milliseconds since `since` (a performance.now() reading), as shown on the page. */
export function elapsed(since) {
  return `${Math.round(performance.now() - since)} ms`;
}

export function kilobytes(bytes) {
  return `${(bytes / 1024).toFixed(1)} KB`;
}

/** Save `blob` as a file named `name` through a temporary link. */
export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
