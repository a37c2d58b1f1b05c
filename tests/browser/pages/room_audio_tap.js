// A recorder for tests, added to a page before its own scripts (playwright's add_init_script).
//
// It taps, on one AudioContext clock, the page's microphone (every audio stream getUserMedia
// returns: "mic", "mic-2", …) and every remote track the page plays (each <audio>/<video>
// element with a MediaStream that appears in the document: "remote:<data-identity>", as
// cloudaudio.js marks them). Python reads one tap with `window.__tap.take(label)`: the samples
// as base64 16-bit PCM, the context's rate and the context frame of the first sample, so taps
// line up with each other (the microphone's speech end against the answer's first sound).
//
// With `window.__tapOptions = {holdMic: true}` (set by an earlier init script) getUserMedia
// waits until `window.__tap.openMic()`: Chromium's fake microphone plays its file from the
// moment the device opens, so the test chooses when the person starts speaking.
(() => {
  if (window.__tap) return;
  // A ScriptProcessorNode, not an AudioWorklet: the hub's Content-Security-Policy refuses the
  // blob: module a worklet would need, and the page is tested as it is served.
  const BLOCK = 2048;
  const LOUD = 600 / 32768;  // browser_audio.LOUD, as a float sample
  const ctx = new AudioContext({ sampleRate: 48000 });
  const sink = ctx.createGain();
  sink.gain.value = 0;  // pulled by the destination, heard by nobody (the page plays its own)
  sink.connect(ctx.destination);
  const taps = new Map();  // label -> {chunks: [{frame, data}], track}
  const seen = new WeakSet();

  const label = (base) => {
    let name = base, n = 1;
    while (taps.has(name)) name = `${base}-${++n}`;
    return name;
  };

  async function tap(base, track) {
    if (!track || track.kind !== "audio" || seen.has(track)) return;
    seen.add(track);
    const name = label(base);
    const entry = { chunks: [], track, loudAt: -1 };
    taps.set(name, entry);
    if (ctx.state !== "running") await ctx.resume().catch(() => {});
    const source = ctx.createMediaStreamSource(new MediaStream([track]));
    const node = ctx.createScriptProcessor(BLOCK, 1, 1);
    // playbackTime is when this block would play: the block's input was captured BLOCK frames
    // earlier, the same offset on every tap.
    node.onaudioprocess = (e) => {
      const frame = Math.round(e.playbackTime * ctx.sampleRate) - BLOCK;
      const data = e.inputBuffer.getChannelData(0).slice();
      entry.chunks.push({ frame, data });
      let peak = 0;
      for (let i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i]));
      if (peak >= LOUD) entry.loudAt = (frame + data.length) / ctx.sampleRate;
    };
    source.connect(node);
    node.connect(sink);
    entry.nodes = [source, node];
  }

  let openMic;
  const micGate = window.__tapOptions?.holdMic ? new Promise((r) => { openMic = r; }) : Promise.resolve();
  let micAsked = false;
  const gum = navigator.mediaDevices?.getUserMedia?.bind(navigator.mediaDevices);
  if (gum) {
    navigator.mediaDevices.getUserMedia = async (constraints) => {
      if (constraints?.audio) micAsked = true;
      await micGate;
      const stream = await gum(constraints);
      for (const t of stream.getAudioTracks()) tap("mic", t);
      return stream;
    };
  }

  const watchElement = (el) => {
    const stream = el.srcObject;
    if (!(stream instanceof MediaStream)) return;
    for (const t of stream.getAudioTracks()) tap(`remote:${el.dataset.identity || "?"}`, t);
  };
  new MutationObserver((records) => {
    for (const r of records) {
      for (const n of r.addedNodes) {
        if (!(n instanceof Element)) continue;
        for (const el of [n, ...n.querySelectorAll("audio, video")]) {
          if (el.matches("audio, video")) watchElement(el);
        }
      }
    }
  }).observe(document, { childList: true, subtree: true });

  function b64(int16) {
    const bytes = new Uint8Array(int16.buffer, int16.byteOffset, int16.byteLength);
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }

  window.__tap = {
    ctx,
    labels: () => [...taps.keys()],
    micAsked: () => micAsked,
    /** The context's clock, and the end (s, on it) of tap `name`'s last loud block (-1: none). */
    now: () => ctx.currentTime,
    loudAt: (name) => taps.get(name)?.loudAt ?? -1,
    /** Seconds recorded on tap `name` so far (0 before it exists). */
    seconds: (name) => (taps.get(name)?.chunks.length || 0) * BLOCK / ctx.sampleRate,
    openMic: () => openMic?.(),
    /** One tap: {rate, frame (of the first sample), pcm (base64 s16le, gaps as silence)}. */
    take(name) {
      const entry = taps.get(name);
      if (!entry || !entry.chunks.length) return { rate: ctx.sampleRate, frame: -1, pcm: "" };
      const first = entry.chunks[0].frame;
      const last = entry.chunks[entry.chunks.length - 1];
      const out = new Int16Array(last.frame + last.data.length - first);
      for (const c of entry.chunks) {
        const at = c.frame - first;
        if (at < 0 || at + c.data.length > out.length) continue;
        for (let i = 0; i < c.data.length; i++) out[at + i] = Math.max(-1, Math.min(1, c.data[i])) * 32767;
      }
      return { rate: ctx.sampleRate, frame: first, pcm: b64(out) };
    },
  };
})();
