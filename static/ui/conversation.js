// The conversation pane. One bubble per conversation item, keyed by item id, whatever
// event told us about it first (a transcript delta, a text delta, history_added or a
// history snapshot); later events update that bubble in place, never add a second one.
//
// Tool calls, tool results and handoffs are drawn as markers from the tool_* / handoff
// events (they carry the arguments, output and error); their history items are only
// remembered so a snapshot does not draw them twice.
//
// A typed message is drawn at once as a pending bubble. It stops being pending when the
// server starts answering; a user message item from the server with the same text
// adopts it (and its id) instead of drawing a second bubble.

const MAX_BUBBLES = 400; // oldest bubbles go first: a long session stays light

export class Conversation {
  constructor(root) {
    this.root = root;
    this.items = new Map(); // item id -> {el, textEl, role, status, streamed}
    this.pendingTyped = []; // [{text, entry}]
    this.markers = new Map(); // marker key -> element
    this.responseItems = new Map(); // response id -> Set(item id)
    this.agent = null;
  }

  setAgent(name) {
    this.agent = name;
  }

  clear() {
    this.root.replaceChildren();
    this.items.clear();
    this.markers.clear();
    this.pendingTyped = [];
    this.responseItems.clear();
  }

  // --- user side -------------------------------------------------------------------

  addTyped(text) {
    const entry = this.makeBubble("user", "You");
    entry.textEl.textContent = text;
    entry.el.classList.add("pending");
    this.pendingTyped.push({ text, entry });
    if (this.pendingTyped.length > 10) this.pendingTyped.shift();
    this.append(entry.el);
    return entry;
  }

  /** The server is answering: typed messages sent so far were received. */
  acceptTyped() {
    for (const { entry } of this.pendingTyped) entry.el.classList.remove("pending");
  }

  userDelta(itemId, delta) {
    const entry = this.ensure(itemId, "user");
    if (entry.status === "completed") return;
    entry.partial = (entry.partial || "") + delta;
    entry.textEl.textContent = entry.partial;
    this.setStatus(entry, "in_progress");
    this.follow();
  }

  userFinal(itemId, text) {
    const entry = this.ensure(itemId, "user");
    entry.textEl.textContent = text;
    this.setStatus(entry, "completed");
    this.follow();
  }

  // --- assistant side ----------------------------------------------------------------

  assistantDelta(itemId, responseId, delta, agent) {
    const entry = this.ensure(itemId, "assistant", agent);
    this.linkResponse(responseId, itemId);
    entry.streamed = (entry.streamed || "") + delta;
    entry.textEl.textContent = entry.streamed;
    this.setStatus(entry, "in_progress");
    this.follow();
  }

  assistantDone(itemId, responseId, text, agent) {
    const entry = this.ensure(itemId, "assistant", agent);
    this.linkResponse(responseId, itemId);
    entry.streamed = text;
    entry.textEl.textContent = text;
    if (entry.status !== "interrupted") this.setStatus(entry, "completed");
    this.follow();
  }

  /** A response ended other than normally: tag its bubbles. */
  responseEnded(responseId, status) {
    if (status === "completed") return;
    const label = status === "cancelled" ? "interrupted" : status;
    for (const id of this.responseItems.get(responseId) || []) {
      const entry = this.items.get(id);
      if (entry) this.setStatus(entry, label);
    }
  }

  // --- history -----------------------------------------------------------------------

  upsertItem(item) {
    if (!item || typeof item.id !== "string") return;
    if (item.type && item.type !== "message") {
      // Tool calls, outputs and handoffs are drawn from their own events.
      this.items.set(item.id, this.items.get(item.id) || { marker: true });
      return;
    }
    const role = item.role === "user" ? "user" : "assistant";
    let entry = this.items.get(item.id);
    if (!entry && role === "user") entry = this.adoptTyped(item);
    if (!entry) entry = this.ensure(item.id, role, item.agent);
    if (entry.marker) return;
    const text = typeof item.text === "string" ? item.text : "";
    const current = entry.textEl.textContent;
    // A snapshot of an item still streaming can lag behind the deltas already shown;
    // a finished (or interrupted) item's text is the truth: it is what the user heard.
    const heardPrefix = item.status === "interrupted" && current.startsWith(text);
    if (heardPrefix && current.length > text.length) {
      // Cut by a barge-in: the server kept what was heard; show the rest as unheard.
      const unheard = document.createElement("span");
      unheard.className = "unheard";
      unheard.title = "not played: you interrupted here";
      unheard.textContent = current.slice(text.length);
      entry.textEl.replaceChildren(document.createTextNode(text), unheard);
    } else if (item.status !== "in_progress" || text.length >= current.length) {
      if (text || item.status !== "in_progress") entry.textEl.textContent = text || current;
    }
    if (item.agent && role === "assistant") entry.whoEl.textContent = item.agent;
    if (item.status) this.setStatus(entry, item.status);
  }

  snapshot(items) {
    if (!Array.isArray(items)) return;
    for (const item of items) this.upsertItem(item);
    this.follow();
  }

  // --- markers -----------------------------------------------------------------------

  marker(key, kind, text, detail) {
    let el = this.markers.get(key);
    if (!el) {
      el = document.createElement("div");
      el.className = `marker ${kind}`;
      el.append(document.createElement("span"), document.createElement("span"));
      el.firstChild.className = "marker-text";
      el.lastChild.className = "marker-detail";
      this.markers.set(key, el);
      this.append(el);
    }
    el.firstChild.textContent = text;
    el.lastChild.textContent = detail || "";
    this.follow();
    return el;
  }

  // --- internals ---------------------------------------------------------------------

  adoptTyped(item) {
    const i = this.pendingTyped.findIndex((p) => p.text.trim() === (item.text || "").trim());
    if (i < 0) return null;
    const [{ entry }] = this.pendingTyped.splice(i, 1);
    entry.el.classList.remove("pending");
    entry.el.dataset.itemId = item.id;
    this.items.set(item.id, entry);
    return entry;
  }

  ensure(itemId, role, agent) {
    let entry = this.items.get(itemId);
    if (entry && !entry.marker) return entry;
    entry = this.makeBubble(role, role === "user" ? "You" : agent || this.agent || "Agent");
    entry.el.dataset.itemId = itemId;
    this.items.set(itemId, entry);
    this.append(entry.el);
    return entry;
  }

  makeBubble(role, who) {
    const el = document.createElement("article");
    el.className = `msg ${role}`;
    const meta = document.createElement("div");
    meta.className = "meta";
    const whoEl = document.createElement("span");
    whoEl.className = "who";
    whoEl.textContent = who;
    const tagEl = document.createElement("span");
    tagEl.className = "tag";
    meta.append(whoEl, tagEl);
    const textEl = document.createElement("p");
    textEl.className = "text";
    el.append(meta, textEl);
    return { el, textEl, whoEl, tagEl, role, status: null };
  }

  setStatus(entry, status) {
    entry.status = status;
    entry.el.dataset.status = status;
    // Screen readers announce a bubble once it stops streaming, not every delta.
    entry.el.setAttribute("aria-busy", status === "in_progress" ? "true" : "false");
    entry.tagEl.textContent =
      status === "in_progress" ? "…" : status === "completed" ? "" : `(${status})`;
  }

  linkResponse(responseId, itemId) {
    if (!responseId) return;
    let set = this.responseItems.get(responseId);
    if (!set) {
      set = new Set();
      this.responseItems.set(responseId, set);
      if (this.responseItems.size > 100) {
        this.responseItems.delete(this.responseItems.keys().next().value);
      }
    }
    set.add(itemId);
  }

  append(el) {
    const empty = this.root.querySelector(".empty");
    if (empty) empty.remove();
    const stick = this.nearBottom();
    this.root.append(el);
    while (this.root.childElementCount > MAX_BUBBLES) this.root.firstElementChild.remove();
    if (stick) this.root.scrollTop = this.root.scrollHeight;
  }

  nearBottom() {
    return this.root.scrollHeight - this.root.scrollTop - this.root.clientHeight < 80;
  }

  follow() {
    if (this.nearBottom() || this.root.scrollTop === 0) {
      this.root.scrollTop = this.root.scrollHeight;
    }
  }
}
