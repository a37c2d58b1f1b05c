// Keeps the phone's screen on while a call is live: a phone that dims and locks mid-call hides
// the captions, and some stop the page's audio. The browser drops the lock whenever the page is
// hidden, so it is asked for again when the page is visible. Where the Wake Lock API is missing
// or refuses (no secure context, battery saver), the call simply goes on.
// `document.body.dataset.wakeLock` says the state: held | wanted | off.

export class ScreenAwake {
  constructor() {
    this.wanted = false;
    this.sentinel = null;
    this.asking = false;
    document.addEventListener("visibilitychange", () => this.acquire());
    this.show();
  }

  get supported() { return typeof navigator.wakeLock?.request === "function"; }

  /** Hold the screen on from now until the call ends. */
  follow(call) {
    const check = () => {
      if (call.finished) { call.removeEventListener("change", check); this.release(); } else this.hold();
    };
    call.addEventListener("change", check);
    check();
  }

  hold() {
    if (this.wanted) return;
    this.wanted = true;
    this.acquire();
  }

  async acquire() {
    if (!this.wanted || this.sentinel || this.asking || !this.supported) return this.show();
    if (document.visibilityState !== "visible") return this.show();
    this.asking = true;
    try {
      const sentinel = await navigator.wakeLock.request("screen");
      sentinel.addEventListener("release", () => {
        if (this.sentinel === sentinel) this.sentinel = null;
        this.show();
      });
      this.sentinel = sentinel;
      if (!this.wanted) this.release();  // the call ended while the browser was asked
    } catch {
      this.sentinel = null;  // refused: nothing to do but keep calling
    } finally {
      this.asking = false;
    }
    this.show();
  }

  release() {
    this.wanted = false;
    const sentinel = this.sentinel;
    this.sentinel = null;
    sentinel?.release().catch(() => {});
    this.show();
  }

  show() {
    document.body.dataset.wakeLock = this.sentinel ? "held" : this.wanted ? "wanted" : "off";
  }
}
