// Capture worklet: microphone (device rate, any channel count) -> 24 kHz mono PCM16
// frames of `frameMs` (processorOptions; 20 ms = 480 samples = 960 bytes when absent),
// plus an energy VAD for instant barge-in. The VAD runs on its own 10 ms windows, so
// the frame duration never delays a barge-in (docs/protocol.md, Microphone framing).
//
// Messages to the main thread:
//   {type: "frame", pcm: ArrayBuffer}              frameMs of PCM16 little-endian
//   {type: "vad", speaking: true,  t}              speech onset (AudioContext time, s)
//   {type: "vad", speaking: false, t}              last voiced instant of the utterance
//   {type: "level", db, floor}                     meter, every 50 ms
// Messages from the main thread:
//   {type: "agentSpeaking", value: bool}           turns the echo guard on/off
//   {type: "frameMs", value: number}               the next frames' duration (10-200 ms)
//
// The VAD itself (and why it is an energy VAD) lives in vad.js.

import { StreamResampler } from "./resampler.js";
import { EnergyVad, WINDOW_SAMPLES } from "./vad.js";

const TARGET_RATE = 24000;
const DEFAULT_FRAME_MS = 20;

function frameSamples(ms) {
  const bounded = Math.min(200, Math.max(10, Math.round(Number(ms) || DEFAULT_FRAME_MS)));
  return (TARGET_RATE / 1000) * bounded;
}

class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.resampler = new StreamResampler(sampleRate, TARGET_RATE);
    this.scratchIn = new Float32Array(128);
    this.scratchOut = new Float32Array(this.resampler.maxOutput(128));
    this.frameSamples = frameSamples(options?.processorOptions?.frameMs);
    this.frame = new Int16Array(this.frameSamples);
    this.frameFill = 0;

    this.winSum = 0;
    this.winFill = 0;
    this.vad = new EnergyVad();
    this.windowsSinceLevel = 0;

    this.port.onmessage = (e) => {
      if (e.data && e.data.type === "agentSpeaking") this.vad.agentSpeaking = !!e.data.value;
      if (e.data && e.data.type === "frameMs") this.frameSamples = frameSamples(e.data.value);
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
    // A new duration applies from the next frame: this one keeps its length.
    if (this.frameFill === this.frame.length) {
      const pcm = this.frame.buffer;
      this.port.postMessage({ type: "frame", pcm }, [pcm]);
      this.frame = new Int16Array(this.frameSamples);
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
