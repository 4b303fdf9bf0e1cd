// What the page tells the user when its socket closes (docs/protocol.md, close codes).
//
// Rules:
// - A socket that closes before it ever opened was refused at the handshake (no room
//   token, a page origin the server does not allow, a full server). Browsers hide the
//   HTTP status of a refused handshake and report only 1006, so the notice lists the
//   usual causes and points at the server log, which names the one that applied.
// - 4000-4002 end a session for a reason of the server's (an operator's kick, the time
//   limit, the usage limit). The server announces each with an `error` event first;
//   `endingFromError` keeps it, so the reason survives a Close frame that got lost on
//   the way (the browser then reports 1006).
// - 1000 and 1005 are normal: no notice.

const CLOSE_REASONS = {
  1001: "the server is shutting down; reconnect in a moment",
  1006: "the connection was lost",
  1008: "refused: invalid session id, or too many bad messages",
  1011: "the server hit an internal error",
  1012: "another tab connected with the same session id",
  1013: "this page read too slowly",
};

export const REFUSED =
  "The server refused the connection: it may need a room token, this page's origin " +
  "may not be allowed, or it is full. See the server log.";

// Close code -> the `error` code that announces it, what the user reads, and whether a
// new Connect helps (it starts a fresh session with fresh limits).
const ENDINGS = {
  4000: {
    error: "kicked",
    text: (reason) => `Ended by the operator: ${reason || "no reason given"}`,
    again: false,
  },
  4001: {
    error: "session_time_limit",
    text: (reason) => `Time limit reached: ${reason || "the session lasted its maximum"}`,
    again: true,
  },
  4002: {
    error: "session_budget",
    // The server's reason only restates the limit; say which limits these are.
    text: () => "Usage limit reached: the session used its token or cost allowance",
    again: true,
  },
};

function sentence(code, message, closeCode) {
  const ending = ENDINGS[code];
  const tail = closeCode ? ` (close ${closeCode}).` : ".";
  return ending.text(message) + tail + (ending.again ? " Connect again to start a new session." : "");
}

/** {code, message} of an `error` event that announces one of ENDINGS, else null. */
export function endingFromError(msg) {
  for (const [code, ending] of Object.entries(ENDINGS)) {
    if (ending.error === msg.code) return { code: Number(code), message: msg.message };
  }
  return null;
}

/** The notice for an announced ending, shown as soon as it is announced. */
export function endingText(ending) {
  return sentence(ending.code, ending.message);
}

/**
 * The notice for a close, or "" when none is due.
 * opened: the socket reached `open`; announced: endingFromError's result, or null.
 */
export function closeNotice({ code, reason, opened, announced }) {
  if (code === 1000 || code === 1005) return "";
  if (!opened) return REFUSED;
  if (ENDINGS[code]) {
    const fallback = announced?.code === code ? announced.message : "";
    return sentence(code, reason || fallback, code);
  }
  if (code === 1006 && announced) return sentence(announced.code, announced.message, code);
  const why = CLOSE_REASONS[code] || "closed";
  const detail = reason && reason !== why ? ` (${reason})` : "";
  return `Disconnected (${code}): ${why}${detail}.`;
}
