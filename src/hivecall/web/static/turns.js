// The agent's turns on one call, as the page follows them: what was asked, the progress lines,
// when it started, and how it ended. Each turn is followed on /api/turns/{id}/events (replayed
// from its start, so a late or reconnected follower misses nothing); a local call's data channel
// reports the same turns (hivecall.turn.started / progress / done), and either source is enough.
import { serverEvents } from "/static/api.js";

export const FINISHED = new Set(["done", "failed", "interrupted", "cancelled", "lost"]);
const PROGRESS_KEEP = 50;                      // as many as the hub keeps with a turn
const RETRY_MS = [500, 1000, 2000, 4000, 8000];  // after a dropped event stream
const GIVE_UP = new Set([401, 403, 404]);     // the hub will not show this turn: stop asking

export class CallTurns {
  /**
   * @param {{api: Function, onChange: Function, onProgress?: Function, onDone?: Function}} o
   * onProgress(turn, entry) for each new progress line; onDone(turn) once, when a turn ends.
   */
  constructor({ api, onChange, onProgress, onDone }) {
    this.api = api;
    this.onChange = onChange;
    this.onProgress = onProgress || (() => {});
    this.onDone = onDone || (() => {});
    this.list = [];
    this.byId = new Map();
    this.abort = new AbortController();
  }

  get closed() { return this.abort.signal.aborted; }

  /** A turn of this call (known from the tool's answer or the hub's data channel): follow it. */
  track(id, { message = "" } = {}) {
    if (!id) return null;
    let turn = this.byId.get(id);
    if (turn) {
      if (message && !turn.message) { turn.message = message; this.onChange(); }
      return turn;
    }
    turn = { id, message, status: "running", progress: [], text: "", startedAt: Date.now(),
      endedAt: null, durationMs: null, stopping: false };
    this.byId.set(id, turn);
    this.list.push(turn);
    this.onChange();
    this.follow(turn);
    return turn;
  }

  running() { return this.list.filter((t) => !FINISHED.has(t.status)); }

  view() {
    return this.list.map((t) => ({ ...t, progress: [...t.progress] }));
  }

  async follow(turn) {
    const path = `/api/turns/${encodeURIComponent(turn.id)}/events`;
    for (let attempt = 0; !this.closed && !FINISHED.has(turn.status); attempt += 1) {
      try {
        for await (const { event, data } of serverEvents(this.api, path, { signal: this.abort.signal })) {
          attempt = 0;
          if (event === "progress") this.progress(turn.id, data);
          else if (event === "done") this.finish(turn.id, data);
        }
      } catch (err) {
        if (this.closed) return;
        if (GIVE_UP.has(err.status)) {
          this.finish(turn.id, { status: "lost", text: `The hub no longer shows this turn (${err.message}).` });
          return;
        }
      }
      if (!FINISHED.has(turn.status) && !this.closed) await pause(RETRY_MS[Math.min(attempt, RETRY_MS.length - 1)]);
    }
  }

  /** A progress line {at?, text}; the same line from the other source is not added twice. */
  progress(id, entry) {
    const turn = this.byId.get(id);
    const text = String(entry?.text || "").trim();
    if (!turn || !text || FINISHED.has(turn.status)) return;
    const at = entry.at || null;
    if (turn.progress.some((p) => p.text === text && (!p.at || !at || p.at === at))) return;
    const line = { at, text, seenAt: Date.now() };
    turn.progress.push(line);
    if (turn.progress.length > PROGRESS_KEEP) turn.progress.shift();
    this.onProgress(turn, line);
    this.onChange();
  }

  /** The turn ended ({status, text, duration_ms}); later reports only fill in what was missing. */
  finish(id, data) {
    const turn = this.byId.get(id);
    if (!turn) return;
    const first = !FINISHED.has(turn.status);
    if (first) {
      turn.status = data.status || "done";
      turn.endedAt = Date.now();
      turn.stopping = false;
    }
    turn.text ||= data.text || "";
    turn.durationMs ??= data.duration_ms ?? null;
    if (first) this.onDone(turn);
    this.onChange();
  }

  /** Ask the hub to stop a running turn; its `done` (cancelled) comes through the events. */
  async cancel(id) {
    const turn = this.byId.get(id);
    if (!turn || FINISHED.has(turn.status)) return "finished";
    turn.stopping = true;
    this.onChange();
    try {
      await this.api(`/api/turns/${encodeURIComponent(id)}/cancel`, { method: "POST" });
      return "cancelling";
    } catch (err) {
      turn.stopping = false;
      this.onChange();
      if (err.code === "turn_finished") return "finished";
      throw err;
    }
  }

  close() { this.abort.abort(); }
}

/** How long a turn has run, in ms (until now, or until it ended). */
export function elapsedMs(turn, now = Date.now()) {
  if (FINISHED.has(turn.status) && turn.durationMs != null) return turn.durationMs;
  return (turn.endedAt || now) - turn.startedAt;
}

export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
