// A recording as the model takes it: 16 kHz mono float32. Any format the browser decodes, decoded
// straight to `sampleRate` (an OfflineAudioContext's decodeAudioData resamples to its own rate),
// its channels mixed down by rendering them into one.
export async function decodeRecording(arrayBuffer, sampleRate) {
  const decoded = await new OfflineAudioContext(1, 1, sampleRate).decodeAudioData(arrayBuffer);
  if (decoded.numberOfChannels === 1) return decoded.getChannelData(0);
  const mixer = new OfflineAudioContext(1, decoded.length, sampleRate);
  const source = mixer.createBufferSource();
  source.buffer = decoded;
  source.connect(mixer.destination);
  source.start();
  return (await mixer.startRendering()).getChannelData(0);
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
