// The page's audio graph: one AudioContext at the device rate, a capture worklet fed by
// the microphone and a playback worklet feeding the speakers. Sharing one context gives
// both worklets one clock, which is what the client e2e figure (end of speech -> first
// audio played) is measured on.

const CAPTURE_URL = new URL("./capture-worklet.js", import.meta.url);
const PLAYBACK_URL = new URL("./playback-worklet.js", import.meta.url);

export class AudioEngine {
  /**
   * handlers: {onFrame(ArrayBuffer), onVad({speaking, t}), onLevel({db}),
   *            onPlayback(msg)} -- msg is a playback-worklet message (see that file).
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.ctx = null;
    this.playback = null;
    this.capture = null;
    this.stream = null;
    this.source = null;
    this.ready = null;
  }

  /** Create the context and the playback node. Call from a user gesture (autoplay rules).
   * Safe to call again: the graph is built once. */
  init() {
    if (!this.ready) this.ready = this.build();
    return this.ready.then(() => (this.ctx.state === "suspended" ? this.ctx.resume() : undefined));
  }

  async build() {
    if (!window.AudioContext || !window.AudioWorkletNode) {
      throw new Error("this browser has no AudioWorklet (it needs https or localhost)");
    }
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    await Promise.all([
      this.ctx.audioWorklet.addModule(CAPTURE_URL),
      this.ctx.audioWorklet.addModule(PLAYBACK_URL),
    ]);
    this.playback = new AudioWorkletNode(this.ctx, "voiceagent-playback", {
      numberOfInputs: 0,
      outputChannelCount: [1],
    });
    this.playback.port.onmessage = (e) => this.handlers.onPlayback(e.data);
    this.playback.connect(this.ctx.destination);
  }

  get sampleRate() {
    return this.ctx ? this.ctx.sampleRate : null;
  }

  /** Seconds between a sample leaving the playback node and reaching the speaker. */
  get outputDelay() {
    if (!this.ctx) return 0;
    return (this.ctx.baseLatency || 0) + (this.ctx.outputLatency || 0);
  }

  /** AudioContext time -> performance.now() milliseconds. */
  toPerfMs(contextTime) {
    const ts = this.ctx.getOutputTimestamp ? this.ctx.getOutputTimestamp() : null;
    if (ts && ts.performanceTime && ts.contextTime !== undefined) {
      return ts.performanceTime + (contextTime - ts.contextTime) * 1000;
    }
    return performance.now() + (contextTime - this.ctx.currentTime) * 1000;
  }

  /** Open the microphone with echo cancellation; frames of `frameMs` (10-200) flow to
   * handlers.onFrame. Already open: the next frames take the new duration. */
  async startMic(frameMs = 20) {
    if (this.stream) {
      this.capture?.port.postMessage({ type: "frameMs", value: frameMs });
      return;
    }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("no microphone access here (the page needs https or localhost)");
    }
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: {
        channelCount: 1,
        echoCancellation: true,
        noiseSuppression: true,
        autoGainControl: true,
      },
    });
    this.source = this.ctx.createMediaStreamSource(this.stream);
    // No outputs: the microphone is never routed to the speakers.
    this.capture = new AudioWorkletNode(this.ctx, "voiceagent-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 0,
      processorOptions: { frameMs },
    });
    this.capture.port.onmessage = (e) => {
      const m = e.data;
      if (m.type === "frame") this.handlers.onFrame(m.pcm);
      else if (m.type === "vad") this.handlers.onVad(m);
      else if (m.type === "level") this.handlers.onLevel(m);
    };
    this.source.connect(this.capture);
  }

  stopMic() {
    if (this.source) this.source.disconnect();
    if (this.capture) {
      this.capture.port.onmessage = null;
      this.capture.disconnect();
    }
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    this.stream = this.source = this.capture = null;
  }

  get micOn() {
    return this.stream !== null;
  }

  /** Muting disables the track: the worklet keeps sending (silent) frames, so the
   * server's turn detection sees the silence instead of a gap. */
  setMuted(muted) {
    if (this.stream) for (const track of this.stream.getAudioTracks()) track.enabled = !muted;
  }

  setAgentSpeaking(value) {
    if (this.capture) this.capture.port.postMessage({ type: "agentSpeaking", value });
  }

  startResponse(rid) {
    this.playback?.port.postMessage({ type: "start", rid });
  }

  enqueue(pcm) {
    this.playback?.port.postMessage({ type: "chunk", pcm }, [pcm]);
  }

  endResponse(rid) {
    this.playback?.port.postMessage({ type: "end", rid });
  }

  flush() {
    this.playback?.port.postMessage({ type: "flush" });
  }

  /** Hold playback where it is (`playback_pause`); `resume()` plays on from there. */
  pause() {
    this.playback?.port.postMessage({ type: "pause" });
  }

  resume() {
    this.playback?.port.postMessage({ type: "resume" });
  }
}
