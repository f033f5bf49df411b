// Calls to the service: the key (kept in localStorage), fetch with the X-API-Key header, and
// errors turned into sentences a person can act on (the service answers
// {"error": {"code", "message", "field"}}; the console never shows a bare status code).

const KEY_STORAGE = "chatterbox-console.api-key";

export const UNREACHABLE =
  "Cannot reach the server. Check that it is running and that this device is online.";

export function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) ?? "";
  } catch {
    return ""; // storage disabled (private mode in some browsers): the key lives in the field
  }
}

export function storeKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // nothing to do: the field still holds the key for this visit
  }
}

/** An error to show as it is: `message` is a sentence; `field` names the parameter at fault. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "", field = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.field = field;
  }

  get isAuth() {
    return this.status === 401 || (this.status === 403 && this.code === "forbidden");
  }
}

/**
 * fetch() with the key in the header; resolves to the Response when it is 2xx, otherwise
 * throws an ApiError with a readable message. An abort is rethrown as is (AbortError).
 */
export async function call(path, { key = "", method = "GET", json, body, signal } = {}) {
  const headers = {};
  if (key) headers["X-API-Key"] = key;
  const init = { method, headers, signal, body };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(UNREACHABLE);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export async function callJson(path, options) {
  const response = await call(path, options);
  return response.json();
}

/** The ApiError for a non-2xx response, read from its JSON body when it has one. */
export async function errorFrom(response) {
  let detail = {};
  try {
    detail = (await response.json()).error ?? {};
  } catch {
    // not JSON (a proxy's error page): the status alone has to do
  }
  const retryAfter = Number(response.headers.get("Retry-After")) || 0;
  const message = explain(response.status, detail, retryAfter);
  return new ApiError(message, { status: response.status, code: detail.code, field: detail.field });
}

function sentence(text) {
  const trimmed = String(text ?? "").trim();
  if (!trimmed) return "";
  const capital = trimmed[0].toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

function later(seconds) {
  return seconds ? `Try again in ${seconds} s.` : "Try again in a few seconds.";
}

const BUSY = {
  not_ready: "The server is still loading the model.",
  overloaded: "The server is busy with other requests.",
  worker_draining: "The server is shutting down.",
  worker_crashed: "A worker stopped before the audio started.",
};

/** A sentence for an HTTP error: what happened and what to do about it. */
export function explain(status, { code = "", message = "" } = {}, retryAfter = 0) {
  const said = sentence(message);
  if (status === 401) return "An API key is needed. Enter it in the API key field at the top.";
  if (status === 403 && code === "read_only")
    return "This voice comes with the server (preloaded) and cannot be deleted.";
  if (status === 403) return "The API key was not accepted. Check the key field.";
  if (status === 404 && code === "voice_not_found")
    return `That voice was not found: it may have been deleted. Refresh the voice list. (${said})`;
  if (status === 404) return "The server has no such address. Is this page served by the TTS service?";
  if (status === 409)
    return "A voice with that name already exists. Choose another name, or tick “Replace”.";
  if (status === 413) return `The file is too large for the server. ${said}`;
  if (status === 415) return `The server cannot read this file as audio. ${said}`;
  if (status === 400 || status === 422) return said || "The server did not accept the request.";
  if (status === 503) return `${BUSY[code] ?? "The server cannot take the request now."} ${later(retryAfter)}`;
  if (status >= 500) return "The server hit an internal error; its log has the details.";
  return `The request failed (HTTP status ${status}). ${said}`.trim();
}
