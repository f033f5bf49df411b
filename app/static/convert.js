// The convert panel: a recording (a file, or one made with the microphone) re-spoken in a voice
// of the library by POST /vc/convert, played while it streams in. fmp4 and webm go through Media
// Source Extensions; other formats, and browsers without MSE, play once the whole response has
// arrived (an upload cannot be handed to <audio src> as a URL, as speech is).

import { ApiError, call } from "./api.js";
import {
  attachMediaSource,
  detach,
  elapsed,
  EXTENSIONS,
  FORMAT_NAMES,
  kilobytes,
  mseType,
  saveBlob,
  streamInto,
} from "./player.js";
import { recordingUnavailable, startRecording } from "./recorder.js";
import { describe } from "./voices.js";

const $ = (id) => document.getElementById(id);
const LONGEST_RECORDING_S = 60;
// Which control a field named in an error belongs to (`model`: none, the panel says it).
const FIELDS = {
  audio: "convert-file",
  voice_id: "convert-voice",
  output_format: "convert-format",
  sample_rate: "convert-format",
  seed: "convert-seed",
};
const SOURCE_HINT = "A file, or a recording from the microphone (Record).";

function randomSeed() {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function metric(id, text) {
  $(id).textContent = text;
}

export class ConvertPanel {
  /** `key()` reads the key; `report(error)` shows an error that concerns the key. */
  constructor(key, report) {
    this.key = key;
    this.report = report;
    this.recorded = null; // {blob, name, seconds}: the microphone's take, the source until a file is chosen
    this.recording = null;
    this.playback = null; // {controller, chunks, blob, mime, format, seed, streaming}
    this.recordLabel = $("convert-record").textContent;
    this.fillFormats();
    this.setVoices([]);
    this.wire();
  }

  wire() {
    $("convert-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.convert();
    });
    $("convert-file").addEventListener("change", () => this.fileChosen());
    $("convert-record").addEventListener("click", () => this.toggleRecording());
    $("convert-stop").addEventListener("click", () => this.stop());
    $("convert-download").addEventListener("click", () => this.download());
    const why = recordingUnavailable();
    if (why) {
      $("convert-record").disabled = true;
      $("convert-record").title = why;
    }
  }

  fillFormats() {
    const select = $("convert-format");
    for (const [format, name] of Object.entries(FORMAT_NAMES)) select.append(new Option(name, format));
    select.value = mseType("fmp4") ? "fmp4" : "mp3";
    const describeFormat = () => {
      $("convert-format-help").textContent = mseType(select.value)
        ? "Played while it streams in (Media Source Extensions)."
        : "Played once all of it has arrived; fmp4 or webm play as they stream.";
    };
    select.addEventListener("change", describeFormat);
    describeFormat();
  }

  /** The library's voices (from the voice panel's list), the current choice kept. */
  setVoices(voices) {
    const select = $("convert-voice");
    const chosen = select.value;
    const options = [new Option("Built-in voice (the model's own)", "")];
    for (const voice of voices) {
      const option = new Option(describe(voice), voice.voice_id);
      option.disabled = voice.usable === false;
      options.push(option);
    }
    select.replaceChildren(...options);
    select.value = voices.some((voice) => voice.voice_id === chosen) ? chosen : "";
  }

  /** /system-status's model: where it cannot convert, the panel says so instead of its form. */
  setModel(model) {
    const refused = model?.voice_conversion === false;
    const note = $("convert-unavailable");
    note.hidden = !refused;
    note.textContent = refused
      ? `The served model (${model.label}) cannot convert voices: voice conversion needs ` +
        "Chatterbox English or multilingual (MODEL_VARIANT=chatterbox or chatterbox-multilingual)."
      : "";
    if (refused) this.stop("");
    $("convert-body").hidden = refused;
  }

  say(text, isError = false) {
    $("convert-message").textContent = text;
    $("convert-message").classList.toggle("error", isError);
  }

  // --- the source ------------------------------------------------------------------------

  fileChosen() {
    const file = $("convert-file").files[0];
    if (file) this.recorded = null;
    $("convert-source").textContent = file ? `Source: the file “${file.name}”.` : SOURCE_HINT;
  }

  /** The recording to send: the chosen file, else the microphone's last take. */
  source() {
    const file = $("convert-file").files[0];
    if (file) return { blob: file, name: file.name };
    if (this.recorded) return this.recorded;
    throw new ApiError("Choose a recording to convert, or record one.", { field: "audio" });
  }

  async toggleRecording() {
    if (this.recording) return this.finishRecording();
    try {
      this.recording = await startRecording();
    } catch (error) {
      this.say(error.message, true);
      return;
    }
    this.recordStarted = Date.now();
    const button = $("convert-record");
    button.textContent = "Stop and convert";
    button.setAttribute("aria-pressed", "true");
    this.ticker = setInterval(() => {
      const seconds = Math.round((Date.now() - this.recordStarted) / 1000);
      this.say(`Recording… ${seconds} s. Press “Stop and convert” when done.`);
      if (seconds >= LONGEST_RECORDING_S) this.finishRecording();
    }, 500);
    this.say("Recording… Speak, then press “Stop and convert”.");
  }

  async finishRecording() {
    const recording = this.recording;
    this.recording = null;
    clearInterval(this.ticker);
    const button = $("convert-record");
    button.textContent = this.recordLabel;
    button.setAttribute("aria-pressed", "false");
    const { blob, extension } = await recording.stop();
    const seconds = (Date.now() - this.recordStarted) / 1000;
    this.recorded = { blob, name: `recording.${extension}` };
    $("convert-file").value = "";
    $("convert-source").textContent = `Source: your recording (${seconds.toFixed(1)} s).`;
    await this.convert();
  }

  // --- converting and playing ------------------------------------------------------------

  request() {
    const seedText = $("convert-seed").value.trim();
    const seed = seedText === "" ? randomSeed() : Number(seedText);
    const format = $("convert-format").value;
    const { blob, name } = this.source();
    const form = new FormData();
    form.append("audio", blob, name);
    if ($("convert-voice").value) form.append("voice_id", $("convert-voice").value);
    form.append("output_format", format);
    form.append("seed", String(seed));
    return { form, format, seed };
  }

  async convert() {
    this.stop("");
    detach($("convert-player"));
    this.clearInvalid();
    let request;
    try {
      request = this.request();
    } catch (error) {
      this.showError(error);
      return;
    }
    const controller = new AbortController();
    const mime = mseType(request.format);
    const playback = { controller, chunks: [], blob: null, mime, ...request, streaming: true };
    this.playback = playback;
    this.setBusy(true);
    $("convert-download").disabled = true;
    this.resetMetrics(playback);
    await this.run(playback, performance.now());
  }

  async run(playback, started) {
    const audio = $("convert-player");
    const { signal } = playback.controller;
    const media = playback.mime ? attachMediaSource(audio) : null;
    if (media) audio.play().catch(() => {}); // from the click: it starts once data is buffered
    audio.addEventListener("playing", () => metric("c-playing", elapsed(started)), { once: true, signal });
    this.say("Sending the recording…");
    let bytes = 0;
    const onChunk = (chunk) => {
      if (bytes === 0) metric("c-first-byte", elapsed(started));
      bytes += chunk.byteLength;
      playback.chunks.push(chunk);
      metric("c-received", kilobytes(bytes));
    };
    try {
      const request = { key: this.key(), method: "POST", body: playback.form, signal };
      const response = await call("vc/convert", request);
      this.say(media ? "Converting: playing while the rest streams in…" : "Converting…");
      if (media) await streamInto(media, response, playback.mime, onChunk);
      else await this.playWhole(playback, response, onChunk);
      this.finished(playback, bytes);
    } catch (error) {
      if (signal.aborted) return;
      playback.streaming = false;
      this.setBusy(false);
      if (bytes === 0) detach(audio);
      this.showError(error instanceof ApiError ? error : this.streamError(error, bytes));
    }
  }

  /** The path without MSE: the response read to its end, then played from a blob. */
  async playWhole(playback, response, onChunk) {
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onChunk(value);
    }
    playback.blob = new Blob(playback.chunks, { type: response.headers.get("Content-Type") ?? "" });
    const audio = $("convert-player");
    audio.src = URL.createObjectURL(playback.blob);
    audio.play().catch(() => {
      this.say(`This browser cannot play ${FORMAT_NAMES[playback.format]}; Download saves it.`, true);
    });
  }

  finished(playback, bytes) {
    playback.streaming = false;
    this.setBusy(false);
    $("convert-download").disabled = false;
    const audio = $("convert-player");
    const seconds = Number.isFinite(audio.duration) ? `${audio.duration.toFixed(1)} s of audio, ` : "";
    this.say(`Done: ${seconds}${kilobytes(bytes)}. Download saves it as .${EXTENSIONS[playback.format]}.`);
  }

  streamError(error, bytes) {
    const what = bytes ? "The stream broke off before the end" : "The audio could not be played";
    return new ApiError(`${what}: ${error.message || error.name}.`);
  }

  stop(message = "Stopped.") {
    const playback = this.playback;
    if (!playback?.streaming) return;
    playback.controller.abort();
    if (playback.mime) detach($("convert-player"));
    playback.streaming = false;
    this.setBusy(false);
    this.say(message);
  }

  setBusy(busy) {
    $("convert-stop").disabled = !busy;
  }

  resetMetrics(playback) {
    metric("c-first-byte", "…");
    metric("c-playing", "…");
    metric("c-received", "0 KB");
    metric("c-seed", String(playback.seed));
    metric("c-mode", playback.mime ? "Media Source Extensions (streamed)" : "Played once received");
  }

  download() {
    const playback = this.playback;
    if (!playback?.chunks.length) return;
    const blob = playback.blob ?? new Blob(playback.chunks, { type: playback.mime });
    saveBlob(blob, `converted-${playback.seed}.${EXTENSIONS[playback.format] ?? "bin"}`);
  }

  // --- errors ----------------------------------------------------------------------------

  clearInvalid() {
    for (const field of document.querySelectorAll("#convert-form [aria-invalid='true']")) {
      field.setAttribute("aria-invalid", "false");
    }
  }

  /** The error in words, its control marked; the source's refusals start with its label. */
  showError(error) {
    if (error.name === "AbortError") return;
    const control = $(FIELDS[error.field] ?? "");
    const fromMicrophone = error.field === "audio" && !$("convert-file").files.length;
    if (control && !fromMicrophone) control.setAttribute("aria-invalid", "true");
    let message = error.message;
    if (error.field === "audio" && error.status) {
      message = `The source recording was refused: ${message[0].toLowerCase()}${message.slice(1)}`;
    }
    if (error.status === 0 && error.field === "audio" && control) control.focus();
    this.say(message, true);
    this.report(error);
  }
}
