// Energy VAD for client-side barge-in, fed 10 ms windows of 24 kHz audio.
//
// Why an energy VAD in the capture worklet rather than silero (vad-web) in the page:
// - the client VAD decides only *barge-in*: it must be fast and it must not need the
//   network. On 10 ms windows it reports the onset after 8 voiced windows of the last
//   10: on the test suite's spoken question it fires 80 ms after the speech starts
//   (measured by tests/e2e/test_audio_dsp.py), without leaving the audio thread.
//   vad-web would need an ONNX runtime on the main thread fed over a message hop, and
//   megabytes of wasm and model to vendor, for a decision this one makes well enough.
// - turn-taking (end of turn, transcription) stays with the server's VAD, which sees the
//   same audio; a client false start costs at worst one cut-off sentence.
// - the agent's own voice from the speakers: getUserMedia's echo canceller removes most
//   of it, and while the agent is audible the GUARD rule applies: a threshold 7 dB
//   higher and at least -36 dBFS, held for 200 ms without a gap, so residual echo of a
//   loud syllable (short bursts) does not read as the user. The tests check that the
//   question played 25 dB down (a typical echo residual after AEC) passes unnoticed
//   under the guard, and would have triggered without it.
//
// Levels are dBFS of the window's mean square. The noise floor follows quiet windows
// down fast and up slowly (0.02 dB per window, 2 dB/s), and only outside speech, so a
// steady fan becomes floor while a voice never does.

export const WINDOW_SAMPLES = 240; // 10 ms at 24 kHz

export const ONSET = { over: 15, min: -48, windows: 8, of: 10 };
export const GUARD = { over: 22, min: -36, windows: 20, of: 20 };
const END_HYSTERESIS_DB = 6;
const HANGOVER_WINDOWS = 50; // 500 ms under the threshold ends an utterance

export class EnergyVad {
  constructor() {
    this.floorDb = -60;
    this.lastDb = -120;
    this.history = []; // recent verdicts, true = above the start threshold
    this.speaking = false;
    this.belowRun = 0;
    this.firstAboveT = 0;
    this.lastVoicedT = 0;
    this.agentSpeaking = false; // set while the agent is audible: the echo guard
  }

  /**
   * Feed one window (mean square of the samples) ending at time t (seconds).
   * Returns {speaking: true, t: onset} or {speaking: false, t: last voiced window} when
   * the state changes, else null.
   */
  pushWindow(meanSquare, t) {
    const db = 10 * Math.log10(meanSquare + 1e-12);
    this.lastDb = db;
    const rule = this.agentSpeaking ? GUARD : ONSET;
    const startDb = Math.max(this.floorDb + rule.over, rule.min);
    const above = db > startDb;
    const wasAbove = this.history.length > 0 && this.history[this.history.length - 1];
    this.history.push(above);
    if (this.history.length > 20) this.history.shift();

    if (!this.speaking) {
      if (db < this.floorDb) this.floorDb += 0.5 * (db - this.floorDb);
      else this.floorDb += Math.min(0.02, db - this.floorDb);
      if (above && !wasAbove) this.firstAboveT = t - WINDOW_SAMPLES / 24000;
      if (this.history.length < rule.of) return null;
      let hits = 0;
      for (let i = this.history.length - rule.of; i < this.history.length; i++) {
        if (this.history[i]) hits++;
      }
      if (hits < rule.windows) return null;
      this.speaking = true;
      this.belowRun = 0;
      this.lastVoicedT = t;
      return { speaking: true, t: this.firstAboveT };
    }
    if (db > startDb - END_HYSTERESIS_DB) {
      this.belowRun = 0;
      this.lastVoicedT = t;
      return null;
    }
    if (++this.belowRun < HANGOVER_WINDOWS) return null;
    this.speaking = false;
    this.history.length = 0;
    return { speaking: false, t: this.lastVoicedT };
  }
}
