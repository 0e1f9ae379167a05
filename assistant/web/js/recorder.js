// The browser's microphone to a 16 kHz, 16-bit mono WAV, which POST /v1/assist/audio takes
// (MediaRecorder would give WebM/Opus, which the gateway does not decode). getUserMedia and
// AudioWorklet exist only in a secure context: https://, or http://localhost / 127.0.0.1.

export const RATE = 16000;

export function microphoneAvailable() {
  return Boolean(
    window.isSecureContext && navigator.mediaDevices?.getUserMedia && window.AudioWorkletNode,
  );
}

export class Recorder {
  async start() {
    if (!microphoneAvailable()) {
      throw new Error(
        "the browser allows the microphone only on https:// or http://localhost: open the " +
          "dashboard on the gateway itself as http://localhost, or serve it over HTTPS",
      );
    }
    this.chunks = [];
    // The audio graph first, the microphone last: the first word is spoken as soon as the
    // microphone opens, and must not be lost while the worklet loads.
    this.context = new AudioContext();
    await this.context.audioWorklet.addModule("/static/js/recorder-worklet.js");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({
        audio: {
          channelCount: 1,
          echoCancellation: false,
          noiseSuppression: false,
          autoGainControl: false,
        },
      });
    } catch (error) {
      await this.context.close();
      throw error;
    }
    this.source = this.context.createMediaStreamSource(this.stream);
    this.node = new AudioWorkletNode(this.context, "pcm-recorder");
    this.node.port.onmessage = (event) => this.chunks.push(event.data);
    // The node must reach the destination to be pulled; its output is silence, and muted.
    this.mute = new GainNode(this.context, { gain: 0 });
    this.source.connect(this.node).connect(this.mute).connect(this.context.destination);
    await this.context.resume();
    this.started = performance.now();
  }

  seconds() {
    return this.started ? (performance.now() - this.started) / 1000 : 0;
  }

  /** Stop and return the recording as a WAV Blob (16 kHz, 16-bit, mono). */
  async stop() {
    const rate = this.context.sampleRate;
    this.source.disconnect();
    this.node.disconnect();
    for (const track of this.stream.getTracks()) track.stop();
    await this.context.close();
    this.started = null;
    const total = this.chunks.reduce((n, c) => n + c.length, 0);
    const samples = new Float32Array(total);
    let at = 0;
    for (const c of this.chunks) {
      samples.set(c, at);
      at += c.length;
    }
    this.chunks = [];
    return wav(downsample(samples, rate, RATE), RATE);
  }
}

/** Average each output sample's span of input samples (a box filter against aliasing). */
export function downsample(samples, from, to) {
  if (from === to) return samples;
  const ratio = from / to;
  const out = new Float32Array(Math.floor(samples.length / ratio));
  for (let i = 0; i < out.length; i++) {
    const start = Math.floor(i * ratio);
    const end = Math.min(samples.length, Math.max(start + 1, Math.floor((i + 1) * ratio)));
    let sum = 0;
    for (let j = start; j < end; j++) sum += samples[j];
    out[i] = sum / (end - start);
  }
  return out;
}

/** A RIFF/WAVE file of 16-bit little-endian PCM, mono. */
export function wav(samples, rate) {
  const buffer = new ArrayBuffer(44 + samples.length * 2);
  const v = new DataView(buffer);
  const text = (offset, str) =>
    [...str].forEach((ch, i) => v.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF");
  v.setUint32(4, 36 + samples.length * 2, true);
  text(8, "WAVE");
  text(12, "fmt ");
  v.setUint32(16, 16, true); // fmt chunk size
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, rate, true);
  v.setUint32(28, rate * 2, true); // bytes per second
  v.setUint16(32, 2, true); // bytes per frame
  v.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  v.setUint32(40, samples.length * 2, true);
  for (let i = 0; i < samples.length; i++) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    v.setInt16(44 + i * 2, x < 0 ? x * 0x8000 : x * 0x7fff, true);
  }
  return new Blob([buffer], { type: "audio/wav" });
}
