// Cloud calls: a LiveKit room with several humans and several agents (dashboard, phone, guests).
//
// CloudRoom joins with the {url, token} the hub minted, publishes the microphone, plays every
// remote audio track, and keeps a plain view of the room: who is in it (humans and agents, from
// the participant attributes "hivecall.kind" / "hivecall.agent_id"), who is speaking
// (ActiveSpeakersChanged) and the captions (livekit-agents 1.x sends them as text streams on
// the "lk.transcription" topic; older agents as RoomEvent.TranscriptionReceived). It is an
// EventTarget: listen to "change" and read `room.view`. mountCloudPanel draws that view with
// the owner's controls: remove a participant, invite a friend, add an agent.
//
// The LiveKit client is vendored into the package at build time (scripts/build-web.sh) and
// loaded only when a room is joined. Tokens are never shown or logged by this page.

export const LIVEKIT_BUNDLE = "/static/vendor/livekit-client.umd.js";
export const TRANSCRIPTION_TOPIC = "lk.transcription";
const CONNECT_TIMEOUT_MS = 30000;
const MAX_CAPTIONS = 8;
const RAW_AUDIO = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };
const PROCESSED_AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
// @livekit/protocol's DisconnectReason, for a client that does not export it.
const DISCONNECT = { CLIENT_INITIATED: 1, DUPLICATE_IDENTITY: 2, PARTICIPANT_REMOVED: 4, ROOM_DELETED: 5, ROOM_CLOSED: 10 };

/** The vendored livekit-client (its UMD build sets globalThis.LivekitClient). */
export async function loadLivekit() {
  if (!globalThis.LivekitClient) {
    try {
      await import(LIVEKIT_BUNDLE);
    } catch {
      throw Object.assign(new Error("this hub has no LiveKit client for the browser (build it with scripts/build-web.sh)"),
        { code: "livekit_client_missing" });
    }
  }
  const lk = globalThis.LivekitClient;
  if (!lk?.Room) throw Object.assign(new Error("the LiveKit client did not load"), { code: "livekit_client_missing" });
  lk.setLogLevel?.("warn");
  return lk;
}

/** "human" or "agent", from the hub's attributes, else LiveKit's own participant kind. */
export function kindOf(p) {
  const kind = p?.attributes?.["hivecall.kind"];
  if (kind === "agent" || kind === "human") return kind;
  if (p?.isAgent || String(p?.identity || "").startsWith("agent-")) return "agent";
  return "human";
}

// Error text safe to show: no token, no URL query (LiveKit puts the token in one).
function scrub(text, secret) {
  let s = String(text || "");
  if (secret) s = s.split(secret).join("…");
  return s.replace(/([?&](?:access_token|token|join_request)=)[^&\s'"]*/gi, "$1…").replace(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, "…");
}

// livekit-client's ConnectionErrorReason: `reason` is the cause (reasonName may name a wrapper).
const CONNECTION_ERROR = ["NotAllowed", "ServerUnreachable", "InternalError", "Cancelled", "LeaveRequest",
  "Timeout", "WebSocket", "ServiceNotFound"];

function joinError(err, token) {
  if (err?.code === "livekit_client_missing") return { code: err.code, message: err.message };
  const why = {
    NotAllowed: "the LiveKit server refused to let this page in",
    ServerUnreachable: "the LiveKit server cannot be reached",
    Timeout: "the LiveKit server did not answer in time",
    ServiceNotFound: "the LiveKit server does not speak this client's protocol",
  }[CONNECTION_ERROR[err?.reason] || err?.reasonName] || "the connection to the LiveKit server failed";
  const detail = scrub(err?.message, token).slice(0, 300);
  return { code: "room_unreachable", message: `Could not join the room: ${why}.`, detail };
}

export class CloudRoom extends EventTarget {
  /**
   * @param {{lk?: object, audioBox?: HTMLElement}} options
   * `lk` is the livekit-client module (default: the vendored one); `audioBox` receives the
   * <audio> elements of remote tracks (default: a hidden element appended to the body);
   * `renew` (optional) resolves to fresh {url, token, …} for a retry.
   */
  constructor({ lk, audioBox, renew } = {}) {
    super();
    this.lk = lk || null;
    this.renew = renew || null;
    this.audioBox = audioBox || null;
    this.room = null;
    this.creds = null;             // {url, token, identity, expires_at}: kept for a retry only
    this.phase = "idle";           // idle connecting talking reconnecting join-failed left removed room-ended
    this.mic = "off";              // live | muted | speaker-only | off
    this.error = null;             // {code, message, detail?}
    this.participants = new Map(); // identity -> {identity, name, kind, agentId, local}
    this.pending = new Map();      // agent_id -> {name}: dispatched, not in the room yet
    this.speaking = new Set();     // identities
    this.captions = new Map();     // segment id -> {id, identity, text, final, at}
    this.audioBlocked = false;
    this.localIdentity = null;
    this.leaving = false;
    this.attempt = 0;
  }

  get view() {
    const people = [...this.participants.values()].map((p) => ({ ...p, speaking: this.speaking.has(p.identity) }));
    const rank = (p) => (p.local ? 0 : p.kind === "human" ? 1 : 2);
    people.sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name));
    const inRoom = new Set(people.filter((p) => p.agentId).map((p) => p.agentId));
    const pending = [...this.pending].filter(([id]) => !inRoom.has(id)).map(([agentId, a]) => ({ agentId, name: a.name }));
    const captions = [...this.captions.values()].sort((a, b) => a.at - b.at).slice(-MAX_CAPTIONS)
      .map((c) => ({ ...c, ...this.speaker(c.identity) }));
    return {
      phase: this.phase, mic: this.mic, error: this.error, audioBlocked: this.audioBlocked,
      participants: people, pending, captions,
      speaking: [...this.speaking],
      lastAgentCaption: [...captions].reverse().find((c) => c.kind === "agent") || null,
      lastOwnCaption: [...captions].reverse().find((c) => c.local) || null,
    };
  }

  changed() { this.dispatchEvent(new Event("change")); }

  speaker(identity) {
    const p = this.participants.get(identity);
    if (p) return { name: p.name, kind: p.kind, local: p.local };
    const local = identity != null && identity === this.localIdentity;
    const kind = String(identity || "").startsWith("agent-") ? "agent" : "human";
    return { name: local ? "You" : identity || "someone", kind, local };
  }

  get finished() { return ["left", "removed", "room-ended"].includes(this.phase); }

  // -- joining ----------------------------------------------------------------------------

  /** Join the room with {url, token, identity?, expires_at?}. Resolves once joined or failed. */
  async join(creds) {
    this.creds = creds;
    this.localIdentity = creds.identity || null;
    this.leaving = false;
    const attempt = ++this.attempt;
    this.error = null;
    this.phase = "connecting";
    this.changed();
    try {
      if (!this.lk) this.lk = await loadLivekit();
      const lk = this.lk;
      this.dispose();
      const room = (this.room = new lk.Room({ adaptiveStream: false, dynacast: false, disconnectOnPageLeave: true }));
      this.bind(room);
      let timer;
      const timeout = new Promise((_, reject) => {
        const late = () => reject(Object.assign(new Error("connect timed out"), { reasonName: "Timeout" }));
        timer = setTimeout(late, CONNECT_TIMEOUT_MS);
      });
      try {
        await Promise.race([room.connect(creds.url, creds.token, { autoSubscribe: true }), timeout]);
      } finally {
        clearTimeout(timer);
      }
      if (attempt !== this.attempt || this.leaving) return;
      this.onConnected(room);
      await this.publishMicrophone(room);
    } catch (err) {
      if (attempt !== this.attempt || this.leaving) return;
      this.dispose();
      this.phase = "join-failed";
      this.error = joinError(err, creds.token);
      this.changed();
    }
  }

  /** Try again: with fresh credentials when the page can ask the hub for them (`renew`),
   * else with the same ones (the hub's token is valid for some minutes). */
  async retry() {
    if (!this.creds || this.phase === "connecting") return;
    let creds = this.creds;
    if (this.renew) {
      try {
        creds = (await this.renew()) || creds;
      } catch {
        // the hub is unreachable or the call is over: try the old token, it says why
      }
    }
    return this.join(creds);
  }

  bind(room) {
    const E = this.lk.RoomEvent;
    const on = (name, fn) => room.on(name, (...args) => { if (room === this.room) fn(...args); });
    on(E.ParticipantConnected, (p) => { this.addParticipant(p, false); this.changed(); });
    on(E.ParticipantDisconnected, (p) => {
      this.participants.delete(p.identity);
      this.speaking.delete(p.identity);
      this.changed();
    });
    on(E.ParticipantAttributesChanged, (_changed, p) => { if (p) this.updateParticipant(p); });
    on(E.ParticipantNameChanged, (_name, p) => { if (p) this.updateParticipant(p); });
    on(E.ActiveSpeakersChanged, (speakers) => {
      this.speaking = new Set((speakers || []).map((p) => p.identity));
      this.changed();
    });
    on(E.TrackSubscribed, (track, _pub, p) => this.playTrack(track, p));
    on(E.TrackUnsubscribed, (track) => { for (const el of track.detach?.() || []) el.remove(); });
    on(E.AudioPlaybackStatusChanged, () => { this.audioBlocked = !room.canPlaybackAudio; this.changed(); });
    on(E.TranscriptionReceived, (segments, p) => {
      for (const s of segments || []) this.caption(s.id, p?.identity, s.text, !!s.final, true);
    });
    on(E.Reconnecting, () => { this.phase = "reconnecting"; this.changed(); });
    on(E.Reconnected, () => { this.phase = "talking"; this.changed(); });
    on(E.Disconnected, (reason) => this.onDisconnected(reason));
    room.registerTextStreamHandler?.(TRANSCRIPTION_TOPIC, (reader, from) => this.readCaption(reader, from?.identity));
  }

  onConnected(room) {
    const local = room.localParticipant;
    this.localIdentity = local?.identity || this.localIdentity;
    this.participants.clear();
    if (local) this.addParticipant(local, true);
    for (const p of room.remoteParticipants?.values?.() || []) this.addParticipant(p, false);
    this.audioBlocked = room.canPlaybackAudio === false;
    this.phase = "talking";
    this.changed();
    room.startAudio?.().catch?.(() => {});
  }

  onDisconnected(reason) {
    const D = { ...DISCONNECT, ...(this.lk?.DisconnectReason || {}) };
    this.speaking.clear();
    if (this.leaving) return;
    if (reason === D.PARTICIPANT_REMOVED) {
      this.phase = "removed";
      this.error = { code: "participant_removed", message: "You were removed from the call." };
    } else if (reason === D.ROOM_DELETED || reason === D.ROOM_CLOSED) {
      this.phase = "room-ended";
      this.error = null;
    } else if (reason === D.DUPLICATE_IDENTITY) {
      this.phase = "left";
      this.error = { code: "duplicate_identity", message: "This call was opened somewhere else." };
    } else if (this.phase === "talking" || this.phase === "reconnecting") {
      this.phase = "join-failed";
      this.error = { code: "room_lost", message: "The connection to the room was lost." };
    } else {
      return;  // a failed connect: join() reports it
    }
    this.mic = "off";
    this.dispose();  // the microphone stops; a retry makes a new Room
    this.changed();
  }

  async publishMicrophone(room) {
    const raw = globalThis.localStorage?.getItem("hivecall.audio") === "raw";
    try {
      await room.localParticipant.setMicrophoneEnabled(true, raw ? RAW_AUDIO : PROCESSED_AUDIO);
      this.mic = "live";
    } catch {
      this.mic = "speaker-only";  // missing, refused or busy: stay in the room and listen
    }
    this.changed();
  }

  async toggleMute() {
    if (!this.room || !(this.mic === "live" || this.mic === "muted")) return;
    const on = this.mic === "muted";
    try {
      await this.room.localParticipant.setMicrophoneEnabled(on);
      this.mic = on ? "live" : "muted";
    } catch {
      this.mic = "speaker-only";
    }
    this.changed();
  }

  /** Browsers may hold audio back until a click: call this from one. */
  async startAudio() {
    try { await this.room?.startAudio?.(); } catch { /* still blocked */ }
    this.audioBlocked = this.room ? this.room.canPlaybackAudio === false : false;
    this.changed();
  }

  // -- participants -------------------------------------------------------------------------

  addParticipant(p, local) {
    const attrs = p.attributes || {};
    this.participants.set(p.identity, {
      identity: p.identity,
      name: local ? "You" : p.name || p.identity,
      kind: local ? "human" : kindOf(p),
      agentId: attrs["hivecall.agent_id"] || null,
      state: attrs["lk.agent.state"] || null,  // livekit-agents: listening, thinking, speaking…
      local,
    });
  }

  updateParticipant(p) {
    const known = this.participants.get(p.identity);
    if (!known) return;
    this.addParticipant(p, known.local);
    this.changed();
  }

  /** An agent the hub dispatched, shown as "joining" until it is in the room. */
  expectAgent(agent) {
    this.pending.set(agent.id, { name: agent.name });
    this.changed();
  }

  forget(identity) {
    this.participants.delete(identity);
    this.speaking.delete(identity);
    this.changed();
  }

  playTrack(track, p) {
    if (track?.kind !== "audio" || !track.attach) return;
    const el = track.attach();
    el.dataset.identity = p?.identity || "";
    this.audioElements().append(el);
  }

  audioElements() {
    if (!this.audioBox) {
      this.audioBox = document.createElement("div");
      this.audioBox.hidden = true;
      this.audioBox.className = "cloud-audio";
      document.body.append(this.audioBox);
    }
    return this.audioBox;
  }

  releaseAudio() {
    if (this.audioBox) this.audioBox.replaceChildren();
  }

  // -- captions -----------------------------------------------------------------------------

  // A text stream on lk.transcription: chunks are deltas of one stream. An agent's speech
  // comes as one stream per segment; a person's speech (transcribed by the agent) as one
  // stream per update, each with the whole text so far: so a segment shows its latest stream.
  async readCaption(reader, identity) {
    const attrs = reader.info?.attributes || {};
    const id = attrs["lk.segment_id"] || reader.info?.id || `${identity}-${Date.now()}`;
    // Whose words: the owner of the transcribed track (the agent sends a person's words too).
    const who = this.trackOwner(attrs["lk.transcribed_track_id"]) || identity || null;
    let text = "";
    try {
      for await (const chunk of reader) {
        text += chunk;
        this.caption(id, who, text, false, true);
      }
    } catch {
      /* the stream broke off: keep what arrived */
    }
    const final = (reader.info?.attributes || attrs)["lk.transcription_final"] === "true" || this.speaker(who).kind === "agent";
    this.caption(id, who, text, final, true);
  }

  trackOwner(sid) {
    if (!sid || !this.room) return null;
    const everyone = [this.room.localParticipant, ...(this.room.remoteParticipants?.values?.() || [])];
    return everyone.find((p) => p?.trackPublications?.has?.(sid))?.identity || null;
  }

  caption(id, identity, text, final, replace) {
    if (!id) return;
    const known = this.captions.get(id);
    const words = replace || !known ? String(text || "") : known.text + String(text || "");
    if (!words.trim() && !known) return;
    const at = known?.at ?? nextOrder();
    this.captions.set(id, { id, identity: identity ?? known?.identity ?? null, text: words, final, at });
    if (this.captions.size > MAX_CAPTIONS * 4) {
      const oldest = [...this.captions.values()].sort((a, b) => a.at - b.at).slice(0, this.captions.size - MAX_CAPTIONS);
      for (const c of oldest) this.captions.delete(c.id);
    }
    this.changed();
  }

  // -- leaving ------------------------------------------------------------------------------

  /** Leave the room (the call itself goes on for the others). */
  async leave() {
    this.leaving = true;
    this.attempt += 1;
    if (!this.finished) this.phase = "left";
    this.mic = "off";
    this.dispose();
    this.changed();
  }

  dispose() {
    const room = this.room;
    this.room = null;
    this.speaking.clear();
    this.releaseAudio();
    if (!room) return;
    try { room.unregisterTextStreamHandler?.(TRANSCRIPTION_TOPIC); } catch { /* not registered */ }
    try { room.removeAllListeners?.(); } catch { /* no emitter */ }
    Promise.resolve().then(() => room.disconnect?.()).catch(() => {});
  }
}

let order = 0;
const nextOrder = () => ++order;

// -- the panel --------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(c ?? ""))));
  return node;
}

const PANEL = `
  <div class="cloud-status" data-role="status" role="status" hidden>
    <p class="error" data-role="status-text"></p>
    <p class="muted small" data-role="status-detail"></p>
    <p class="row"><button type="button" data-role="retry">Retry</button>
      <button type="button" class="danger" data-role="hang-up">Hang up</button></p>
  </div>
  <p data-role="audio-blocked" hidden><button type="button" data-role="start-audio">Play the call's audio</button></p>
  <div class="cloud-grid">
    <div class="cloud-people">
      <h3>In the call</h3>
      <ul class="participants" data-role="participants"></ul>
    </div>
    <div class="cloud-talk">
      <h3>Captions</h3>
      <ol class="captions" data-role="captions" aria-live="polite"></ol>
    </div>
  </div>
  <div class="cloud-manage" data-role="manage" hidden>
    <p class="row"><button type="button" data-role="invite">Invite a friend</button>
      <select data-role="agent-pick" aria-label="Agent to add"></select>
      <button type="button" data-role="add-agent">Add agent</button></p>
    <div class="invite" data-role="invite-box" hidden>
      <p class="row"><input data-role="invite-url" readonly size="34" aria-label="Invite link">
        <button type="button" data-role="copy">Copy</button></p>
      <p class="muted small" data-role="invite-note"></p>
    </div>
    <p class="error" data-role="manage-error" role="alert" hidden></p>
  </div>`;

/**
 * Draw `room` into `container` and wire the controls.
 * @param {{api?: Function, callId?: string, manage?: boolean, onHangUp?: Function,
 *          showHangUp?: boolean}} options
 * `manage`: the owner's controls (remove, invite, add agent) with `api` and `callId`.
 * `onHangUp`: what "Hang up" does after a failed join (default: leave the room).
 */
export function mountCloudPanel(container, room, { api, callId, manage = false, onHangUp, showHangUp = true } = {}) {
  container.classList.add("cloud-panel");
  container.innerHTML = PANEL;
  const $ = (role) => container.querySelector(`[data-role="${role}"]`);
  let agents = [];
  const removing = new Set();
  let adding = false;
  const base = `/api/calls/${encodeURIComponent(callId)}`;

  const manageError = (err) => {
    $("manage-error").hidden = !err;
    $("manage-error").textContent = err ? err.message || String(err) : "";
  };

  const render = () => {
    const v = room.view;
    container.dataset.phase = v.phase;
    const failed = v.phase === "join-failed" || v.phase === "removed";
    $("status").hidden = !(failed || v.phase === "room-ended");
    $("status-text").textContent = v.phase === "room-ended" ? "The call has ended." : v.error?.message || "";
    $("status-detail").textContent = v.error?.detail || "";
    $("status-detail").hidden = !v.error?.detail;
    $("retry").hidden = v.phase !== "join-failed";
    $("retry").disabled = false;
    $("hang-up").hidden = !showHangUp || v.phase !== "join-failed";
    $("audio-blocked").hidden = !v.audioBlocked || room.finished;

    $("participants").replaceChildren(...v.participants.map((p) => {
      const li = el("li", { className: "participant" },
        el("span", { className: "speaking-dot", title: p.speaking ? "speaking" : "" }),
        el("span", { className: "who" }, p.name),
        el("span", { className: `kind kind-${p.kind}` }, p.kind === "agent" ? "agent" : p.local ? "you" : "person"),
        el("span", { className: "agent-state muted" }, p.kind === "agent" && p.state === "thinking" ? "thinking…" : ""));
      li.dataset.identity = p.identity;
      li.dataset.kind = p.kind;
      li.dataset.speaking = p.speaking ? "1" : "0";
      if (p.agentId) li.dataset.agent = p.agentId;
      if (manage && !p.local) {
        const rm = el("button", { type: "button", className: "danger remove", textContent: "Remove" });
        rm.dataset.identity = p.identity;
        rm.disabled = removing.has(p.identity);
        rm.onclick = () => remove(p);
        li.append(rm);
      }
      return li;
    }), ...v.pending.map((a) => {
      const li = el("li", { className: "participant pending" }, el("span", { className: "speaking-dot" }),
        el("span", { className: "who" }, a.name), el("span", { className: "kind kind-agent" }, "joining…"));
      li.dataset.kind = "agent";
      li.dataset.agent = a.agentId;
      li.dataset.pending = "1";
      return li;
    }));

    $("captions").replaceChildren(...v.captions.map((c) => {
      const li = el("li", { className: `caption-line kind-${c.kind}` }, el("b", {}, `${c.local ? "You" : c.name}: `), c.text);
      li.dataset.kind = c.kind;
      li.dataset.final = c.final ? "1" : "0";
      li.dataset.identity = c.identity || "";
      return li;
    }));

    const canManage = manage && !room.finished && v.phase !== "idle";
    $("manage").hidden = !canManage;
    if (canManage) {
      const busy = new Set([...v.participants.map((p) => p.agentId), ...v.pending.map((a) => a.agentId)].filter(Boolean));
      const choices = agents.filter((a) => !busy.has(a.id) && a.status !== "unavailable");
      const current = $("agent-pick").value;
      const key = choices.map((a) => a.id).join(",");
      if ($("agent-pick").dataset.key !== key) {
        $("agent-pick").replaceChildren(...choices.map((a) => el("option", { value: a.id, textContent: a.name })));
        $("agent-pick").dataset.key = key;
        if (choices.some((a) => a.id === current)) $("agent-pick").value = current;
      }
      $("agent-pick").hidden = $("add-agent").hidden = !choices.length;  // nobody left to add
      $("add-agent").disabled = adding;
    }
  };

  async function remove(p) {
    if (!confirm(`Remove ${p.name} from the call?`)) return;
    removing.add(p.identity);
    manageError(null);
    render();
    try {
      await api(`${base}/participants/${encodeURIComponent(p.identity)}`, { method: "DELETE" });
      room.forget(p.identity);
    } catch (err) {
      manageError(err);
    } finally {
      removing.delete(p.identity);
      render();
    }
  }

  async function invite() {
    manageError(null);
    $("invite").disabled = true;
    try {
      const { invite: inv } = await api(`${base}/invites`, { method: "POST", body: JSON.stringify({}) });
      $("invite-url").value = inv.url;
      const uses = inv.max_uses === 1 ? "Works once" : `Works ${inv.max_uses} times`;
      const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      const until = inv.expires_at ? `, until ${time(inv.expires_at)}` : "";
      $("invite-note").textContent = `${uses}${until}. Send it to the person you want in the call.`;
      $("copy").textContent = "Copy";
      $("invite-box").hidden = false;
      $("invite-url").select();
    } catch (err) {
      manageError(err);
    } finally {
      $("invite").disabled = false;
    }
  }

  async function copy() {
    const text = $("invite-url").value;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      $("invite-url").select();
      document.execCommand?.("copy");
    }
    $("copy").textContent = "Copied";
  }

  async function addAgent() {
    const id = $("agent-pick").value;
    if (!id) return;
    manageError(null);
    adding = true;
    render();
    try {
      const res = await api(`${base}/agents`, { method: "POST", body: JSON.stringify({ agent_id: id }) });
      room.expectAgent(res.agent || { id, name: agents.find((a) => a.id === id)?.name || id });
    } catch (err) {
      manageError(err);
    } finally {
      adding = false;
      render();
    }
  }

  $("retry").onclick = () => { $("retry").disabled = true; room.retry(); };
  $("hang-up").onclick = () => (onHangUp ? onHangUp() : room.leave());
  $("start-audio").onclick = () => room.startAudio();
  $("invite").onclick = invite;
  $("copy").onclick = copy;
  $("add-agent").onclick = addAgent;
  room.addEventListener("change", render);
  if (manage && api) {
    api("/api/agents").then((res) => { agents = res.agents || []; render(); }).catch(() => {});
  }
  render();
  return { render, unmount: () => room.removeEventListener("change", render) };
}
