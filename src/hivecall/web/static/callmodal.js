// The call modal: live phase, the latest response's caption, the user's last words,
// "working on it" while a tool turn runs, the agent's work (turnlist.js: each turn's progress
// lines, elapsed time and a Stop button, kept after it ends), mic state, mute, end and a timer.
// A cloud call adds the room panel (cloud.js): participants, who is speaking, captions, invite,
// add agent.
import { Call } from "/static/call.js";
import { mountCloudPanel } from "/static/cloud.js";
import { TurnList } from "/static/turnlist.js";

const PHASE_LABEL = {
  ringing: "Ringing…", connecting: "Connecting…", talking: "On the call",
  ended: "Call ended", failed: "Call failed",
  reconnecting: "Reconnecting…", "join-failed": "Could not join the room",
};
const MIC_LABEL = { live: "Mic live", muted: "Muted", "speaker-only": "Speaker-only", off: "Mic off" };

const TEMPLATE = `
  <div class="call-card">
    <h2 id="call-title"></h2>
    <p class="row"><span id="call-phase" class="pill"></span>
      <span id="call-mic" class="pill"></span><span id="call-timer" class="muted">0:00</span></p>
    <p id="call-caption" class="caption" aria-live="polite"></p>
    <p id="call-working" class="working" hidden>Working on it…</p>
    <p id="call-user" class="muted"></p>
    <div id="call-turns" class="call-turns" role="region" aria-label="The agent's work" aria-live="polite" hidden></div>
    <div id="call-cloud" hidden></div>
    <p id="call-error" class="error" role="alert" hidden></p>
    <p class="row"><button id="call-mute" type="button">Mute</button>
      <button id="call-end" type="button" class="danger">End call</button>
      <button id="call-close" type="button" hidden>Close</button></p>
    <audio id="call-audio" autoplay></audio>
  </div>`;

export function openCallModal({ api, agent, mode, onClose }) {
  let dialog = document.getElementById("call-modal");
  if (!dialog) {
    dialog = document.createElement("dialog");
    dialog.id = "call-modal";
    document.body.appendChild(dialog);
  }
  dialog.innerHTML = TEMPLATE;
  const $ = (id) => dialog.querySelector(`#${id}`);
  const call = new Call({ api, agent, mode, audio: $("call-audio") });
  let timer = null;
  let panel = null;
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
    $("call-error").hidden = !v.error || v.cloud;  // the room panel says what went wrong
    $("call-error").textContent = v.error ? v.error.message : "";
    $("call-mute").textContent = v.mic === "muted" ? "Unmute" : "Mute";
    $("call-mute").disabled = !(v.mic === "live" || v.mic === "muted") || call.finished;
    $("call-end").hidden = call.finished;
    $("call-close").hidden = !call.finished;
    work.render(v.turns);
    // The clocks move while the call is up, and after it while the agent still works.
    const moving = (v.talkingSince && !call.finished) || v.turns.some((t) => t.status === "running");
    if (moving && !timer) timer = setInterval(tick, 1000);
    if (!moving && timer) { clearInterval(timer); timer = null; }
    tick();
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
  dialog.onclose = () => {
    call.end();
    call.dispose();
    panel?.unmount();
    if (timer) clearInterval(timer);
    onClose?.(call);
  };
  dialog.oncancel = (e) => { if (!call.finished) e.preventDefault(); };
  dialog.showModal();
  render();
  call.start();
  return call;
}
