// The agent's work on a call, as the call modal shows it: one entry per turn with what was
// asked, its live progress lines, the time it has run, a Stop button while it runs, and how it
// ended. Entries stay after they end, so the call keeps its history. Nodes are updated in place
// (a Stop button is never replaced under the pointer).
import { FINISHED, clock, elapsedMs } from "/static/turns.js";

const STATUS_LABEL = {
  running: "Working", done: "Done", failed: "Failed", cancelled: "Stopped",
  interrupted: "Interrupted", lost: "Unknown",
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

export function statusLabel(turn) {
  if (turn.stopping && !FINISHED.has(turn.status)) return "Stopping…";
  return STATUS_LABEL[turn.status] || turn.status;
}

/** The progress lines of a turn as a list (also used by the dashboard's call history). */
export function progressList(progress) {
  const list = el("ol", "turn-progress");
  for (const p of progress) list.append(el("li", "", p.text));
  return list;
}

export class TurnList {
  /** @param {HTMLElement} root  @param {{onStop: (id: string) => void}} o */
  constructor(root, { onStop }) {
    this.root = root;
    this.onStop = onStop;
    this.list = el("ol", "turns");
    this.root.append(this.list);
    this.nodes = new Map();  // turn id -> its parts
  }

  render(turns, { now = Date.now(), canStop = true } = {}) {
    this.root.hidden = !turns.length;
    for (const turn of turns) this.renderTurn(this.nodes.get(turn.id) || this.add(turn), turn, now, canStop);
  }

  add(turn) {
    const parts = {
      item: el("li", "turn"),
      message: el("span", "turn-message"),
      status: el("span", "turn-status pill"),
      elapsed: el("span", "turn-elapsed muted"),
      stop: el("button", "turn-stop danger", "Stop"),
      progress: el("ol", "turn-progress"),
      answer: el("p", "turn-answer"),
      shown: 0,        // progress lines in the list
      first: null,     // the first of them
    };
    parts.item.dataset.turnId = turn.id;
    parts.stop.type = "button";
    parts.stop.title = "Stop the agent's work on this";
    parts.stop.onclick = () => this.onStop(turn.id);
    const head = el("div", "turn-head row");
    head.append(parts.message, parts.status, parts.elapsed, parts.stop);
    parts.item.append(head, parts.progress, parts.answer);
    this.list.append(parts.item);
    this.nodes.set(turn.id, parts);
    return parts;
  }

  renderTurn(parts, turn, now, canStop) {
    const running = !FINISHED.has(turn.status);
    parts.item.dataset.status = turn.status;
    parts.message.textContent = turn.message || "(a request)";
    parts.status.textContent = statusLabel(turn);
    parts.status.dataset.status = turn.status;
    parts.elapsed.textContent = clock(elapsedMs(turn, now));
    parts.stop.hidden = !running || !canStop;
    parts.stop.disabled = turn.stopping;
    // New lines are appended; when the oldest went (the turn keeps 50), the list is rebuilt.
    const lines = turn.progress;
    const list = parts.progress;
    if (lines[0] !== parts.first || lines.length < parts.shown) {
      list.replaceChildren();
      parts.shown = 0;
    }
    if (lines.length > parts.shown) {
      for (const p of lines.slice(parts.shown)) list.append(el("li", "", p.text));
      parts.shown = lines.length;
      parts.first = lines[0];
      list.scrollTop = list.scrollHeight;
    }
    list.hidden = !lines.length;
    parts.answer.textContent = running ? "" : turn.text;
    parts.answer.hidden = running || !turn.text;
  }

  /** Only the clocks move between changes. */
  tick(turns, now = Date.now()) {
    for (const turn of turns) {
      const parts = this.nodes.get(turn.id);
      if (parts) parts.elapsed.textContent = clock(elapsedMs(turn, now));
    }
  }
}
