// The voice picker and the voice library: list (GET /voices?details=true), upload a file or a
// microphone recording (POST /voices), delete (DELETE /voices/{id}; preloaded voices are
// read-only, so their Delete button is disabled).

import { call, callJson } from "./api.js";
import { recordingUnavailable, startRecording } from "./recorder.js";

const BUILT_IN = "";
const LONGEST_RECORDING_S = 60;

/** A voice as its picker shows it: its id, length, and whether it is preloaded or unusable. */
export function describe(voice) {
  const parts = [];
  if (voice.duration_seconds !== undefined) parts.push(`${voice.duration_seconds.toFixed(1)} s`);
  if (voice.preloaded) parts.push("preloaded");
  if (voice.usable === false) parts.push("unusable");
  return parts.length ? `${voice.voice_id} (${parts.join(", ")})` : voice.voice_id;
}

function timestamp() {
  return new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
}

export class VoiceLibrary {
  /**
   * `el`: {select, remove, form, file, name, overwrite, record, message};
   * `key()` reads the key; `report(error)` shows an error that concerns the key.
   */
  constructor(el, key, report) {
    this.el = el;
    this.key = key;
    this.report = report;
    this.voices = new Map();
    this.listeners = []; // other pickers (the convert panel's) fed the same list
    this.recording = null;
    this.recordLabel = el.record.textContent;
    el.select.addEventListener("change", () => this.updateButtons());
    el.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.uploadFile();
    });
    el.remove.addEventListener("click", () => this.removeSelected());
    el.record.addEventListener("click", () => this.toggleRecording());
    const why = recordingUnavailable();
    if (why) {
      el.record.disabled = true;
      el.record.title = why;
    }
    this.render([]);
  }

  /** Call `listener(voices)` with every list loaded from now on. */
  subscribe(listener) {
    this.listeners.push(listener);
  }

  get selected() {
    return this.el.select.value;
  }

  say(text, isError = false) {
    this.el.message.textContent = text;
    this.el.message.classList.toggle("error", isError);
  }

  fail(error) {
    this.say(error.message, true);
    this.report(error);
  }

  async refresh(select = this.selected) {
    try {
      const voices = await callJson("voices?details=true", { key: this.key() });
      this.render(voices, select);
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  render(voices, select = BUILT_IN) {
    this.voices = new Map(voices.map((voice) => [voice.voice_id, voice]));
    const options = [new Option("Built-in voice (the model's own)", BUILT_IN)];
    for (const voice of voices) {
      const option = new Option(describe(voice), voice.voice_id);
      option.disabled = voice.usable === false;
      options.push(option);
    }
    this.el.select.replaceChildren(...options);
    this.el.select.value = this.voices.has(select) ? select : BUILT_IN;
    this.updateButtons();
    for (const listener of this.listeners) listener(voices);
  }

  updateButtons() {
    const voice = this.voices.get(this.selected);
    this.el.remove.disabled = !voice || voice.preloaded;
    this.el.remove.title = voice?.preloaded ? "Preloaded voices are read-only." : "";
  }

  async upload(blob, fileName, voiceId) {
    const form = new FormData();
    form.append("file", blob, fileName);
    if (voiceId) form.append("voice_id", voiceId);
    if (this.el.overwrite.checked) form.append("overwrite", "true");
    this.say("Uploading…");
    try {
      const response = await call("voices", { key: this.key(), method: "POST", body: form });
      const result = await response.json();
      const notes = result.notes.length ? ` Note: ${result.notes.join("; ")}.` : "";
      await this.refresh(result.voice_id);
      this.say(
        `Voice “${result.voice_id}” uploaded (${result.duration_seconds} s of sound) and selected.${notes}`,
      );
      return true;
    } catch (error) {
      this.fail(error);
      return false;
    }
  }

  async uploadFile() {
    const file = this.el.file.files[0];
    if (!file) {
      this.say("Choose an audio file first (or record one).", true);
      this.el.file.focus();
      return;
    }
    if (await this.upload(file, file.name, this.el.name.value.trim())) {
      this.el.form.reset();
    }
  }

  async removeSelected() {
    const id = this.selected;
    if (!id || !window.confirm(`Delete the voice “${id}”? This cannot be undone.`)) return;
    try {
      await call(`voices/${encodeURIComponent(id)}`, { key: this.key(), method: "DELETE" });
      await this.refresh(BUILT_IN);
      this.say(`Voice “${id}” deleted.`);
    } catch (error) {
      this.fail(error);
    }
  }

  async toggleRecording() {
    if (this.recording) return this.finishRecording();
    try {
      this.recording = await startRecording();
    } catch (error) {
      this.say(error.message, true);
      return;
    }
    const started = Date.now();
    this.el.record.textContent = "Stop and upload";
    this.el.record.setAttribute("aria-pressed", "true");
    this.ticker = setInterval(() => {
      const seconds = Math.round((Date.now() - started) / 1000);
      this.say(`Recording… ${seconds} s. Speak for 10 to 20 s, then press “Stop and upload”.`);
      if (seconds >= LONGEST_RECORDING_S) this.finishRecording();
    }, 500);
    this.say("Recording… Speak for 10 to 20 s, then press “Stop and upload”.");
  }

  async finishRecording() {
    const recording = this.recording;
    this.recording = null;
    clearInterval(this.ticker);
    this.el.record.textContent = this.recordLabel;
    this.el.record.setAttribute("aria-pressed", "false");
    const { blob, extension } = await recording.stop();
    const name = this.el.name.value.trim() || `recording-${timestamp()}`;
    if (await this.upload(blob, `voice.${extension}`, name)) this.el.name.value = "";
  }
}
