// Recording a reference clip from the microphone with MediaRecorder. The server decodes the
// result with PyAV, so whichever container the browser records (WebM/Opus in Chromium and
// Firefox, MP4/AAC in Safari) can be uploaded as it is.

const CONTAINERS = [
  ["audio/webm;codecs=opus", "webm"],
  ["audio/webm", "webm"],
  ["audio/mp4", "m4a"],
  ["audio/ogg;codecs=opus", "ogg"],
];

/** Why recording cannot work here, or "" when it can. */
export function recordingUnavailable() {
  if (!window.isSecureContext)
    return "Recording needs a secure page (https:// or localhost); upload a file instead.";
  if (!navigator.mediaDevices?.getUserMedia || !globalThis.MediaRecorder)
    return "This browser cannot record audio; upload a file instead.";
  return "";
}

function microphoneError(error) {
  if (error.name === "NotAllowedError")
    return "Microphone access was denied. Allow it in the browser's site settings and try again.";
  if (error.name === "NotFoundError") return "No microphone was found.";
  return `The microphone could not be started (${error.message || error.name}).`;
}

/**
 * Start recording; resolves to an object whose `stop()` resolves to {blob, extension}.
 * Rejects with a readable Error when the microphone cannot be opened.
 */
export async function startRecording() {
  let stream;
  try {
    // Unprocessed audio clones best: the server trims and normalises the clip itself.
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    throw new Error(microphoneError(error));
  }
  const [mimeType, extension] =
    CONTAINERS.find(([type]) => MediaRecorder.isTypeSupported(type)) ?? ["", "webm"];
  const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : {});
  const parts = [];
  recorder.addEventListener("dataavailable", (event) => parts.push(event.data));
  const stopped = new Promise((resolve) => recorder.addEventListener("stop", resolve, { once: true }));
  recorder.start(250);
  return {
    async stop() {
      if (recorder.state !== "inactive") recorder.stop();
      await stopped;
      stream.getTracks().forEach((track) => track.stop());
      return { blob: new Blob(parts, { type: recorder.mimeType || mimeType }), extension };
    },
  };
}
