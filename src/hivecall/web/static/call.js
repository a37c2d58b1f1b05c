// One voice call with an agent, as the browser runs it (dashboard and mobile app alike).
//
// BYOK: the hub mints a short-lived client secret; this page speaks WebRTC straight to the
// Realtime service with it (offer SDP to {webrtc_url}/realtime/calls), listens on the
// `oai-events` data channel, and relays each `ask_computer_agent` tool call to the hub's
// /api/phone once per call_id (the service repeats a call in several events). The call's
// phases and finished transcript lines are reported to the hub so the history has them.
//
// Local: the same exchange with the hub itself (offer SDP to the call's offer_url). The hub
// hears, runs the turns and speaks; its data channel sends the same events, plus
// hivecall.turn.started/done while the agent works. The hub records the call itself, so the
// page reports nothing but the end.
//
// Cloud: the hub made a LiveKit room and dispatched the agent worker into it; this page joins
// the room with the token it minted (cloud.js: several people, several agents, captions). The
// worker records the call, so the page reports nothing but the end. A failed join is not the
// end of the call: the room stays, with Retry and End call.
//
// A Call is an EventTarget: listen to "change" and read `call.view` (a plain snapshot).

import { CloudRoom } from "/static/cloud.js";

const TOOL = "ask_computer_agent";
const GATHER_WAIT_MS = 2000;

const PROCESSED_AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
const RAW_AUDIO = { echoCancellation: false, noiseSuppression: false, autoGainControl: false };

export class Call extends EventTarget {
  /**
   * @param {{api: Function, agent: {id: string, name: string}, mode?: string,
   *          audio?: HTMLAudioElement}} options
   * `api(path, init)` does an authenticated JSON request and throws {message, code} on errors.
   */
  constructor({ api, agent, mode, audio }) {
    super();
    this.api = api;
    this.agent = agent;
    this.mode = mode || null;
    this.audio = audio || new Audio();
    this.audio.autoplay = true;
    this.record = null;            // the hub's call record
    this.phase = "ringing";
    this.mic = "off";              // live | muted | speaker-only | off
    this.caption = "";             // the latest response's words only
    this.captionId = null;
    this.userLine = "";
    this.working = 0;              // tool turns in flight
    this.error = null;             // {code, message}
    this.talkingSince = null;
    this.responses = new Map();    // response id -> transcript so far
    this.toolCalls = new Set();    // call_ids already relayed
    this.outbox = Promise.resolve();
    this.hubRecords = false;      // local calls: the hub writes the history itself
    this.pc = null;
    this.dc = null;
    this.track = null;
    this.cloud = null;             // cloud calls: the CloudRoom
  }

  get view() {
    return {
      phase: this.phase, mic: this.mic, caption: this.caption, userLine: this.userLine,
      working: this.working > 0, error: this.error, agent: this.agent,
      talkingSince: this.talkingSince, callId: this.record?.id || null, cloud: !!this.cloud,
    };
  }

  changed() { this.dispatchEvent(new Event("change")); }

  async start() {
    this.changed();
    try {
      const body = { agent_id: this.agent.id };
      if (this.mode) body.mode = this.mode;
      const { call } = await this.api("/api/calls", { method: "POST", body: JSON.stringify(body) });
      this.record = call;
      if (call.realtime) {
        const rt = call.realtime;
        await this.connect(`${rt.webrtc_url}/realtime/calls`, { authorization: `Bearer ${rt.client_secret}` },
          () => this.onOpen(rt));
      } else if (call.livekit) {
        await this.joinRoom(call.livekit);
      } else if (call.local) {
        this.hubRecords = true;
        await this.connect(call.local.offer_url, this.api.authHeaders?.() || {},
          () => this.send({ type: "response.create" }));
      } else {
        throw Object.assign(new Error(`this page cannot join ${call.mode} calls yet`),
          { code: "mode_unsupported" });
      }
    } catch (err) {
      await this.fail(err);
    }
  }

  async openMicrophone() {
    const raw = globalThis.localStorage?.getItem("hivecall.audio") === "raw";
    try {
      if (!navigator.mediaDevices?.getUserMedia) throw new Error("no media devices");
      const stream = await navigator.mediaDevices.getUserMedia({ audio: raw ? RAW_AUDIO : PROCESSED_AUDIO });
      this.track = stream.getAudioTracks()[0] || null;
    } catch {
      this.track = null;  // missing, refused or busy: the call goes on, speaker-only
    }
    this.mic = this.track ? "live" : "speaker-only";
    if (!this.track) this.report({ type: "speaker_only" });
  }

  // WebRTC to whoever answers offers at `url` (the Realtime service, or the hub itself).
  async connect(url, auth, onOpen) {
    await this.openMicrophone();
    const pc = (this.pc = new RTCPeerConnection());
    pc.ontrack = (e) => { this.audio.srcObject = e.streams[0] || new MediaStream([e.track]); };
    if (this.track) pc.addTrack(this.track, new MediaStream([this.track]));
    else pc.addTransceiver("audio", { direction: "recvonly" });
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed" && !this.finished)
        this.fail({ code: "media_failed", message: "the audio connection failed" });
    };
    const dc = (this.dc = pc.createDataChannel("oai-events"));
    dc.onopen = () => { if (this.phase !== "talking") this.setPhase("talking"); onOpen(); };
    dc.onmessage = (e) => this.onEvent(e.data);

    this.setPhase("connecting");
    await pc.setLocalDescription(await pc.createOffer());
    await gathered(pc);
    const res = await fetch(url, {
      method: "POST",
      body: pc.localDescription.sdp,
      credentials: "same-origin",
      headers: { ...auth, "content-type": "application/sdp" },
    });
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      throw Object.assign(new Error(body.error?.message || `the voice service refused the call (${res.status})`),
        { code: body.error?.code || "realtime_refused" });
    }
    await pc.setRemoteDescription({ type: "answer", sdp: await res.text() });
  }

  // A LiveKit room (cloud calls): the room's state drives this call's phase, mic and captions.
  async joinRoom(creds) {
    this.hubRecords = true;
    // A retry asks the hub for a fresh token (the first one expires after some minutes).
    const renew = async () =>
      (await this.api(`/api/calls/${this.record.id}/token`, { method: "POST" })).livekit;
    this.cloud = new CloudRoom({ renew });
    this.cloud.expectAgent(this.agent);  // the hub dispatched it: "joining" until it is in the room
    this.cloud.addEventListener("change", () => this.fromRoom());
    this.changed();
    await this.cloud.join(creds);
  }

  fromRoom() {
    if (this.finished) return;
    const r = this.cloud.view;
    const phase = ROOM_PHASE[r.phase];
    if (phase) {
      this.phase = phase;
      if (phase === "talking" && !this.talkingSince) this.talkingSince = Date.now();
    }
    if (phase === "ended") this.cloud.leave();
    this.mic = r.mic;
    this.error = r.error;
    this.caption = r.lastAgentCaption?.text || "";
    this.userLine = r.lastOwnCaption?.text || "";
    this.changed();
  }

  onOpen(rt) {
    this.send({ type: "session.update", session: { type: "realtime", tools: rt.tools, tool_choice: "auto" } });
    this.send({ type: "response.create", response: { instructions: rt.greeting } });
  }

  send(event) {
    if (this.dc?.readyState === "open") this.dc.send(JSON.stringify(event));
  }

  onEvent(data) {
    let ev;
    try { ev = JSON.parse(data); } catch { return; }
    const handler = HANDLERS[ev.type];
    if (handler) handler(this, ev);
  }

  // -- captions ---------------------------------------------------------------------------

  beginResponse(id) {
    this.responses.set(id, "");
    this.captionId = id;
    this.caption = "";
    this.changed();
  }

  addWords(id, delta) {
    if (!id) id = this.captionId;
    if (!this.responses.has(id)) this.beginResponse(id);
    this.responses.set(id, this.responses.get(id) + delta);
    if (id === this.captionId) { this.caption = this.responses.get(id); this.changed(); }
  }

  endResponse(response) {
    const id = response?.id;
    const words = (this.responses.get(id) || "").trim();
    if (words) this.report({ type: "agent", text: words.slice(0, 4000) });
    this.responses.delete(id);
    for (const item of response?.output || []) {
      if (item.type === "function_call") this.toolCall(item);
    }
  }

  heard(transcript) {
    const text = (transcript || "").trim();
    if (!text) return;
    this.userLine = text;
    this.changed();
    this.report({ type: "user", text: text.slice(0, 4000) });
  }

  // -- the tool ---------------------------------------------------------------------------

  async toolCall({ call_id: id, name, arguments: args }) {
    if (!id || this.toolCalls.has(id)) return;
    this.toolCalls.add(id);
    let output;
    if (name !== TOOL) {
      output = `There is no tool named ${name}.`;
    } else {
      this.working += 1;
      this.changed();
      try {
        const message = String(JSON.parse(args || "{}").message || "").trim();
        if (!message) throw new Error("the tool call had no message");
        const res = await this.api("/api/phone", { method: "POST",
          body: JSON.stringify({ agent_id: this.agent.id, message, call_id: this.record.id }) });
        output = res.text;
      } catch (err) {
        output = `The computer agent could not be reached: ${err.message}`;
      } finally {
        this.working -= 1;
        this.changed();
      }
    }
    if (this.finished) return;
    this.send({ type: "conversation.item.create", item: { type: "function_call_output", call_id: id, output } });
    this.send({ type: "response.create" });
  }

  // -- controls ---------------------------------------------------------------------------

  toggleMute() {
    if (this.cloud) { this.cloud.toggleMute(); return; }
    if (!this.track) return;
    this.track.enabled = !this.track.enabled;
    this.mic = this.track.enabled ? "live" : "muted";
    this.changed();
  }

  get finished() { return this.phase === "ended" || this.phase === "failed"; }

  async end() {
    if (this.finished) return;
    this.phase = "ended";
    this.teardown();
    this.changed();
    if (this.record) {
      const id = this.record.id;
      await this.flush();
      await this.api(`/api/calls/${id}/end`, { method: "POST" }).catch(() => {});
    }
  }

  async fail(err) {
    if (this.finished) return;
    this.error = { code: err.code || "call_failed", message: err.message || String(err) };
    this.phase = "failed";
    this.teardown();
    this.changed();
    if (this.record) {
      await this.flush();
      await this.api(`/api/calls/${this.record.id}/end`, { method: "POST",
        body: JSON.stringify({ error: { code: safeCode(this.error.code), message: this.error.message.slice(0, 500) } }) })
        .catch(() => {});
    }
  }

  teardown() {
    this.cloud?.leave();
    try { this.dc?.close(); } catch { /* already closed */ }
    try { this.pc?.close(); } catch { /* already closed */ }
    this.track?.stop();
    this.audio.srcObject = null;
  }

  setPhase(phase) {
    this.phase = phase;
    if (phase === "talking") this.talkingSince = Date.now();
    this.changed();
    this.report({ type: "phase", phase });
  }

  // Reports go out one after another, in order; a lost report never breaks the call.
  report(event) {
    if (!this.record || this.hubRecords) return;
    const id = this.record.id;
    this.outbox = this.outbox.then(() =>
      this.api(`/api/calls/${id}/events`, { method: "POST", body: JSON.stringify({ events: [event] }) })
        .catch(() => {}));
  }

  flush() { return this.outbox; }
}

// A room's phase -> the call's (a room that ended, or removed us, ends the call for this page).
const ROOM_PHASE = {
  connecting: "connecting", talking: "talking", reconnecting: "reconnecting", "join-failed": "join-failed",
  removed: "ended", "room-ended": "ended", left: "ended",
};

const HANDLERS = {
  "response.created": (c, ev) => c.beginResponse(ev.response?.id),
  "response.output_audio_transcript.delta": (c, ev) => c.addWords(ev.response_id, ev.delta || ""),
  "response.done": (c, ev) => c.endResponse(ev.response),
  "response.function_call_arguments.done": (c, ev) => c.toolCall(ev),
  "response.output_item.done": (c, ev) => { if (ev.item?.type === "function_call") c.toolCall(ev.item); },
  "conversation.item.input_audio_transcription.completed": (c, ev) => c.heard(ev.transcript),
  "hivecall.turn.started": (c) => { c.working += 1; c.changed(); },
  "hivecall.turn.done": (c) => { c.working = Math.max(0, c.working - 1); c.changed(); },
  "error": (c, ev) => {
    c.error = { code: ev.error?.code || "realtime_error", message: ev.error?.message || "the voice service reported an error" };
    c.changed();
    c.report({ type: "error", code: safeCode(c.error.code), message: c.error.message.slice(0, 500) });
  },
};

function safeCode(code) {
  return String(code || "error").toLowerCase().replace(/[^a-z0-9_.:-]/g, "_").slice(0, 64) || "error";
}

// Wait until ICE gathering is complete (or a moment passed) so the offer carries candidates.
function gathered(pc) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(timer); pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const timer = setTimeout(done, GATHER_WAIT_MS);
    pc.addEventListener("icegatheringstatechange", check);
  });
}
