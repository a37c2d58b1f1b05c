// The call modal: live phase, the latest response's caption, the user's last words,
// "working on it" while a tool turn runs, the agent's work (turnlist.js: each turn's progress
// lines, elapsed time and a Stop button, kept after it ends), mic state, mute, end and a timer.
// A cloud call adds the room panel (cloudpanel.js): participants, who is speaking, captions,
// invite, add agent. A failed call says why in plain words and offers Retry: a new call to the
// same agent in the same mode, in the same modal.
import { Call } from "/static/call.js";
import { mountCloudPanel } from "/static/cloudpanel.js";
import { TurnList } from "/static/turnlist.js";

const PHASE_LABEL = {
  ringing: "Ringing…", connecting: "Connecting…", talking: "On the call",
  ended: "Call ended", failed: "Call failed",
  reconnecting: "Reconnecting…", "join-failed": "Could not join the room",
};
const MIC_LABEL = { live: "Mic live", muted: "Muted", "speaker-only": "Speaker-only", off: "Mic off" };

// Why a call failed, for a person; `peer` names the other end of the audio.
const REASON = {
  call_unanswered: () => "The call never connected, so the hub gave up on it. Try again; if it keeps " +
    "happening, restart the hub.",
  media_failed: (peer) => `The audio connection to ${peer} could not be set up. A firewall, VPN or ` +
    "network that blocks WebRTC (UDP) traffic does this.",
  media_lost: (peer) => `The audio connection to ${peer} dropped and did not come back. Check this ` +
    "device's network, then try again.",
  hub_restarted: () => "The hub restarted during the call.",
  hub_unreachable: () => "The hub did not answer: is it running, and is this device on its network?",
};

/** What to tell a person about `error` ({code, message}) on a call in `mode`. */
export function reasonFor(error, mode) {
  const peer = mode === "byok" ? "OpenAI's voice service" : "your hub";
  const words = REASON[error?.code];
  if (words) return words(peer);
  return error?.message || "The call failed.";  // the hub's own words
}

const TEMPLATE = `
  <div class="call-card">
    <h2 id="call-title"></h2>
    <p class="row"><span id="call-phase" class="pill" role="status"></span>
      <span id="call-mic" class="pill"></span><span id="call-timer" class="muted">0:00</span></p>
    <p id="call-caption" class="caption" aria-live="polite"></p>
    <p id="call-working" class="working" hidden>Working on it…</p>
    <p id="call-user" class="muted"></p>
    <div id="call-turns" class="call-turns" role="region" aria-label="The agent's work" aria-live="polite" hidden></div>
    <div id="call-cloud" hidden></div>
    <p id="call-error" class="error" role="alert" hidden></p>
    <p class="row"><button id="call-mute" type="button">Mute</button>
      <button id="call-retry" type="button" class="call" hidden>Retry</button>
      <button id="call-end" type="button" class="danger">End call</button>
      <button id="call-close" type="button" hidden>Close</button></p>
    <audio id="call-audio" autoplay></audio>
  </div>`;

/**
 * Open the modal and start a call. `onCall(call)` hears of each call it starts (the first and
 * every retry); `onClose(call)` of the last one when the modal closes. Returns the first call.
 */
export function openCallModal({ api, agent, mode, onClose, onCall }) {
  let dialog = document.getElementById("call-modal");
  if (!dialog) {
    dialog = document.createElement("dialog");
    dialog.id = "call-modal";
    document.body.appendChild(dialog);
  }
  let shown = null;
  const begin = (callMode) => {
    shown?.stop();
    shown = showCall(dialog, { api, agent, mode: callMode, retry });
    onCall?.(shown.call);
  };
  const retry = () => {
    begin(shown.call.chosenMode);
    dialog.querySelector("#call-end").focus();  // the Retry button that had it is gone
    shown.call.start();
  };
  dialog.onclose = () => {
    shown.stop();
    onClose?.(shown.call);
  };
  dialog.oncancel = (e) => { if (!shown.call.finished) e.preventDefault(); };
  begin(mode);
  dialog.showModal();
  shown.call.start();
  return shown.call;
}

// One call in the modal: its markup, its renders and its clocks. `stop()` ends the call (a
// no-op once it is over) and lets go of everything, for the modal closing or a retry.
function showCall(dialog, { api, agent, mode, retry }) {
  dialog.innerHTML = TEMPLATE;
  const $ = (id) => dialog.querySelector(`#${id}`);
  const call = new Call({ api, agent, mode, audio: $("call-audio") });
  let timer = null;
  let panel = null;
  let wasFinished = false;
  const work = new TurnList($("call-turns"), { onStop: (id) => call.stopTurn(id) });
  dialog.classList.remove("cloud");

  const render = () => {
    const v = call.view;
    if (call.cloud && !panel) {
      panel = mountCloudPanel($("call-cloud"), call.cloud, { api, callId: call.record.id, manage: true, showHangUp: false });
      $("call-cloud").hidden = false;
      dialog.classList.add("cloud");
    }
    $("call-title").textContent = v.phase === "ringing" ? `Calling ${agent.name}` : agent.name;
    $("call-phase").textContent = PHASE_LABEL[v.phase];
    $("call-phase").dataset.phase = v.phase;
    $("call-mic").textContent = MIC_LABEL[v.mic];
    $("call-mic").dataset.mic = v.mic;
    $("call-caption").textContent = v.caption;
    $("call-caption").hidden = v.cloud;  // the room panel shows every speaker's captions
    $("call-working").hidden = !v.working || call.finished;
    $("call-user").textContent = v.userLine && !v.cloud ? `You: ${v.userLine}` : "";
    renderError(v);
    $("call-mute").textContent = v.mic === "muted" ? "Unmute" : "Mute";
    $("call-mute").disabled = !(v.mic === "live" || v.mic === "muted") || call.finished;
    $("call-end").hidden = call.finished;
    $("call-close").hidden = !call.finished;
    $("call-retry").hidden = v.phase !== "failed";
    if (call.finished && !wasFinished) {
      wasFinished = true;  // End call just went away: keep the focus in the dialog
      ($("call-retry").hidden ? $("call-close") : $("call-retry")).focus();
    }
    work.render(v.turns);
    // The clocks move while the call is up, and after it while the agent still works.
    const moving = (v.talkingSince && !call.finished) || v.turns.some((t) => t.status === "running");
    if (moving && !timer) timer = setInterval(tick, 1000);
    if (!moving && timer) { clearInterval(timer); timer = null; }
    tick();
  };
  // A failed call says why in words; a mid-call problem shows the service's own message.
  const renderError = (v) => {
    const box = $("call-error");
    box.hidden = !v.error || v.cloud;  // the room panel says what went wrong
    box.textContent = !v.error ? "" : v.phase === "failed" ? reasonFor(v.error, call.chosenMode) : v.error.message;
    box.dataset.code = v.error?.code || "";
  };
  const tick = () => {
    const v = call.view;
    work.tick(v.turns);
    if (!v.talkingSince || (call.finished && $("call-timer").dataset.stopped)) return;
    const s = Math.floor((Date.now() - v.talkingSince) / 1000);
    $("call-timer").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
    if (call.finished) $("call-timer").dataset.stopped = "1";
  };

  call.addEventListener("change", render);
  $("call-mute").onclick = () => call.toggleMute();
  $("call-end").onclick = () => call.end();
  $("call-close").onclick = () => dialog.close();
  $("call-retry").onclick = retry;
  render();
  const stop = () => {
    call.removeEventListener("change", render);
    call.end();
    call.dispose();
    panel?.unmount();
    if (timer) clearInterval(timer);
  };
  return { call, stop };
}
