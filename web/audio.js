// A recording as the model takes it: 16 kHz mono float32. Any format the browser decodes; the
// browser's OfflineAudioContext resamples and mixes the channels down.
export async function decodeRecording(arrayBuffer, sampleRate) {
  const context = new AudioContext();
  let decoded;
  try {
    decoded = await context.decodeAudioData(arrayBuffer);
  } finally {
    context.close();
  }
  if (decoded.sampleRate === sampleRate && decoded.numberOfChannels === 1) return decoded.getChannelData(0);
  const length = Math.ceil(decoded.duration * sampleRate);
  const offline = new OfflineAudioContext(1, length, sampleRate);
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  return (await offline.startRendering()).getChannelData(0);
}

// Records from the microphone until `stop()` is called; resolves to the recording's bytes.
export async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (event) => chunks.push(event.data);
  const finished = new Promise((resolve) => {
    recorder.onstop = async () => {
      stream.getTracks().forEach((track) => track.stop());
      resolve(await new Blob(chunks, { type: recorder.mimeType }).arrayBuffer());
    };
  });
  recorder.start();
  return { stop: () => { recorder.stop(); return finished; } };
}
