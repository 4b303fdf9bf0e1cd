// voiceagent browser demo: wires the WebSocket protocol (docs/protocol.md) to the audio
// worklets and the panels.
//
// Theory of operation:
// - Connect (a user gesture) creates the AudioContext, asks the server for a room token
//   (net/room-token.js: only servers run with VOICEAGENT_DEMO_TOKENS=1 hand one out),
//   opens /ws/{session_id}, and opens the microphone once `session_started` arrives, so
//   no speech is lost before the server listens. Mic frames go out as binary frames of
//   the server's `limits.preferred_audio_frame_ms` (100 ms = 4 800 bytes by default;
//   `?frame_ms=20` picks another duration within the announced range, for testing and
//   comparison); `?audio=json` sends the JSON fallback instead.
// - Server audio belongs to the response named by the last `audio_start`. Audio of a
//   response we cut (interrupt button, client VAD barge-in, `audio_interrupted`) is
//   dropped on arrival: playback stops at once, before the server's confirmation.
// - The playback worklet reports what was actually played; we forward it as `playback`
//   acks (every ACK_EVERY_MS while playing, at the end, and before an interrupt), so the
//   server keeps only the text the user heard.
// - Barge-in: the capture worklet's VAD reports speech; while a response is active or
//   audible we flush playback and send `client_vad_speech_start`. Its echo guard is on
//   while the agent is audible (and ECHO_TAIL_MS after). Speech the server's VAD hears
//   first is judged by the server: `playback_pause` holds playback where it is (the
//   pill says so), then `playback_resume` plays on from there (a cough, a "yeah") or
//   `audio_interrupted` cuts it (docs/turn-taking.md).
// - Closes are explained in the notice (net/close-notice.js): a socket refused at the
//   handshake, an operator's kick with its reason, the session's time or usage limit.
//   An operator's server-side mute (`muted`) is shown until the matching unmute, and
//   silences the microphone here too, so the client VAD cannot barge in on its behalf.
// - window.voiceagent exposes state and counters for the end-to-end tests.

import { AudioEngine } from "./audio/engine.js";
import { closeNotice, endingFromError, endingText } from "./net/close-notice.js";
import { fetchRoomToken, openRoomSocket } from "./net/room-token.js";
import { Conversation } from "./ui/conversation.js";
import { EventLog, MetricsPanel, ToolsLog } from "./ui/panels.js";

const $ = (id) => document.getElementById(id);
const SESSION_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ACK_EVERY_MS = 250;
const ECHO_TAIL_MS = 300; // room echo outlives the last sample played
const MAX_WS_BUFFERED = 256 * 1024; // a stalled network drops mic frames, never buffers
const MAX_REMEMBERED_RIDS = 64;
const MAX_RECENT = 200; // parsed server events kept for window.voiceagent.recent

const params = new URLSearchParams(location.search);
const jsonAudio = params.get("audio") === "json";
// ?bargein=server: the client VAD never cuts the agent; the server's turn-taking policy
// (pause, then resume or interrupt) decides alone.
const serverBargeIn = params.get("bargein") === "server";
// ?frame_ms=N: the microphone's frame duration, instead of the server's preferred one.
const frameMsOverride = Number(params.get("frame_ms")) || null;
const V1_FRAME_MS = 20; // a version-1 server announces no durations: its demo's framing

const ui = {
  form: $("connect-form"),
  sessionInput: $("session-id"),
  connect: $("connect"),
  connState: $("conn-state"),
  vadState: $("vad-state"),
  operatorMute: $("operator-mute"),
  banner: $("offline-banner"),
  notice: $("notice"),
  info: $("session-info"),
  mute: $("mute"),
  interrupt: $("interrupt"),
  level: $("mic-level"),
  textForm: $("text-form"),
  message: $("message"),
  send: $("send"),
  audioStats: $("audio-stats"),
};

const conversation = new Conversation($("conversation"));
const events = new EventLog($("events-log"), $("events-count"), $("hide-deltas"));
const tools = new ToolsLog($("tools-log"));
const metrics = new MetricsPanel($("metrics-latest"), $("metrics-turns"));

const stats = {
  eventsIn: 0,
  eventsByType: {},
  framesSent: 0,
  framesDropped: 0,
  lastFrameBytes: 0, // PCM bytes of the last mic frame sent
  audioBytesIn: 0,
  audioBytesDropped: 0,
  lateAudioBytes: 0, // bytes of a response after its audio_interrupted: must stay 0
  vadStarts: 0,
  vadEnds: 0,
  bargeIns: 0,
  acksSent: 0,
  playback: {
    playedSamples: 0,
    playedMs: 0,
    quanta: 0,
    underruns: 0,
    flushes: 0,
    overflowSamples: 0,
    bufferedMs: 0,
    playing: false,
    rid: null,
    started: 0,
    ended: 0,
  },
  e2e: [], // [{response_id, e2e_ms, spoken}]
};
const recent = [];

const s = {
  ws: null,
  attempt: 0, // bumped by every Connect and Disconnect: a late token answer is dropped
  opened: false, // the current socket reached `open` (else a close means "refused")
  usedToken: false, // the current socket offered a room token
  ending: null, // {code, message} of an announced 4000-range close (close-notice.js)
  conn: "idle",
  session: null,
  muted: false, // the user's own mute button
  operatorMuted: false, // the server drops our audio (an operator's mute)
  audioRid: null, // response owning incoming binary audio
  cutRids: new Set(), // responses whose audio we drop
  serverCutRids: new Set(), // responses the server interrupted
  activeRids: new Set(), // response_start seen, response_done not yet
  agentAudible: false,
  audibleTimer: 0,
  lastAckAt: 0,
  speechEndPerf: null, // end of the user's last utterance (performance.now ms)
  typedAtPerf: null,
  measuredAfter: 0, // the speech end already used for an e2e figure
  maxText: 4000,
  frameMs: V1_FRAME_MS, // the microphone's frame duration (from session_started.limits)
  lastClose: null, // {code, reason} of the last close
  audioReady: Promise.resolve(false), // resolves once the audio graph is up (or failed)
  toolCalls: new Map(), // call id -> {call, agent}: tool_end carries no arguments
};

const engine = new AudioEngine({
  onFrame: sendMicFrame,
  onVad: onClientVad,
  onLevel: (m) => {
    ui.level.value = Math.max(-80, Math.min(0, m.db));
  },
  onPlayback: onPlaybackMessage,
});

window.voiceagent = {
  get state() {
    return s.conn;
  },
  get sessionId() {
    return ui.sessionInput.value;
  },
  get session() {
    return s.session;
  },
  get lastClose() {
    return s.lastClose;
  },
  get usedToken() {
    return s.usedToken;
  },
  get operatorMuted() {
    return s.operatorMuted;
  },
  get sampleRate() {
    return engine.sampleRate;
  },
  audioTransport: jsonAudio ? "json" : "binary",
  get frameMs() {
    return s.frameMs;
  },
  /** Reopen the microphone (after a device change; the E2E tests use it because
   * Chromium's fake device replays its file from the start on every open). */
  async restartMic() {
    engine.stopMic();
    await startMic();
  },
  stats,
  recent,
};

// --- session id ------------------------------------------------------------------------

function randomSessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "tab-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function initialSessionId() {
  const fromUrl = params.get("session");
  if (fromUrl && SESSION_RE.test(fromUrl)) return fromUrl;
  // sessionStorage is per tab: a reload keeps the room, a new tab gets its own.
  const saved = sessionStorage.getItem("voiceagent.session");
  if (saved && SESSION_RE.test(saved)) return saved;
  return randomSessionId();
}

ui.sessionInput.value = initialSessionId();

// --- connection ------------------------------------------------------------------------

function setConn(state, text) {
  s.conn = state;
  ui.connState.dataset.state = state;
  ui.connState.textContent = text || state;
  const live = state === "connected";
  const busy = state === "connecting" || state === "open" || live;
  ui.connect.textContent = busy ? "Disconnect" : "Connect";
  ui.connect.classList.toggle("primary", !busy);
  ui.sessionInput.disabled = busy;
  for (const el of [ui.message, ui.send, ui.interrupt]) el.disabled = !live;
  ui.mute.disabled = !(live && engine.micOn);
}

function notice(text) {
  ui.notice.textContent = text || "";
  ui.notice.hidden = !text;
}

async function connect() {
  const id = ui.sessionInput.value.trim();
  if (!SESSION_RE.test(id)) {
    notice("The session id must be 1 to 64 letters, digits, _ or -.");
    ui.sessionInput.focus();
    return;
  }
  sessionStorage.setItem("voiceagent.session", id);
  notice("");
  const attempt = ++s.attempt;
  setConn("connecting", "connecting…");
  // Started inside the click (autoplay rules), awaited only where audio is needed.
  s.audioReady = engine.init().then(
    () => true,
    (err) => {
      notice(`Audio is unavailable (${err.message}); you can still type.`);
      return false;
    },
  );
  const token = await fetchRoomToken(id);
  if (attempt !== s.attempt) return; // Disconnect was pressed while we asked
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = openRoomSocket(`${scheme}://${location.host}/ws/${encodeURIComponent(id)}`, token);
  ws.binaryType = "arraybuffer";
  s.ws = ws;
  s.opened = false;
  s.usedToken = !!token;
  s.ending = null;
  ws.onopen = () => {
    if (s.ws !== ws) return;
    s.opened = true;
    setConn("open", "waiting for the session…");
  };
  ws.onmessage = (ev) => {
    if (s.ws === ws) onServerMessage(ev.data);
  };
  ws.onclose = (ev) => {
    if (s.ws === ws) onClosed(ev.code, ev.reason);
  };
}

function disconnect() {
  s.attempt++;
  if (s.ws) s.ws.close(1000, "bye");
  onClosed(1000, "");
}

function onClosed(code, reason) {
  const hadSession = Boolean(s.session);
  s.lastClose = { code, reason };
  const ws = s.ws;
  s.ws = null;
  setOperatorMuted(false);
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  engine.stopMic();
  engine.flush();
  setAgentAudible(false);
  s.activeRids.clear();
  s.audioRid = null;
  s.session = null;
  const normal = code === 1000 || code === 1005;
  setConn(normal ? "idle" : "closed", normal ? "disconnected" : `closed (${code})`);
  const text = closeNotice({ code, reason, opened: s.opened, announced: s.ending });
  if (text) notice(text);
  ui.vadState.textContent = "mic idle";
  ui.vadState.dataset.state = "silent";
  reconnectIfAsked(code, hadSession);
}

// --- reconnect after a drain -------------------------------------------------------------
// An instance that drains for a deploy closes its rooms with 1001 after an `error` event
// carrying `reconnect: true` (docs/protocol.md). The page opens the same session id
// again; the load balancer sends it to another instance. There the conversation
// continues when the instances share a store (earlier items come back as
// `history_added` with `<id>@<connection>` ids right after `session_started` and
// `agent_start`), else it starts fresh; the notice says which. Bounded: one try per
// RECONNECT_DELAYS_MS entry (with jitter, since every room of the instance reconnects
// at once), then it gives up and says so.
const RECONNECT_DELAYS_MS = [250, 1000, 2000, 4000, 8000];
const reconnect = { attempt: 0, timer: null };

function reconnectIfAsked(code, hadSession) {
  const last = recent[recent.length - 1];
  const asked = code === 1001 && hadSession && last?.type === "error" && last.reconnect === true;
  const failedTry = reconnect.attempt > 0 && !hadSession && code !== 1000;
  clearTimeout(reconnect.timer);
  reconnect.timer = null;
  if (asked) reconnect.attempt = 0;
  else if (!failedTry) {
    reconnect.attempt = 0;
    return;
  }
  const tries = RECONNECT_DELAYS_MS.length;
  if (reconnect.attempt >= tries) {
    reconnect.attempt = 0;
    notice("The server restarted and reconnecting failed; press Connect to try again.");
    return;
  }
  const delay = RECONNECT_DELAYS_MS[reconnect.attempt++] * (0.5 + Math.random());
  const attempt = reconnect.attempt;
  const message = `The server is restarting: reconnecting (try ${attempt} of ${tries})…`;
  notice(message);
  reconnect.timer = setTimeout(async () => {
    reconnect.timer = null;
    if (s.ws) return; // the user connected meanwhile
    await connect();
    if (!s.ws) return; // the user pressed Disconnect meanwhile
    notice(message);
    const ws = s.ws;
    let started = false;
    let timer = null;
    const settle = (resumed) => {
      ws.removeEventListener("message", watch);
      clearTimeout(timer);
      const text = resumed
        ? "Reconnected: the conversation continues on this server."
        : "Reconnected: the conversation starts fresh on this server.";
      conversation.marker(`reconnect:${stats.reconnects}`, "handoff", "reconnected", text);
      notice(text);
    };
    function watch(ev) {
      if (typeof ev.data !== "string") return;
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!started) {
        if (m.type !== "session_started") return;
        started = true;
        reconnect.attempt = 0;
        stats.reconnects = (stats.reconnects || 0) + 1;
        timer = setTimeout(() => settle(false), 1000); // resumed items come at once
      } else if (m.type !== "agent_start") {
        settle(m.type === "history_added" && String(m.item?.id ?? "").includes("@"));
      }
    }
    ws.addEventListener("message", watch);
  }, delay);
}

function send(msg) {
  if (!s.ws || s.ws.readyState !== WebSocket.OPEN) return false;
  s.ws.send(JSON.stringify(msg));
  events.add("out", msg);
  return true;
}

// --- microphone ----------------------------------------------------------------------

/** The frame duration to send: `?frame_ms=` when the server's range allows it, else
 * the server's preferred one (docs/protocol.md, Microphone framing). */
function frameDuration(limits) {
  const low = limits?.min_audio_frame_ms ?? V1_FRAME_MS;
  const high = limits?.max_audio_frame_ms ?? V1_FRAME_MS;
  const preferred = limits?.preferred_audio_frame_ms ?? V1_FRAME_MS;
  if (frameMsOverride !== null) return Math.min(high, Math.max(low, frameMsOverride));
  return preferred;
}

function sendMicFrame(pcm) {
  const ws = s.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !s.session) return;
  if (ws.bufferedAmount > MAX_WS_BUFFERED) {
    stats.framesDropped++;
    return;
  }
  if (jsonAudio) ws.send(JSON.stringify({ type: "audio", data: Array.from(new Int16Array(pcm)) }));
  else ws.send(pcm);
  stats.framesSent++;
  stats.lastFrameBytes = pcm.byteLength;
}

function onClientVad(m) {
  if (m.speaking) {
    stats.vadStarts++;
    s.speechEndPerf = null;
    ui.vadState.textContent = "you are speaking";
    ui.vadState.dataset.state = "speaking";
    // Barge-in only when there is something to stop; otherwise the server's own VAD
    // opens the turn.
    const audible = s.agentAudible || s.activeRids.size > 0;
    if (s.conn === "connected" && audible && !serverBargeIn) {
      stats.bargeIns++;
      cutPlayback();
      send({ type: "client_vad_speech_start" });
    }
  } else {
    stats.vadEnds++;
    s.speechEndPerf = engine.toPerfMs(m.t);
    s.typedAtPerf = null;
    ui.vadState.textContent = "listening";
    ui.vadState.dataset.state = "silent";
  }
}

async function startMic() {
  if (!(await s.audioReady)) return;
  if (!s.session) return; // closed while the audio graph was starting
  try {
    await engine.startMic(s.frameMs);
    if (!s.session) {
      engine.stopMic(); // closed while the browser was opening the microphone
      return;
    }
    engine.setMuted(s.muted || s.operatorMuted);
    ui.vadState.textContent = "listening";
  } catch (err) {
    notice(`Microphone unavailable (${err.message}); you can still type.`);
  }
  setConn(s.conn, ui.connState.textContent);
}

// --- playback ----------------------------------------------------------------------

function setAgentAudible(on) {
  clearTimeout(s.audibleTimer);
  if (on) {
    if (!s.agentAudible) engine.setAgentSpeaking(true);
    s.agentAudible = true;
  } else if (s.agentAudible) {
    s.audibleTimer = setTimeout(() => {
      s.agentAudible = false;
      engine.setAgentSpeaking(false);
    }, ECHO_TAIL_MS);
  }
}

/** Stop the current response's audio now and tell the server how much was heard. */
function cutPlayback() {
  const rid = s.audioRid;
  if (rid && stats.playback.rid === rid && stats.playback.playedMs != null) {
    sendAck(rid, stats.playback.playedMs);
  }
  if (rid) rememberRid(s.cutRids, rid);
  engine.flush();
}

function rememberRid(set, rid) {
  set.add(rid);
  if (set.size > MAX_REMEMBERED_RIDS) set.delete(set.values().next().value);
}

function sendAck(rid, playedMs) {
  if (!rid || typeof playedMs !== "number") return;
  if (send({ type: "playback", response_id: rid, played_ms: Math.max(0, playedMs) })) {
    stats.acksSent++;
    s.lastAckAt = performance.now();
  }
}

function onPlaybackMessage(m) {
  const pb = stats.playback;
  switch (m.type) {
    case "status":
      Object.assign(pb, {
        playedSamples: m.playedSamples,
        quanta: m.quanta,
        underruns: m.underruns,
        flushes: m.flushes,
        overflowSamples: m.overflowSamples,
        bufferedMs: m.bufferedMs,
        playing: m.playing,
        paused: m.paused,
        pauses: m.pauses,
        resumes: m.resumes,
      });
      if (m.rid != null) {
        pb.rid = m.rid;
        pb.playedMs = m.playedMs;
      }
      setAgentAudible(m.playing);
      if (m.playing && m.rid && performance.now() - s.lastAckAt >= ACK_EVERY_MS) {
        sendAck(m.rid, m.playedMs);
      }
      renderAudioStats();
      break;
    case "started":
      pb.started++;
      pb.rid = m.rid;
      pb.playedMs = 0;
      setAgentAudible(true);
      measureE2E(m.rid, engine.toPerfMs(m.t) + engine.outputDelay * 1000);
      break;
    case "ended":
      pb.ended++;
      sendAck(m.rid, m.playedMs);
      break;
    case "flushed":
      if (m.rid && m.playedMs != null) sendAck(m.rid, m.playedMs);
      break;
  }
}

function measureE2E(rid, firstAudioPerf) {
  if (!rid) return;
  let from = null;
  let spoken = false;
  if (s.speechEndPerf !== null && s.speechEndPerf > s.measuredAfter) {
    from = s.speechEndPerf;
    spoken = true;
  } else if (s.typedAtPerf !== null && s.typedAtPerf > s.measuredAfter) {
    from = s.typedAtPerf;
  }
  if (from === null || firstAudioPerf < from) return;
  s.measuredAfter = from;
  const e2e = Math.round(firstAudioPerf - from);
  stats.e2e.push({ response_id: rid, e2e_ms: e2e, spoken });
  if (stats.e2e.length > 50) stats.e2e.shift();
  metrics.onClientE2E(rid, e2e, spoken);
  // The protocol's figure is end of *speech* -> first audio; typed turns stay local.
  if (spoken) send({ type: "client_metrics", response_id: rid, e2e_ms: e2e });
}

function renderAudioStats() {
  const pb = stats.playback;
  ui.audioStats.textContent =
    `Audio: ${engine.sampleRate ?? "–"} Hz · mic frames sent ${stats.framesSent}` +
    (stats.framesDropped ? ` (dropped ${stats.framesDropped})` : "") +
    ` · played ${(pb.playedSamples / 24000).toFixed(1)} s` +
    ` · buffered ${pb.bufferedMs} ms · underruns ${pb.underruns} · flushes ${pb.flushes}`;
}

// --- server messages ----------------------------------------------------------------

function onBinary(buf) {
  stats.audioBytesIn += buf.byteLength;
  const rid = s.audioRid;
  if (rid && s.serverCutRids.has(rid)) stats.lateAudioBytes += buf.byteLength;
  if (!rid || s.cutRids.has(rid) || buf.byteLength % 2 !== 0) {
    stats.audioBytesDropped += buf.byteLength;
    return;
  }
  engine.enqueue(buf);
}

function onServerMessage(data) {
  if (data instanceof ArrayBuffer) {
    onBinary(data);
    return;
  }
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    events.add("in", { type: "(unparseable)", data: String(data).slice(0, 200) });
    return;
  }
  stats.eventsIn++;
  stats.eventsByType[msg.type] = (stats.eventsByType[msg.type] || 0) + 1;
  recent.push(msg);
  if (recent.length > MAX_RECENT) recent.shift();
  events.add("in", msg);
  const handler = HANDLERS[msg.type];
  if (handler) handler(msg);
}

const HANDLERS = {
  session_started(m) {
    s.session = m;
    s.maxText = m.limits?.max_text_chars || 4000;
    s.frameMs = frameDuration(m.limits);
    ui.message.maxLength = s.maxText;
    ui.banner.hidden = m.offline_brain !== true;
    ui.info.textContent = `model ${m.model} · voice ${m.tts} · ${m.agent}`;
    conversation.setAgent(m.agent);
    setConn("connected", `connected · ${m.session_id}`);
    startMic();
  },
  agent_start(m) {
    conversation.setAgent(m.agent);
    tools.entry("agent", `${m.agent} starts`);
  },
  agent_end(m) {
    tools.entry("agent", `${m.agent} ends`);
  },
  handoff(m) {
    tools.entry("handoff", `handoff ${m.from} → ${m.to}`);
    conversation.marker(`handoff:${stats.eventsIn}`, "handoff", `${m.from} → ${m.to}`, "handoff");
    conversation.setAgent(m.to);
  },
  input_speech_started() {
    ui.vadState.textContent = "server hears you";
    ui.vadState.dataset.state = "speaking";
  },
  input_speech_stopped() {
    ui.vadState.textContent = "listening";
    ui.vadState.dataset.state = "silent";
  },
  user_transcript_delta(m) {
    conversation.userDelta(m.item_id, m.delta);
  },
  user_transcript(m) {
    conversation.userFinal(m.item_id, m.text);
  },
  response_start(m) {
    rememberRid(s.activeRids, m.response_id);
    conversation.acceptTyped();
    if (m.agent) conversation.setAgent(m.agent);
  },
  text_delta(m) {
    conversation.assistantDelta(m.item_id, m.response_id, m.delta);
  },
  text_done(m) {
    conversation.assistantDone(m.item_id, m.response_id, m.text);
  },
  audio_start(m) {
    s.audioRid = m.response_id;
    if (!s.cutRids.has(m.response_id)) engine.startResponse(m.response_id);
  },
  audio_end(m) {
    if (!s.cutRids.has(m.response_id)) engine.endResponse(m.response_id);
  },
  playback_pause(m) {
    if (s.cutRids.has(m.response_id)) return;
    engine.pause();
    ui.vadState.textContent = "agent paused";
    ui.vadState.dataset.state = "paused";
  },
  playback_resume() {
    engine.resume();
    endPausePill();
  },
  audio_interrupted(m) {
    endPausePill(); // a flush ends the worklet's pause too
    rememberRid(s.serverCutRids, m.response_id);
    if (!s.cutRids.has(m.response_id)) {
      rememberRid(s.cutRids, m.response_id);
      engine.flush();
    }
  },
  response_done(m) {
    s.activeRids.delete(m.response_id);
    conversation.responseEnded(m.response_id, m.status);
  },
  tool_start(m) {
    const args = typeof m.arguments === "string" ? m.arguments : JSON.stringify(m.arguments);
    const call = `${m.name}(${args})`;
    s.toolCalls.set(m.call_id, { call, agent: m.agent });
    if (s.toolCalls.size > 100) s.toolCalls.delete(s.toolCalls.keys().next().value);
    tools.entry("tool", `${m.agent ? m.agent + ": " : ""}${m.name}`, `${args} …`, m.call_id);
    conversation.marker(`tool:${m.call_id}`, "tool", call, "running…");
  },
  tool_end(m) {
    const start = s.toolCalls.get(m.call_id) || { call: m.name, agent: null };
    const out = m.error ? `error: ${m.error}` : String(m.output ?? "");
    const title = `${start.agent ? start.agent + ": " : ""}${m.name}${m.error ? " failed" : ""}`;
    const el = tools.entry("tool", title, `${start.call} → ${out}`, m.call_id);
    el.classList.toggle("failed", !!m.error);
    const marker = conversation.marker(`tool:${m.call_id}`, "tool", start.call, out);
    marker.classList.toggle("failed", !!m.error);
  },
  history_added(m) {
    conversation.upsertItem(m.item);
  },
  history_updated(m) {
    conversation.snapshot(m.items);
  },
  guardrail_tripped(m) {
    tools.entry("guardrail", `guardrail ${m.guardrail}`, m.message);
    const key = `guardrail:${m.response_id}`;
    conversation.marker(key, "guardrail", `guardrail: ${m.guardrail}`, m.message);
  },
  metrics(m) {
    metrics.onMetrics(m);
  },
  muted(m) {
    setOperatorMuted(m.muted === true);
  },
  error(m) {
    const ending = endingFromError(m);
    if (ending) {
      s.ending = ending; // the close follows; its notice falls back on this reason
      notice(endingText(ending));
      return;
    }
    notice(`Server error ${m.code}: ${m.message}`);
  },
};

function endPausePill() {
  if (ui.vadState.dataset.state !== "paused") return;
  ui.vadState.textContent = "listening";
  ui.vadState.dataset.state = "silent";
}

/** Show (or clear) the operator's mute. The server already drops our audio; muting the
 * track too keeps the client VAD from cutting the agent off for speech nobody hears. */
function setOperatorMuted(on) {
  s.operatorMuted = on;
  ui.operatorMute.hidden = !on;
  engine.setMuted(s.muted || s.operatorMuted);
}

// --- controls ------------------------------------------------------------------------

ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  // "connecting" covers the token request, before any socket exists.
  if (s.ws || s.conn === "connecting") disconnect();
  else connect();
});

ui.mute.addEventListener("click", () => {
  s.muted = !s.muted;
  engine.setMuted(s.muted || s.operatorMuted);
  ui.mute.setAttribute("aria-pressed", String(s.muted));
  ui.mute.textContent = s.muted ? "Unmute mic" : "Mute mic";
});

function interrupt() {
  if (s.conn !== "connected") return;
  cutPlayback();
  send({ type: "interrupt" });
}

ui.interrupt.addEventListener("click", interrupt);

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !e.defaultPrevented) interrupt();
});

ui.textForm.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = ui.message.value.trim();
  if (!text || s.conn !== "connected") return;
  if (text.length > s.maxText) {
    notice(`Messages are limited to ${s.maxText} characters.`);
    return;
  }
  if (send({ type: "text", text })) {
    conversation.addTyped(text);
    s.typedAtPerf = performance.now();
    ui.message.value = "";
    notice("");
  }
});

$("clear-events").addEventListener("click", () => events.clear());

setConn("idle", "disconnected");
renderAudioStats();
