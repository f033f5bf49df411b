// The console page: the API key, the speak form (text, voice, format, parameters), playback
// with time to first audio, download, and the convert, voice and server panels.

import { ApiError, call, errorFrom, storedKey, storeKey, UNREACHABLE } from "./api.js";
import { ConvertPanel } from "./convert.js";
import {
  attachMediaSource,
  detach,
  elapsed as ms,
  EXTENSIONS,
  FORMAT_NAMES,
  kilobytes,
  mseType,
  saveBlob,
  streamInto,
} from "./player.js";
import { StatusPanel } from "./status.js";
import { VoiceLibrary } from "./voices.js";

const $ = (id) => document.getElementById(id);
const LONGEST_URL = 8000; // past this, proxies and servers may refuse an <audio src> URL
// Which form control a parameter named in an error's `field` belongs to.
const FIELDS = {
  text: "text",
  voice_id: "voice",
  format: "format",
  exaggeration: "exaggeration",
  voice_exaggeration_factor: "exaggeration",
  cfg_weight: "cfg-weight",
  cfg_guidance_weight: "cfg-weight",
  temperature: "temperature",
  synthesis_temperature: "temperature",
  seed: "seed",
};
const SLIDERS = ["exaggeration", "cfg-weight", "temperature"];

const state = {
  key: storedKey(),
  playback: null, // {controller, chunks, mime, url, format, seed}
};

const convertPanel = new ConvertPanel(
  () => state.key,
  (error) => markKey(error),
);

const statusPanel = new StatusPanel(
  {
    summary: $("service-summary"),
    workers: $("workers"),
    gpus: $("gpus"),
    host: $("host"),
    message: $("status-message"),
    refresh: $("status-refresh"),
  },
  () => state.key,
  (model) => convertPanel.setModel(model),
);

const voices = new VoiceLibrary(
  {
    select: $("voice"),
    remove: $("voice-delete"),
    form: $("upload-form"),
    file: $("voice-file"),
    name: $("voice-name"),
    overwrite: $("overwrite"),
    record: $("record"),
    message: $("voice-message"),
  },
  () => state.key,
  (error) => markKey(error),
);
voices.subscribe((list) => convertPanel.setVoices(list));

// --- the API key -------------------------------------------------------------------------

function showKeyHint() {
  $("key-hint").textContent = state.key
    ? "The key is saved in this browser (localStorage) and sent with every request."
    : "Enter the service's API key (its API_KEY setting) and press Save. " +
      "It stays in this browser and goes with every request.";
}

function markKey(error) {
  const refused = error instanceof ApiError && error.isAuth;
  $("api-key").setAttribute("aria-invalid", String(refused));
}

function saveKey(event) {
  event.preventDefault();
  state.key = $("api-key").value.trim();
  storeKey(state.key);
  $("api-key").setAttribute("aria-invalid", "false");
  showKeyHint();
  voices.say("");
  voices.refresh();
  statusPanel.keyChanged();
}

function toggleKeyVisibility() {
  const field = $("api-key");
  const show = field.type === "password";
  field.type = show ? "text" : "password";
  $("key-show").textContent = show ? "Hide" : "Show";
}

// --- the request -------------------------------------------------------------------------

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function extraParameters() {
  const text = $("extra").value.trim();
  if (!text) return {};
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    value = null;
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    $("more").open = true;
    throw new ApiError('More parameters must be a JSON object, e.g. {"top_p": 0.9}.', {
      field: "extra",
    });
  }
  delete value.api_key;
  return value;
}

/** The request's parameters; a seed is always sent, so a result can be reproduced (and the
 *  download of a fallback stream, which fetches again, is the same audio). */
function speechRequest() {
  const text = $("text").value.trim();
  if (!text) throw new ApiError("Type something to say first.", { field: "text" });
  const seedText = $("seed").value.trim();
  const request = {
    text,
    format: $("format").value,
    exaggeration: Number($("exaggeration").value),
    cfg_weight: Number($("cfg-weight").value),
    temperature: Number($("temperature").value),
    seed: seedText === "" ? randomSeed() : Number(seedText),
    ...extraParameters(),
  };
  if (voices.selected) request.voice_id = voices.selected;
  return request;
}

function audioUrl(request) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(request)) query.set(name, String(value));
  if (state.key) query.set("api_key", state.key);
  return `tts/generate?${query}`;
}

// --- showing progress and errors -----------------------------------------------------------

function say(text, isError = false) {
  $("play-message").textContent = text;
  $("play-message").classList.toggle("error", isError);
}

function metric(id, text) {
  $(id).textContent = text;
}

function clearInvalid() {
  for (const field of document.querySelectorAll("#speak-form [aria-invalid='true']")) {
    field.setAttribute("aria-invalid", "false");
  }
}

/** The message, its parameter's name replaced by the label of the control it belongs to. */
function labelled(error, control) {
  if (!FIELDS[error.field]) return error.message;
  const label = document.querySelector(`label[for="${control.id}"]`)?.textContent;
  const prefix = `${error.field}: `;
  return label && error.message.startsWith(prefix)
    ? `${label}: ${error.message.slice(prefix.length)}`
    : error.message;
}

function showError(error) {
  if (error.name === "AbortError") return;
  const control = error.field ? $(FIELDS[error.field] ?? "extra") : null;
  if (control) {
    control.setAttribute("aria-invalid", "true");
    if (control.id === "extra") $("more").open = true;
  }
  say(control ? labelled(error, control) : error.message, true);
  markKey(error);
}

// --- playing -----------------------------------------------------------------------------

function resetMetrics(request, viaMse) {
  metric("m-first-byte", viaMse ? "…" : "not visible with <audio src>");
  metric("m-playing", "…");
  metric("m-received", viaMse ? "0 KB" : "–");
  metric("m-seed", String(request.seed));
  metric("m-mode", viaMse ? "Media Source Extensions (streamed)" : "<audio src> (streamed by the browser)");
}

function stop(message = "Stopped.") {
  const playback = state.playback;
  if (!playback) return;
  playback.controller.abort();
  if (playback.streaming) detach($("player"));
  playback.streaming = false;
  setPlaying(false);
  say(message);
}

function setPlaying(playing) {
  $("stop").disabled = !playing;
}

function watchPlaying(playback, started) {
  const audio = $("player");
  const { signal } = playback.controller;
  audio.addEventListener(
    "playing",
    () => {
      metric("m-playing", ms(started));
      if (!playback.mime) $("download").disabled = false;
      if (playback.streaming) say(playback.mime ? "Playing while the rest streams in…" : "Playing.");
    },
    { once: true, signal },
  );
}

async function play() {
  stop("");
  detach($("player"));
  clearInvalid();
  let request;
  try {
    request = speechRequest();
  } catch (error) {
    showError(error);
    return;
  }
  const started = performance.now();
  const mime = mseType(request.format);
  const controller = new AbortController();
  const playback = { controller, chunks: [], mime, request, url: audioUrl(request), streaming: true };
  state.playback = playback;
  $("download").disabled = true;
  setPlaying(true);
  resetMetrics(request, Boolean(mime));
  watchPlaying(playback, started);
  if (mime) await playWithMse(playback, started);
  else playWithAudioSrc(playback);
}

async function playWithMse(playback, started) {
  const audio = $("player");
  const { signal } = playback.controller;
  const media = attachMediaSource(audio);
  audio.play().catch(() => {}); // from the click itself; it starts once data is buffered
  say("Requesting…");
  let bytes = 0;
  const onChunk = (chunk) => {
    if (bytes === 0) metric("m-first-byte", ms(started));
    bytes += chunk.byteLength;
    playback.chunks.push(chunk);
    metric("m-received", kilobytes(bytes));
  };
  try {
    const response = await call("tts/generate", {
      key: state.key,
      method: "POST",
      json: playback.request,
      signal,
    });
    say("Streaming…");
    await streamInto(media, response, playback.mime, onChunk);
    playback.streaming = false;
    $("download").disabled = false;
    setPlaying(false);
    const seconds = Number.isFinite(audio.duration) ? `${audio.duration.toFixed(1)} s of audio, ` : "";
    say(`Done: ${seconds}${kilobytes(bytes)}. Download saves it as .${EXTENSIONS[playback.request.format]}.`);
  } catch (error) {
    if (signal.aborted) return;
    playback.streaming = false;
    setPlaying(false);
    if (bytes === 0) detach(audio);
    showError(error instanceof ApiError ? error : streamError(error, bytes));
  }
}

function streamError(error, bytes) {
  const what = bytes ? "The stream broke off before the end" : "The audio could not be played";
  return new ApiError(`${what}: ${error.message || error.name}.`);
}

function playWithAudioSrc(playback) {
  if (playback.url.length > LONGEST_URL) {
    setPlaying(false);
    say("The text is too long to play this format from a URL. Choose fmp4 or webm, or shorten it.", true);
    return;
  }
  const audio = $("player");
  const { signal } = playback.controller;
  audio.addEventListener("error", () => explainAudioError(playback), { once: true, signal });
  audio.addEventListener("ended", () => finish(playback), { once: true, signal });
  audio.src = playback.url;
  audio.play().catch(() => {}); // failures arrive as the element's error event
  say("Requesting…");
}

function finish(playback) {
  playback.streaming = false;
  setPlaying(false);
  say("Done.");
}

/** <audio> only says that it failed: ask the server the same question to learn why. */
async function explainAudioError(playback) {
  playback.streaming = false;
  setPlaying(false);
  const probe = new AbortController();
  try {
    const response = await fetch(playback.url, { signal: probe.signal });
    if (!response.ok) throw await errorFrom(response);
    probe.abort(); // the request is fine; the browser could not decode the format
    say(`This browser cannot play ${FORMAT_NAMES[playback.request.format]}. Try fmp4 or mp3.`, true);
  } catch (error) {
    if (error.name === "AbortError") return;
    showError(error instanceof ApiError ? error : new ApiError(UNREACHABLE));
  }
}

// --- download ----------------------------------------------------------------------------

async function download() {
  const playback = state.playback;
  if (!playback) return;
  const extension = EXTENSIONS[playback.request.format] ?? "bin";
  const name = `speech-${playback.request.seed}.${extension}`;
  if (playback.mime && playback.chunks.length) {
    saveBlob(new Blob(playback.chunks, { type: playback.mime }), name);
    return;
  }
  say("Preparing the download (the same seed gives the same audio)…");
  try {
    const response = await call(playback.url, { key: state.key });
    saveBlob(await response.blob(), name);
    say(`Saved ${name}.`);
  } catch (error) {
    showError(error);
  }
}

// --- set-up ------------------------------------------------------------------------------

function describeFormat() {
  $("format-help").textContent = mseType($("format").value)
    ? "Streamed into the player with Media Source Extensions."
    : "Streamed by the browser's own <audio> player.";
}

function fillFormats() {
  const select = $("format");
  for (const [format, name] of Object.entries(FORMAT_NAMES)) {
    select.append(new Option(name, format));
  }
  select.value = mseType("fmp4") ? "fmp4" : "mp3";
  select.addEventListener("change", describeFormat);
  describeFormat();
}

function linkSliders() {
  for (const id of SLIDERS) {
    const slider = $(id);
    const output = $(`${id}-value`);
    const show = () => (output.textContent = Number(slider.value).toFixed(2));
    slider.addEventListener("input", show);
    show();
  }
  $("params-reset").addEventListener("click", () => {
    for (const id of SLIDERS) {
      $(id).value = $(id).defaultValue;
      $(id).dispatchEvent(new Event("input"));
    }
    $("seed").value = "";
  });
}

function wireEvents() {
  $("key-form").addEventListener("submit", saveKey);
  $("key-show").addEventListener("click", toggleKeyVisibility);
  $("speak-form").addEventListener("submit", (event) => {
    event.preventDefault();
    play();
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      play();
    }
  });
  $("stop").addEventListener("click", () => stop());
  $("download").addEventListener("click", download);
  $("voices-refresh").addEventListener("click", () => voices.refresh());
}

function main() {
  $("api-key").value = state.key;
  showKeyHint();
  fillFormats();
  linkSliders();
  wireEvents();
  if (state.key) voices.refresh();
  else voices.say("Enter the API key to list and upload voices.");
  statusPanel.start();
}

main();
