// The Node clients, unmodified, against the service: each check drives one client and reports
// what it got as JSON; tests/clients/test_node_clients.py runs this once and asserts on it.
//
// node checks.mjs RESULTS.json [check ...]   (no names: every check; see GROUPS)
// Environment: SERVICE_URL (HTTP: http://host:port), RELAY_URL (the WebSocket clients go
// through a relay that notes what passes: http://host:port), API_KEY, VOICE, MAX_CONTEXTS.
import { writeFileSync } from 'node:fs';
import { ElevenLabsClient } from '@elevenlabs/elevenlabs-js';
import { initializeLogger } from '@livekit/agents';
import * as livekitElevenLabs from '@livekit/agents-plugin-elevenlabs';
import * as livekitOpenAI from '@livekit/agents-plugin-openai';
import OpenAI from 'openai';

const { SERVICE_URL, RELAY_URL, API_KEY, VOICE } = process.env;
const MAX_CONTEXTS = Number(process.env.MAX_CONTEXTS ?? 5);
const NEXT = 'Of course. The lamp is lit now.';
const SHORT = 'The lamp is lit.'; // the HTTP clients' text
const INTERRUPTED =
  'The keeper climbed the stairs every evening to light the lamp. He counted every step as ' +
  'he went, and the ships far out at sea waited for the beam. When the fog rolled in from the ' +
  'cold water he rang the bell until morning came.';
const CHECK_TIMEOUT_MS = 60_000;
// One try, a generous timeout: a busy CPU may be silent for seconds before the first audio.
const CONN_OPTIONS = { maxRetry: 0, retryIntervalMs: 0, timeoutMs: 60_000 };

initializeLogger({ pretty: false, level: 'fatal' });

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The text as an LLM streams it: a word at a time, each after its space. */
const tokens = (text) => text.split(' ').map((word, i) => (i === 0 ? word : ` ${word}`));

async function bytesOf(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

const elevenlabs = () => new ElevenLabsClient({ apiKey: API_KEY, baseUrl: SERVICE_URL });

/** LiveKit's ElevenLabs TTS on one socket (through the relay), its errors noted. */
function livekitTTS(options = {}) {
  const tts = new livekitElevenLabs.TTS({
    apiKey: API_KEY, voiceId: VOICE, baseURL: `${RELAY_URL}/v1`, ...options,
  });
  tts.errors = [];
  tts.on('error', (event) => tts.errors.push(String(event.error?.message ?? event.error)));
  return tts;
}

/** Push ``text`` word by word; all events (or, with ``bargeIn``, those up to the first timed
 * words, after which the stream is closed mid-reply). */
async function livekitReply(stream, text, { bargeIn = false } = {}) {
  for (const token of tokens(text)) {
    stream.pushText(token);
    await sleep(20);
  }
  const events = [];
  if (!bargeIn) {
    stream.endInput();
    for await (const event of stream) {
      if (event !== livekitElevenLabs.SynthesizeStream.END_OF_STREAM) events.push(event);
    }
    return events;
  }
  while (!events.some((e) => e.timedTranscripts?.length)) {
    const { value, done } = await stream.next();
    if (done) throw new Error('the reply ended before any word was timed');
    events.push(value);
  }
  stream.close();
  return events;
}

function describe(events) {
  const frames = events.filter((e) => e.frame);
  return {
    sample_rates: [...new Set(frames.map((e) => e.frame.sampleRate))],
    samples: frames.reduce((n, e) => n + e.frame.samplesPerChannel, 0),
    words: events.flatMap((e) => e.timedTranscripts ?? []).map((w) => [w.text, w.startTime, w.endTime]),
  };
}

let sharedTTS;
const sharedLivekit = () => (sharedTTS ??= livekitTTS());

const checks = {
  async elevenlabs_convert() {
    const audio = await bytesOf(
      await elevenlabs().textToSpeech.convert(VOICE, { text: SHORT, outputFormat: 'mp3_44100_128' }),
    );
    return { bytes: audio.length, head: audio.subarray(0, 4).toString('hex') };
  },

  async elevenlabs_stream() {
    const audio = await bytesOf(
      await elevenlabs().textToSpeech.stream(VOICE, { text: SHORT, outputFormat: 'pcm_24000' }),
    );
    return { bytes: audio.length };
  },

  async elevenlabs_stream_with_timestamps() {
    const chunks = await elevenlabs().textToSpeech.streamWithTimestamps(VOICE, {
      text: SHORT, outputFormat: 'pcm_24000',
    });
    let bytes = 0;
    const characters = [];
    const starts = [];
    for await (const chunk of chunks) {
      bytes += Buffer.from(chunk.audioBase64 ?? '', 'base64').length;
      characters.push(...(chunk.alignment?.characters ?? []));
      starts.push(...(chunk.alignment?.characterStartTimesSeconds ?? []));
    }
    return { bytes, text: characters.join(''), starts };
  },

  async elevenlabs_voices() {
    const { voices } = await elevenlabs().voices.getAll();
    return { voice_ids: voices.map((v) => v.voiceId), names: voices.map((v) => v.name) };
  },

  async livekit_elevenlabs_barge_in() {
    const tts = sharedLivekit();
    const stream = tts.stream({ connOptions: CONN_OPTIONS });
    const events = await livekitReply(stream, INTERRUPTED, { bargeIn: true });
    return { context: stream.contextId, ...describe(events), errors: tts.errors };
  },

  async livekit_elevenlabs_reply() {
    const tts = sharedLivekit(); // the socket the barge-in used, if it ran first
    const stream = tts.stream({ connOptions: CONN_OPTIONS });
    const events = await livekitReply(stream, NEXT);
    return { context: stream.contextId, ...describe(events), errors: tts.errors };
  },

  async livekit_elevenlabs_refused() {
    // MAX_CONTEXTS replies left open (each has spoken a sentence), then one more on the socket
    const tts = livekitTTS();
    const open = Array.from({ length: MAX_CONTEXTS }, () => tts.stream({ connOptions: CONN_OPTIONS }));
    for (const stream of open) {
      stream.pushText('Hello there. ');
      stream.flush();
    }
    await Promise.all(open.map((stream) => stream.next())); // each has audio: each is open
    const refused = tts.stream({ connOptions: CONN_OPTIONS });
    const started = performance.now();
    for (const token of tokens(NEXT)) refused.pushText(token);
    refused.endInput();
    const events = [];
    for await (const event of refused) {
      if (event !== livekitElevenLabs.SynthesizeStream.END_OF_STREAM) events.push(event);
    }
    const endedMs = performance.now() - started;
    for (const stream of open) stream.close();
    await tts.close();
    return { context: refused.contextId, ended_ms: endedMs, frames: events.length, errors: tts.errors };
  },

  async livekit_openai() {
    const tts = new livekitOpenAI.TTS({
      baseURL: `${SERVICE_URL}/v1`, apiKey: API_KEY, model: 'tts-1', voice: VOICE,
    });
    const errors = [];
    tts.on('error', (event) => errors.push(String(event.error?.message ?? event.error)));
    const events = [];
    for await (const event of tts.synthesize(SHORT)) events.push(event);
    return { ...describe(events), errors };
  },

  async openai_voice_object() {
    const client = new OpenAI({ baseURL: `${SERVICE_URL}/v1`, apiKey: API_KEY });
    const response = await client.audio.speech.create({
      model: 'tts-1', voice: { id: VOICE }, input: SHORT, response_format: 'wav',
    });
    const audio = Buffer.from(await response.arrayBuffer());
    return { bytes: audio.length, head: audio.subarray(0, 4).toString('hex') };
  },
};

async function run(name) {
  const started = performance.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([checks[name](), timeout]);
    return { ok: true, ...result, ms: performance.now() - started };
  } catch (error) {
    return { ok: false, error: String(error?.stack ?? error), ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

// Three sequences side by side (the worker batches them; the test service has 4 slots, so none
// waits for one): the LiveKit socket's two replies, and the HTTP clients' requests in two; then
// the refusal, which needs MAX_CONTEXTS free slots.
const GROUPS = [
  [
    ['livekit_elevenlabs_barge_in', 'livekit_elevenlabs_reply'],
    ['elevenlabs_convert', 'elevenlabs_stream', 'elevenlabs_voices'],
    ['elevenlabs_stream_with_timestamps', 'livekit_openai', 'openai_voice_object'],
  ],
  [['livekit_elevenlabs_refused']],
];

const [resultsPath, ...only] = process.argv.slice(2);
const results = { uncaught: [] }; // what escaped a check: reported, and the checks go on
for (const event of ['uncaughtException', 'unhandledRejection']) {
  process.on(event, (error) => results.uncaught.push(String(error?.stack ?? error)));
}
async function sequence(names) {
  for (const name of names.filter((n) => !only.length || only.includes(n))) {
    results[name] = await run(name);
    writeFileSync(resultsPath, JSON.stringify(results, null, 1));
  }
}
for (const group of GROUPS) await Promise.all(group.map(sequence));
await sharedTTS?.close();
process.exit(0);
