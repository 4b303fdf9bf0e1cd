// Side panels: raw events, tools & handoffs log, metrics. Every list is bounded.

const MAX_EVENTS = 300;
const MAX_TOOLS = 150;
const MAX_TURNS = 30;
const MAX_JSON_CHARS = 600;
const NOISY = new Set(["text_delta", "user_transcript_delta", "playback", "history_updated"]);

function clock() {
  const d = new Date();
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function trimList(list, max) {
  while (list.childElementCount > max) list.lastElementChild.remove();
}

export class EventLog {
  constructor(list, counter, hideNoisy) {
    this.list = list;
    this.counter = counter;
    this.hideNoisy = hideNoisy;
    this.count = 0;
  }

  /** dir: "in" (server -> browser) or "out". Newest first. */
  add(dir, msg) {
    this.count++;
    this.counter.textContent = `(${this.count})`;
    const type = msg && typeof msg.type === "string" ? msg.type : "?";
    if (this.hideNoisy.checked && NOISY.has(type)) return;
    const li = document.createElement("li");
    li.className = `ev ${dir}${type === "error" ? " error" : ""}`;
    const head = document.createElement("span");
    head.className = "ev-head";
    head.textContent = `${clock()} ${dir === "in" ? "◀" : "▶"} ${type}`;
    const body = document.createElement("code");
    let json = JSON.stringify(msg);
    if (json.length > MAX_JSON_CHARS) json = json.slice(0, MAX_JSON_CHARS) + "…";
    body.textContent = json;
    li.append(head, body);
    this.list.prepend(li);
    trimList(this.list, MAX_EVENTS);
  }

  clear() {
    this.list.replaceChildren();
  }
}

export class ToolsLog {
  constructor(list) {
    this.list = list;
    this.byCall = new Map();
  }

  entry(kind, title, detail, key) {
    let li = key ? this.byCall.get(key) : null;
    if (!li) {
      li = document.createElement("li");
      li.append(document.createElement("strong"), document.createElement("span"));
      li.lastChild.className = "detail";
      this.list.prepend(li);
      trimList(this.list, MAX_TOOLS);
      if (key) {
        this.byCall.set(key, li);
        if (this.byCall.size > MAX_TOOLS) this.byCall.delete(this.byCall.keys().next().value);
      }
    }
    li.className = `tool ${kind}`;
    li.firstChild.textContent = `${clock().slice(0, 8)} ${title}`;
    li.lastChild.textContent = detail || "";
    return li;
  }
}

function fmtMs(v) {
  return typeof v === "number" ? `${Math.round(v)} ms` : "–";
}

export class MetricsPanel {
  constructor(latest, rows) {
    this.latest = latest;
    this.rows = rows;
    this.turns = new Map(); // response id -> tr
    this.tokensIn = 0;
    this.tokensOut = 0;
    this.cost = 0;
    this.costKnown = false;
  }

  set(key, text) {
    const dd = this.latest.querySelector(`dd[data-k="${key}"]`);
    if (dd) dd.textContent = text;
  }

  onMetrics(m) {
    for (const k of ["stt_ms", "llm_ms", "tts_ms", "turn_ms"]) this.set(k, fmtMs(m[k]));
    if (typeof m.input_tokens === "number") this.tokensIn += m.input_tokens;
    if (typeof m.output_tokens === "number") this.tokensOut += m.output_tokens;
    if (typeof m.input_tokens === "number" || typeof m.output_tokens === "number") {
      this.set("tokens", `${this.tokensIn} / ${this.tokensOut}`);
    }
    if (typeof m.cost_usd === "number") {
      this.cost += m.cost_usd;
      this.costKnown = true;
    }
    this.set("cost", this.costKnown ? `$${this.cost.toFixed(4)}` : "n/a");
    if (typeof m.dropped === "number") this.set("dropped", String(m.dropped));
    const tr = this.row(m.response_id);
    const cells = tr.children;
    cells[1].textContent = fmtMs(m.stt_ms);
    cells[2].textContent = fmtMs(m.llm_ms);
    cells[3].textContent = fmtMs(m.tts_ms);
    cells[4].textContent = fmtMs(m.turn_ms);
  }

  onClientE2E(responseId, ms, spoken) {
    this.set("e2e_ms", `${Math.round(ms)} ms${spoken ? "" : " (typed)"}`);
    this.row(responseId).children[5].textContent = fmtMs(ms);
  }

  row(responseId) {
    const key = responseId || "?";
    let tr = this.turns.get(key);
    if (!tr) {
      tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = key;
      tr.append(th);
      for (let i = 0; i < 5; i++) {
        const td = document.createElement("td");
        td.textContent = "–";
        tr.append(td);
      }
      this.rows.prepend(tr);
      this.turns.set(key, tr);
      if (this.turns.size > MAX_TURNS) {
        const oldest = this.turns.keys().next().value;
        this.turns.get(oldest).remove();
        this.turns.delete(oldest);
      }
    }
    return tr;
  }
}
