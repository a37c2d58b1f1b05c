// Cloud calls: a LiveKit room with several humans and several agents (dashboard, phone, guests).
//
// This is the room's model: state and transitions, no page elements. CloudRoom joins with the
// {url, token} the hub minted, publishes the microphone, hands every remote audio track to the
// loudspeaker (cloudaudio.js), and keeps a plain view of the room: who is in it (humans and
// agents, from the participant attributes "hivecall.kind" / "hivecall.agent_id"), who is
// speaking (ActiveSpeakersChanged) and the captions (livekit-agents 1.x sends them as text
// streams on the "lk.transcription" topic; older agents as RoomEvent.TranscriptionReceived).
// It is an EventTarget: listen to "change" and read `room.view`. The panel that draws that view
// with the owner's controls is cloudpanel.js.
//
// The LiveKit client is vendored into the package at build time (scripts/build-web.sh) and
// loaded only when a room is joined. Tokens are never shown or logged by this page.
import { RoomAudio } from "/static/cloudaudio.js";

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
   * @param {{lk?: object, audioBox?: HTMLElement, renew?: Function}} options
   * `lk` is the livekit-client module (default: the vendored one); `audioBox` receives the
   * <audio> elements of remote tracks (cloudaudio.js; default: a hidden element in the body);
   * `renew` (optional) resolves to fresh {url, token, …} for a retry.
   */
  constructor({ lk, audioBox, renew } = {}) {
    super();
    this.lk = lk || null;
    this.renew = renew || null;
    this.audio = new RoomAudio(audioBox);
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
    on(E.TrackSubscribed, (track, _pub, p) => this.audio.play(track, p?.identity));
    on(E.TrackUnsubscribed, (track) => this.audio.stop(track));
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
    this.audio.clear();
    if (!room) return;
    try { room.unregisterTextStreamHandler?.(TRANSCRIPTION_TOPIC); } catch { /* not registered */ }
    try { room.removeAllListeners?.(); } catch { /* no emitter */ }
    Promise.resolve().then(() => room.disconnect?.()).catch(() => {});
  }
}

let order = 0;
const nextOrder = () => ++order;
