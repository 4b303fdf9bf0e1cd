// Playback worklet: 24 kHz PCM16 responses -> the device rate, through a small jitter
// buffer, with short fades, instant flush, and exact "how much was played" accounting.
//
// Rules:
// - Audio arrives as segments: `start` opens a segment for a response id, `chunk`s
//   append to the open segment, `end` closes it. Segments play back to back.
// - Playback (re)starts only once PREBUFFER_MS are queued, or the segment is complete:
//   network jitter then stretches the first-audio delay a little instead of chopping
//   speech.
// - Every start fades in and every stop that is not the natural end of the audio fades
//   out over one render quantum (~3 ms): no clicks on underrun, flush or barge-in.
// - `flush` drops everything queued at the next quantum (the fade-out is the only audio
//   that follows it) and reports how much of the flushed response had been played.
// - "Played" counts 24 kHz input samples that went out of the node, per response.
// - `pause` (the server is judging the user's speech: `playback_pause`) fades out at
//   the next quantum and holds the read position; audio keeps arriving and queues.
//   `resume` plays on from that very sample (nothing lost, nothing repeated), through
//   the jitter-buffer rule and a fade-in. `flush` also ends a pause.
//
// Memory is bounded by a ring of CAPACITY_S seconds; audio beyond it is dropped and
// counted (the server paces TTS, so this only happens with a stalled audio thread).
//
// Messages to the main thread:
//   {type: "started", rid, t}                  first sample of a response went out
//   {type: "ended", rid, playedMs}             a response played to its end
//   {type: "flushed", rid, playedMs}           a flush cut that response
//   {type: "status", rid, playedMs, ...}       every ~50 ms while playing, and on stop

import { buildKernel } from "./resampler.js";

const INPUT_RATE = 24000;
const PREBUFFER_MS = 60;
const CAPACITY_S = 90;
const STATUS_EVERY_S = 0.05;

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    const k = buildKernel(INPUT_RATE, sampleRate);
    this.half = k.half;
    this.taps = k.taps;
    this.table = k.table;
    this.phases = k.phases;
    this.step = INPUT_RATE / sampleRate;

    this.capacity = CAPACITY_S * INPUT_RATE;
    this.ring = new Float32Array(this.capacity);
    this.written = 0; // absolute count of samples ever queued
    this.t = 0; // absolute (fractional) read position of the next output sample
    this.segments = []; // {rid, start, end|null, started}
    this.playing = false;
    this.gain = 0;
    this.flushRequested = false;
    this.paused = false;

    this.stats = {
      playedSamples: 0,
      quanta: 0,
      underruns: 0,
      flushes: 0,
      overflowSamples: 0,
      pauses: 0,
      resumes: 0,
    };
    this.lastRid = null;
    this.sinceStatus = 0;

    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(msg) {
    switch (msg.type) {
      case "start": {
        const open = this.openSegment();
        if (open) open.end = this.written;
        this.segments.push({ rid: msg.rid, start: this.written, end: null, started: false });
        break;
      }
      case "chunk":
        this.append(new Int16Array(msg.pcm));
        break;
      case "end": {
        const open = this.openSegment();
        if (open && (msg.rid == null || open.rid === msg.rid)) open.end = this.written;
        break;
      }
      case "flush":
        this.flushRequested = true;
        this.paused = false;
        break;
      case "pause":
        if (!this.paused) this.stats.pauses++;
        this.paused = true;
        break;
      case "resume":
        if (this.paused) this.stats.resumes++;
        this.paused = false;
        break;
    }
  }

  openSegment() {
    const last = this.segments[this.segments.length - 1];
    return last && last.end === null ? last : null;
  }

  append(pcm) {
    if (!this.openSegment()) {
      this.segments.push({ rid: null, start: this.written, end: null, started: false });
    }
    const room = this.capacity - (this.written - Math.floor(this.t)) - this.taps;
    const n = Math.max(0, Math.min(pcm.length, room));
    this.stats.overflowSamples += pcm.length - n;
    for (let i = 0; i < n; i++) {
      this.ring[(this.written + i) % this.capacity] = pcm[i] / 0x8000;
    }
    this.written += n;
  }

  sampleAt(abs) {
    return abs >= 0 && abs < this.written ? this.ring[abs % this.capacity] : 0;
  }

  /** True when no more audio is expected for what is queued (every segment closed). */
  allClosed() {
    return this.openSegment() === null;
  }

  process(_inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    const queued = this.written - Math.floor(this.t);

    if (this.paused && !this.flushRequested) {
      if (this.playing) {
        // Fade out over this quantum, then hold the position until `resume`.
        const startT = this.t;
        this.render(out, n, 0);
        for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
        if (this.t > this.written) this.t = this.written;
        this.account(startT);
        this.playing = false;
        this.reportStatus();
      } else {
        for (let c = 0; c < outputs[0].length; c++) outputs[0][c].fill(0);
      }
      return true;
    }

    if (!this.playing && !this.flushRequested) {
      const ready = queued * 1000 >= PREBUFFER_MS * INPUT_RATE || (queued > 0 && this.allClosed());
      if (ready) {
        this.playing = true;
        this.gain = 0;
      }
    }

    if (!this.playing) {
      if (this.flushRequested) this.flush();
      for (let c = 0; c < outputs[0].length; c++) outputs[0][c].fill(0);
      return true;
    }

    const lastNeeded = Math.floor(this.t + (n - 1) * this.step) + this.half;
    const complete = lastNeeded < this.written;
    const drained = !complete && this.allClosed();
    // Fade out on flush or underrun; the natural end of the audio needs no fade.
    const target = this.flushRequested || (!complete && !drained) ? 0 : 1;
    const startT = this.t;
    this.render(out, n, target);
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.stats.quanta++;

    if (this.flushRequested) {
      this.account(startT);
      this.flush();
    } else if (drained && this.t < this.written) {
      // The last samples are still to play (only the kernel's look-ahead ran out).
      this.account(startT);
    } else if (!complete) {
      // Never read past what arrived: the rest of a late chunk must not be skipped.
      if (this.t > this.written) this.t = this.written;
      this.account(startT);
      this.playing = false;
      if (!drained) this.stats.underruns++;
      this.reportStatus();
    } else {
      this.account(startT);
    }

    this.sinceStatus += n / sampleRate;
    if (this.playing && this.sinceStatus >= STATUS_EVERY_S) this.reportStatus();
    return true;
  }

  render(out, n, target) {
    const { table, taps, half, phases, step } = this;
    const ringMask = this.capacity;
    let t = this.t;
    let gain = this.gain;
    const dGain = (target - gain) / n;
    for (let i = 0; i < n; i++) {
      const i0 = Math.floor(t);
      const p = Math.round((t - i0) * phases);
      const row = p * taps;
      const base = i0 - half + 1;
      let acc = 0;
      if (base >= 0 && base + taps <= this.written) {
        for (let k = 0; k < taps; k++) acc += this.ring[(base + k) % ringMask] * table[row + k];
      } else {
        for (let k = 0; k < taps; k++) acc += this.sampleAt(base + k) * table[row + k];
      }
      gain += dGain;
      out[i] = acc * gain;
      t += step;
    }
    this.gain = target;
    this.t = t;
  }

  /** Attribute the samples read since `startT` to their segments; report starts/ends. */
  account(startT) {
    const from = Math.floor(startT);
    const to = Math.min(Math.floor(this.t), this.written);
    if (to > from) this.stats.playedSamples += to - from;
    while (this.segments.length) {
      const seg = this.segments[0];
      if (!seg.started && to > seg.start) {
        seg.started = true;
        this.lastRid = seg.rid;
        // Offset of the segment's first sample inside this quantum, in seconds.
        const offset = Math.max(0, (seg.start - startT) / this.step) / sampleRate;
        this.port.postMessage({ type: "started", rid: seg.rid, t: currentTime + offset });
      }
      if (seg.end !== null && to >= seg.end) {
        this.segments.shift();
        this.port.postMessage({ type: "ended", rid: seg.rid, playedMs: msOf(seg.end - seg.start) });
        continue;
      }
      break;
    }
  }

  currentPlayedMs() {
    const seg = this.segments[0];
    if (!seg) return null;
    const limit = (seg.end ?? this.written) - seg.start;
    const played = Math.max(0, Math.min(limit, Math.floor(this.t) - seg.start));
    return { rid: seg.rid, playedMs: msOf(played) };
  }

  flush() {
    const cur = this.currentPlayedMs();
    this.flushRequested = false;
    this.playing = false;
    this.gain = 0;
    this.t = this.written;
    this.segments = [];
    this.stats.flushes++;
    this.port.postMessage({
      type: "flushed",
      rid: cur ? cur.rid : this.lastRid,
      playedMs: cur ? cur.playedMs : null,
    });
    this.reportStatus();
  }

  reportStatus() {
    this.sinceStatus = 0;
    const cur = this.currentPlayedMs();
    this.port.postMessage({
      type: "status",
      rid: cur ? cur.rid : null,
      playedMs: cur ? cur.playedMs : null,
      playing: this.playing,
      paused: this.paused,
      bufferedMs: msOf(this.written - Math.floor(this.t)),
      ...this.stats,
    });
  }
}

function msOf(samples) {
  return Math.round((samples * 1000) / INPUT_RATE);
}

registerProcessor("voiceagent-playback", PlaybackProcessor);
