// Windowed-sinc sample-rate conversion shared by the capture and playback worklets.
//
// Why not linear interpolation: capture goes from 44.1/48 kHz down to 24 kHz, and a
// linear resampler folds everything above 12 kHz back into the speech band (the server's
// VAD and STT then hear hiss). A short Blackman-windowed sinc low-passes and interpolates
// in one step; its cost (~2 x 16 multiply-adds per 24 kHz sample) is negligible in the
// audio thread.
//
// The kernel is tabulated for PHASES fractional offsets so the inner loop does no
// trigonometry. Every phase row is normalised to unit sum: silence stays silence and DC
// is preserved exactly.

const PHASES = 128;

/**
 * Build the kernel table for converting `inRate` to `outRate`.
 * Returns {half, table}: table[p * 2 * half + k] is the weight of input sample
 * floor(t) - half + 1 + k for an output at fractional offset p / PHASES past floor(t).
 */
export function buildKernel(inRate, outRate, baseHalf = 8) {
  // When decimating, the cutoff moves down to the output Nyquist, and the kernel widens
  // in input samples to keep the same transition band.
  const ratio = Math.min(1, outRate / inRate);
  const cutoff = 0.92 * ratio; // fraction of the input Nyquist frequency
  const half = Math.ceil(baseHalf / ratio);
  const taps = 2 * half;
  const table = new Float32Array((PHASES + 1) * taps);
  for (let p = 0; p <= PHASES; p++) {
    const frac = p / PHASES;
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      const x = k - half + 1 - frac; // distance from the output position, in input samples
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * cutoff * x) / (Math.PI * cutoff * x);
      const w = blackman((x + half) / (2 * half));
      const v = sinc * w;
      table[p * taps + k] = v;
      sum += v;
    }
    for (let k = 0; k < taps; k++) table[p * taps + k] /= sum;
  }
  return { half, taps, table, phases: PHASES };
}

function blackman(u) {
  if (u <= 0 || u >= 1) return 0;
  return 0.42 - 0.5 * Math.cos(2 * Math.PI * u) + 0.08 * Math.cos(4 * Math.PI * u);
}

/**
 * Streaming (push) resampler: feed blocks of input, get blocks of output.
 * Keeps only the input context the kernel still needs, so memory is bounded by the
 * largest block pushed plus the kernel width.
 */
export class StreamResampler {
  constructor(inRate, outRate, baseHalf = 8) {
    const { half, taps, table, phases } = buildKernel(inRate, outRate, baseHalf);
    this.step = inRate / outRate; // input samples advanced per output sample
    this.half = half;
    this.taps = taps;
    this.table = table;
    this.phases = phases;
    this.buf = new Float32Array(4096 + taps);
    // Start with half - 1 zeros of left context; the first output lines up with the
    // first input sample.
    this.len = half - 1;
    this.t = half - 1;
  }

  /** The largest output count `process` can return for an input of `n` samples. */
  maxOutput(n) {
    return Math.ceil((n + this.taps) / this.step) + 2;
  }

  /**
   * Resample `input` (Float32Array) into `output`; returns the number of samples written.
   * `output` must hold at least maxOutput(input.length) samples.
   */
  process(input, output) {
    if (this.len + input.length > this.buf.length) {
      const grown = new Float32Array(2 * (this.len + input.length));
      grown.set(this.buf.subarray(0, this.len));
      this.buf = grown;
    }
    this.buf.set(input, this.len);
    this.len += input.length;

    const { buf, half, taps, table, phases, step } = this;
    let t = this.t;
    let n = 0;
    while (Math.floor(t) + half < this.len) {
      const i0 = Math.floor(t);
      const p = Math.round((t - i0) * phases);
      const row = p * taps;
      const base = i0 - half + 1;
      let acc = 0;
      for (let k = 0; k < taps; k++) acc += buf[base + k] * table[row + k];
      output[n++] = acc;
      t += step;
    }
    // Drop input the kernel can no longer reach.
    const drop = Math.max(0, Math.floor(t) - half + 1);
    if (drop > 0) {
      buf.copyWithin(0, drop, this.len);
      this.len -= drop;
      t -= drop;
    }
    this.t = t;
    return n;
  }
}
