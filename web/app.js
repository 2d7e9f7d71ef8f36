// The reference page: open an exported model, pick a recording or record one, and see the
// transcript and the timings, all computed in the browser. window.quranft is the small API the
// Python browser check (quranft/models/browser.py) drives this same page with.
import { modelBytes } from "./cache.js";
import { decodeRecording, startRecording } from "./audio.js";
import { Model, ORT_VERSION } from "./model.js";

let model = null;
const $ = (id) => document.getElementById(id);

function show(id, text) {
  $(id).textContent = text;
}

async function open(bytes, name, source, started, options = {}) {
  if (model !== null) {
    await model.session.release(); // one model at a time: a real-size one holds a few hundred MB
    model = null;
  }
  model = await Model.create(bytes, name, options);
  const loadMs = performance.now() - started;
  show("model-status", `${name}: ${model.format}, loaded from the ${source} in ${loadMs.toFixed(0)} ms`);
  $("recording").disabled = $("record").disabled = false;
  return { loadMs, source, format: model.format, blank: model.blank, sampleRate: model.sampleRate,
    maxSeconds: model.maxSeconds, classes: model.pieces.length + 1 };
}

// A model by URL, from the cache when it holds this version (cache.js); `options` as Model.create's.
async function loadUrl(url, options = {}) {
  const started = performance.now();
  const { bytes, source } = await modelBytes(url);
  return open(bytes, url, source, started, options);
}

async function loadFile(file) {
  const started = performance.now();
  return open(new Uint8Array(await file.arrayBuffer()), file.name, "file", started);
}

// A recording's bytes (any format the browser decodes) to its transcript and timings.
async function transcribeBytes(arrayBuffer) {
  if (model === null) throw new Error("open a model first");
  const started = performance.now();
  const audio = await decodeRecording(arrayBuffer, model.sampleRate);
  const decodeMs = performance.now() - started;
  const logProbs = await model.logProbs(audio);
  const text = model.text(logProbs);
  const result = { text, seconds: audio.length / model.sampleRate, decodeMs, inferenceMs: logProbs.ms,
    frames: logProbs.frames };
  show("transcript", text || "(nothing heard)");
  show("timings", `${result.seconds.toFixed(2)} s of audio: decoded and resampled in ${decodeMs.toFixed(0)} ms, ` +
    `the model ran in ${logProbs.ms.toFixed(0)} ms (${logProbs.frames} frames)`);
  return result;
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function fromBase64(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

window.quranft = {
  ortVersion: ORT_VERSION,
  load: loadUrl,
  // a model loaded with {enableProfiling: true}: onnxruntime-web writes each run's events (one per
  // node: its kernel time, op type, shapes) to the console as JSON lines; this ends the profile
  endProfiling() {
    if (model === null) throw new Error("open a model first");
    model.session.endProfiling();
  },
  // 16 kHz mono float32 samples (base64, little-endian) to log-probs (base64 float32, frames x
  // classes), the page's own transcript of them and the graph's run time in ms
  async logProbs(audioBase64) {
    if (model === null) throw new Error("open a model first");
    const audio = new Float32Array(fromBase64(audioBase64).buffer);
    const logProbs = await model.logProbs(audio);
    return { data: toBase64(new Uint8Array(logProbs.data.buffer, logProbs.data.byteOffset, logProbs.data.byteLength)),
      frames: logProbs.frames, classes: logProbs.classes, ms: logProbs.ms, text: model.text(logProbs) };
  },
  // a recording by URL, as the file picker's path takes it
  async transcribeUrl(url) {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: cannot be read (HTTP ${response.status})`);
    return transcribeBytes(await response.arrayBuffer());
  },
};

function reportError(id) {
  return (error) => show(id, `error: ${error.message ?? error}`);
}

$("model").addEventListener("change", (event) => {
  show("model-status", "loading…");
  loadFile(event.target.files[0]).catch(reportError("model-status"));
});
$("recording").addEventListener("change", async (event) => {
  show("transcript", "transcribing…");
  transcribeBytes(await event.target.files[0].arrayBuffer()).catch(reportError("transcript"));
});
let recording = null;
$("record").addEventListener("click", async () => {
  if (recording === null) {
    recording = await startRecording().catch((error) => { reportError("transcript")(error); return null; });
    if (recording !== null) $("record").textContent = "Stop and transcribe";
    return;
  }
  const bytes = await recording.stop();
  recording = null;
  $("record").textContent = "Record";
  transcribeBytes(bytes).catch(reportError("transcript"));
});
show("runtime", `onnxruntime-web ${ORT_VERSION}, WASM, one thread`);
const url = new URLSearchParams(location.search).get("model");
if (url) {
  show("model-status", `loading ${url}…`);
  loadUrl(url).catch(reportError("model-status"));
}
