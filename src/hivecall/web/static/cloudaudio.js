// The cloud call's loudspeaker: each remote audio track plays through an <audio> of its own.
//
// Kept apart from the room's model (cloud.js) so that the model never touches the page: the
// room hands tracks here, and this is the only place their elements are made and removed.

export class RoomAudio {
  /** `box` receives the <audio> elements (default: a hidden element appended to the body). */
  constructor(box) {
    this.box = box || null;
  }

  /** Play `track` (an audio track of the participant `identity`); other kinds are ignored. */
  play(track, identity) {
    if (track?.kind !== "audio" || !track.attach) return;
    const el = track.attach();
    el.dataset.identity = identity || "";
    this.elements().append(el);
  }

  /** The track is gone: remove the elements it played through. */
  stop(track) {
    for (const el of track?.detach?.() || []) el.remove();
  }

  /** Silence everything (the room was left or lost). */
  clear() {
    if (this.box) this.box.replaceChildren();
  }

  elements() {
    if (!this.box) {
      this.box = document.createElement("div");
      this.box.hidden = true;
      this.box.className = "cloud-audio";
      document.body.append(this.box);
    }
    return this.box;
  }
}
