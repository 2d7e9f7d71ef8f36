// An exported quranft model in the browser: onnxruntime-web (WASM backend, one thread) runs the
// graph (raw 16 kHz mono float32 audio in, CTC log-probs out), and greedy CTC decoding with the
// tokenizer's pieces gives the transcript. Everything the runtime needs besides the graph is in
// the file's own metadata (the SentencePiece tokenizer, the blank, the sample rate, max_seconds),
// as quranft's Python runtime (models/onnx_model.py) reads it: one file to ship.
import * as ort from "./node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";

// One thread: onnxruntime-web's multithreaded WASM start-up hangs in the deployed app's workers.
ort.env.wasm.numThreads = 1;
// An absolute path, so that the page works whatever folder the server serves it from.
ort.env.wasm.wasmPaths = new URL("./node_modules/onnxruntime-web/dist/", import.meta.url).href;

export const ORT_VERSION = ort.env.versions.web;

// metadata_props keys of an export (models/onnx_model.py)
const TOKENIZER = "quranft.tokenizer", BLANK = "quranft.blank", SAMPLE_RATE = "quranft.sample_rate",
  MAX_SECONDS = "quranft.max_seconds", FORMAT = "quranft.format";

// A protobuf reader of the few fields the page needs: ONNX ModelProto's metadata_props (field 14,
// entries of key 1 and value 2) and SentencePiece ModelProto's pieces (field 1: piece 1, type 3).
// Written here (about 30 lines) because the libraries that read them need a bundler or the
// schemas compiled, and the page is plain ES modules; the graph itself is read by onnxruntime.
function* fields(bytes, start = 0, end = bytes.length) {
  let at = start;
  const varint = () => {
    let value = 0, scale = 1, byte;
    do {
      byte = bytes[at++];
      value += (byte & 0x7f) * scale; // Number arithmetic: a length may exceed 2^31
      scale *= 128;
    } while (byte & 0x80);
    return value;
  };
  while (at < end) {
    const tag = varint(), field = Math.floor(tag / 8), wire = tag % 8;
    if (wire === 0) yield { field, value: varint() };
    else if (wire === 2) {
      const length = varint();
      yield { field, start: at, end: at + length };
      at += length;
    } else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else throw new Error(`not a protobuf message (wire type ${wire} at byte ${at})`);
  }
}

const utf8 = new TextDecoder();
const text = (bytes, f) => utf8.decode(bytes.subarray(f.start, f.end));

export function onnxMetadata(bytes) {
  const metadata = {};
  for (const f of fields(bytes)) {
    if (f.field !== 14 || f.start === undefined) continue;
    let key = "", value = "";
    for (const g of fields(bytes, f.start, f.end)) {
      if (g.field === 1) key = text(bytes, g);
      if (g.field === 2) value = text(bytes, g);
    }
    metadata[key] = value;
  }
  return metadata;
}

// SentencePiece piece types (sentencepiece_model.proto)
const UNKNOWN = 2, CONTROL = 3, BYTE = 6;

export function sentencePieces(bytes) {
  const pieces = [];
  for (const f of fields(bytes)) {
    if (f.field !== 1 || f.start === undefined) continue;
    const piece = { piece: "", type: 1 };
    for (const g of fields(bytes, f.start, f.end)) {
      if (g.field === 1) piece.piece = text(bytes, g);
      if (g.field === 3) piece.type = g.value;
    }
    pieces.push(piece);
  }
  return pieces;
}

// Greedy CTC: the best class per frame, repeats collapsed, blanks dropped (quran/tokenizer.py).
export function greedyIds(logProbs, frames, classes, blank) {
  const ids = [];
  let previous = -1;
  for (let frame = 0; frame < frames; frame++) {
    let best = 0;
    for (let c = 1; c < classes; c++) {
      if (logProbs[frame * classes + c] > logProbs[frame * classes + best]) best = c;
    }
    if (best !== previous && best !== blank) ids.push(best);
    previous = best;
  }
  return ids;
}

// As SentencePiece's decode: "▁" opens a word, the first one's space dropped; control pieces are
// nothing, the unknown one " ⁇ ", byte pieces their byte.
export function idsToText(ids, pieces) {
  const bytes = [];
  const encoder = new TextEncoder();
  for (const id of ids) {
    const { piece, type } = pieces[id];
    if (type === CONTROL) continue;
    if (type === BYTE) bytes.push(parseInt(piece.slice(3, 5), 16));
    else bytes.push(...encoder.encode(type === UNKNOWN ? " \u2047 " : piece.replaceAll("\u2581", " ")));
  }
  const decoded = utf8.decode(new Uint8Array(bytes));
  return decoded.startsWith(" ") ? decoded.slice(1) : decoded;
}

function base64Bytes(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export class Model {
  // `bytes`: the whole .onnx file (Uint8Array); `options`: onnxruntime-web session options over
  // the page's own (enableProfiling: scripts/browser_profile.py)
  static async create(bytes, name, options = {}) {
    let metadata;
    try {
      metadata = onnxMetadata(bytes);
    } catch (error) {
      throw new Error(`${name}: not an ONNX file (${error.message})`);
    }
    for (const key of [TOKENIZER, BLANK, SAMPLE_RATE, MAX_SECONDS]) {
      if (!(key in metadata)) throw new Error(`${name}: not a quranft export (no ${key} in its metadata)`);
    }
    let session;
    try {
      session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all",
        ...options });
    } catch (error) {
      throw new Error(`${name}: onnxruntime-web cannot load it (${error.message ?? error})`);
    }
    return new Model(session, metadata, name);
  }

  constructor(session, metadata, name) {
    this.session = session;
    this.name = name;
    this.pieces = sentencePieces(base64Bytes(metadata[TOKENIZER]));
    this.blank = Number(metadata[BLANK]);
    this.sampleRate = Number(metadata[SAMPLE_RATE]);
    this.maxSeconds = Number(metadata[MAX_SECONDS]);
    this.format = metadata[FORMAT] ?? "fp32";
  }

  // One clip (Float32Array of 16 kHz mono samples) to its log-probs: {data, frames, classes, ms}.
  async logProbs(audio) {
    if (audio.length > this.maxSeconds * this.sampleRate) {
      throw new Error(`${(audio.length / this.sampleRate).toFixed(1)} s of audio: ${this.name} takes clips of at most ` +
        `${this.maxSeconds} s (export.max_seconds)`);
    }
    const feeds = {
      audio: new ort.Tensor("float32", audio, [1, audio.length]),
      audio_lengths: new ort.Tensor("int64", BigInt64Array.from([BigInt(audio.length)]), [1]),
    };
    const started = performance.now();
    const outputs = await this.session.run(feeds);
    const ms = performance.now() - started;
    const [, frames, classes] = outputs.log_probs.dims;
    const length = Number(outputs.frame_lengths.data[0]);
    const data = outputs.log_probs.data.slice(0, length * classes);
    for (const name in outputs) outputs[name].dispose();
    return { data, frames: length, classes, ms, paddedFrames: frames };
  }

  text(logProbs) {
    return idsToText(greedyIds(logProbs.data, logProbs.frames, logProbs.classes, this.blank), this.pieces);
  }
}
