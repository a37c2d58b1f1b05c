// A stand-in for the livekit-client module (tests/browser/test_cloud_call.py): the same event
// names, classes and call shapes cloud.js uses, plus helpers (FakeLivekit.last.*) with which a
// test plays the SFU's part. test_the_fake_matches_the_vendored_client checks the names.
const RoomEvent = {
  ParticipantConnected: "participantConnected", ParticipantDisconnected: "participantDisconnected",
  ParticipantAttributesChanged: "participantAttributesChanged", ParticipantNameChanged: "participantNameChanged",
  ActiveSpeakersChanged: "activeSpeakersChanged", TrackSubscribed: "trackSubscribed",
  TrackUnsubscribed: "trackUnsubscribed", AudioPlaybackStatusChanged: "audioPlaybackChanged",
  TranscriptionReceived: "transcriptionReceived", Reconnecting: "reconnecting",
  Reconnected: "reconnected", Disconnected: "disconnected",
};
const DisconnectReason = { CLIENT_INITIATED: 1, DUPLICATE_IDENTITY: 2, PARTICIPANT_REMOVED: 4, ROOM_DELETED: 5 };

class Participant {
  constructor({ identity, name = "", attributes = {}, tracks = [] }) {
    this.identity = identity;
    this.name = name;
    this.attributes = attributes;
    this.trackPublications = new Map(tracks.map((sid) => [sid, { trackSid: sid }]));
    this.isAgent = false;
  }
}

class LocalParticipant extends Participant {
  constructor(spec) { super(spec); this.micCalls = []; this.isMicrophoneEnabled = false; }
  async setMicrophoneEnabled(on, options) {
    this.micCalls.push({ on, options: options || null });
    if (FakeLivekit.micFails) throw new Error("NotAllowedError: Permission denied");
    this.isMicrophoneEnabled = on;
    if (on) this.trackPublications.set("TR_local", { trackSid: "TR_local" });
  }
}

class Track {
  constructor(kind) { this.kind = kind; this.elements = []; }
  attach() { const a = document.createElement("audio"); this.elements.push(a); return a; }
  detach() { const out = this.elements; this.elements = []; return out; }
}

function textReader(info) {
  const queue = [];
  let wake = null;
  let done = false;
  return {
    info,
    push(text) { queue.push(text); wake?.(); },
    end(attributes) {
      if (attributes) info.attributes = { ...info.attributes, ...attributes };
      done = true;
      wake?.();
    },
    [Symbol.asyncIterator]() {
      return {
        next: async () => {
          while (!queue.length && !done) await new Promise((r) => { wake = r; });
          wake = null;
          return queue.length ? { value: queue.shift(), done: false } : { value: undefined, done: true };
        },
        return: async () => ({ value: undefined, done: true }),
      };
    },
  };
}

class Room {
  constructor(options) {
    this.options = options;
    this.listeners = new Map();
    this.handlers = new Map();
    this.remoteParticipants = new Map();
    this.localParticipant = null;
    this.canPlaybackAudio = true;
    this.disconnected = false;
    this.connects = [];
    FakeLivekit.rooms.push(this);
    FakeLivekit.last = this;
  }
  on(name, fn) { (this.listeners.get(name) || this.listeners.set(name, []).get(name)).push(fn); return this; }
  removeAllListeners() { this.listeners.clear(); return this; }
  emit(name, ...args) { for (const fn of this.listeners.get(name) || []) fn(...args); }
  registerTextStreamHandler(topic, fn) { this.handlers.set(topic, fn); }
  unregisterTextStreamHandler(topic) { this.handlers.delete(topic); }
  async connect(url, token, options) {
    this.connects.push({ url, token, options });
    FakeLivekit.connects.push({ url, token });
    await new Promise((r) => setTimeout(r, 20));
    if (FakeLivekit.refuse > 0) {
      FakeLivekit.refuse -= 1;
      const err = new Error(`could not establish signal connection: ${url}/rtc/v1?access_token=${token}&sdk=js`);
      throw Object.assign(err, { name: "ConnectionError", reasonName: "ServerUnreachable" });
    }
    this.localParticipant = new LocalParticipant({ identity: FakeLivekit.localIdentity, name: "me" });
    for (const spec of FakeLivekit.initial) this.remoteParticipants.set(spec.identity, new Participant(spec));
  }
  async startAudio() { this.canPlaybackAudio = true; this.emit(RoomEvent.AudioPlaybackStatusChanged, true); }
  async disconnect() { this.disconnected = true; this.emit(RoomEvent.Disconnected, DisconnectReason.CLIENT_INITIATED); }

  // -- the SFU's part, for tests --
  join(spec) {
    const p = new Participant(spec);
    this.remoteParticipants.set(p.identity, p);
    this.emit(RoomEvent.ParticipantConnected, p);
    return p;
  }
  leave(identity) {
    const p = this.remoteParticipants.get(identity);
    this.remoteParticipants.delete(identity);
    this.emit(RoomEvent.ParticipantDisconnected, p);
  }
  setAttributes(identity, attributes) {
    const p = this.remoteParticipants.get(identity);
    p.attributes = { ...p.attributes, ...attributes };
    this.emit(RoomEvent.ParticipantAttributesChanged, attributes, p);
  }
  speakers(identities) {
    const all = [this.localParticipant, ...this.remoteParticipants.values()];
    this.emit(RoomEvent.ActiveSpeakersChanged, identities.map((id) => all.find((p) => p.identity === id)));
  }
  subscribe(identity) {
    const track = new Track("audio");
    this.emit(RoomEvent.TrackSubscribed, track, {}, this.remoteParticipants.get(identity));
    return track;
  }
  text(identity, attributes, id) {
    const reader = textReader({ id: id || `TS_${Math.random()}`, topic: "lk.transcription", attributes, timestamp: Date.now() });
    this.handlers.get("lk.transcription")(reader, { identity });
    return reader;
  }
  kicked(reason) { this.emit(RoomEvent.Disconnected, reason); }
}

window.FakeLivekit = {
  Room, RoomEvent, DisconnectReason, rooms: [], connects: [], last: null, refuse: 0, micFails: false,
  localIdentity: "human-0001", initial: [],
};
