// Opening a room's socket, with a room token when the server hands the demo one.
//
// Rules (docs/security.md, "Room tokens"):
// - Every Connect asks `/demo/token?room=<id>`. 200 (`VOICEAGENT_DEMO_TOKENS=1`) carries
//   a short-lived token for that room; 204 (the default) means "connect without one";
//   a server without the endpoint (404) means the same. Any other answer, a network
//   error or no answer within TOKEN_TIMEOUT_MS also connects without a token: if the
//   server wanted one, the handshake is refused and the page says so.
// - A token travels as a WebSocket subprotocol entry, `access_token.<jwt>`, next to
//   `voiceagent.v1`: browsers cannot set headers on a WebSocket, and proxies log URLs
//   (`?token=`) but not Sec-WebSocket-Protocol.
// - Without a token the socket is opened exactly as before tokens existed: no
//   subprotocol at all.

const APP_PROTOCOL = "voiceagent.v1";
const TOKEN_PREFIX = "access_token.";
const TOKEN_TIMEOUT_MS = 5000; // a stuck endpoint must not leave Connect hanging
// A JWT's alphabet (base64url and dots); anything else would make the WebSocket
// constructor throw instead of the server refusing with a reason in its log.
const TOKEN_RE = /^[A-Za-z0-9_.-]{1,4096}$/;

/** The demo token for `room`, or null when the server gives none. Never throws. */
export async function fetchRoomToken(room) {
  try {
    const res = await fetch(`/demo/token?room=${encodeURIComponent(room)}`, {
      cache: "no-store", // a token is for one connection; never reuse a cached one
      signal: AbortSignal.timeout(TOKEN_TIMEOUT_MS),
    });
    if (res.status !== 200) return null;
    const body = await res.json();
    return typeof body.token === "string" && TOKEN_RE.test(body.token) ? body.token : null;
  } catch {
    return null;
  }
}

/** A WebSocket to `url`, offering `token` (if any) the way the server reads it. */
export function openRoomSocket(url, token) {
  if (!token) return new WebSocket(url);
  return new WebSocket(url, [APP_PROTOCOL, TOKEN_PREFIX + token]);
}
