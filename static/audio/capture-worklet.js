// Capture worklet: microphone (device rate, any channel count) -> 24 kHz mono PCM16
// frames of 20 ms (480 samples = 960 bytes), plus an energy VAD for instant barge-in.
//
// Messages to the main thread:
//   {type: "frame", pcm: ArrayBuffer}              960 bytes of PCM16 little-endian
//   {type: "vad", speaking: true,  t}              speech onset (AudioContext time, s)
//   {type: "vad", speaking: false, t}              last voiced instant of the utterance
//   {type: "level", db, floor}                     meter, every 50 ms
// Messages from the main thread:
//   {type: "agentSpeaking", value: bool}           turns the echo guard on/off
//
// The VAD itself (and why it is an energy VAD) lives in vad.js.

import { StreamResampler } from "./resampler.js";
import { EnergyVad, WINDOW_SAMPLES } from "./vad.js";

const TARGET_RATE = 24000;
const FRAME_SAMPLES = 480; // 20 ms at 24 kHz

class CaptureProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.resampler = new StreamResampler(sampleRate, TARGET_RATE);
    this.scratchIn = new Float32Array(128);
    this.scratchOut = new Float32Array(this.resampler.maxOutput(128));
    this.frame = new Int16Array(FRAME_SAMPLES);
    this.frameFill = 0;

    this.winSum = 0;
    this.winFill = 0;
    this.vad = new EnergyVad();
    this.windowsSinceLevel = 0;

    this.port.onmessage = (e) => {
      if (e.data && e.data.type === "agentSpeaking") this.vad.agentSpeaking = !!e.data.value;
    };
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const n = input[0].length;
    if (this.scratchIn.length < n) {
      this.scratchIn = new Float32Array(n);
      this.scratchOut = new Float32Array(this.resampler.maxOutput(n));
    }
    // Down-mix to mono.
    const mono = this.scratchIn.subarray(0, n);
    mono.set(input[0]);
    for (let c = 1; c < input.length; c++) {
      const ch = input[c];
      for (let i = 0; i < n; i++) mono[i] += ch[i];
    }
    if (input.length > 1) for (let i = 0; i < n; i++) mono[i] /= input.length;

    const count = this.resampler.process(mono, this.scratchOut);
    // Time of the end of this block; windows ending inside it are stamped with it
    // (3 ms precision is plenty for barge-in and the e2e figure).
    const blockEndT = currentTime + n / sampleRate;
    for (let i = 0; i < count; i++) {
      const s = this.scratchOut[i];
      this.pushSample(s);
      this.winSum += s * s;
      if (++this.winFill === WINDOW_SAMPLES) this.endWindow(blockEndT);
    }
    return true;
  }

  pushSample(s) {
    const clamped = s > 1 ? 1 : s < -1 ? -1 : s;
    this.frame[this.frameFill++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.frameFill === FRAME_SAMPLES) {
      const pcm = this.frame.buffer;
      this.port.postMessage({ type: "frame", pcm }, [pcm]);
      this.frame = new Int16Array(FRAME_SAMPLES);
      this.frameFill = 0;
    }
  }

  endWindow(t) {
    const meanSquare = this.winSum / WINDOW_SAMPLES;
    this.winSum = 0;
    this.winFill = 0;
    const change = this.vad.pushWindow(meanSquare, t);
    if (change) this.port.postMessage({ type: "vad", ...change });
    if (++this.windowsSinceLevel >= 5) {
      this.windowsSinceLevel = 0;
      this.port.postMessage({ type: "level", db: this.vad.lastDb, floor: this.vad.floorDb });
    }
  }
}

registerProcessor("voiceagent-capture", CaptureProcessor);
