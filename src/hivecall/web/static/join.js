// The guest page (/join/{code}): a friend opens an invite link, says their name, and joins the
// call's LiveKit room with the guest token the hub mints for that invite (POST /api/join). No
// login; the token lives in this page's memory only.
import { makeApi } from "/static/api.js";
import { CloudRoom } from "/static/cloud.js";
import { mountCloudPanel } from "/static/cloudpanel.js";

const NAME_KEY = "hivecall.guest-name";
const $ = (id) => document.getElementById(id);
const api = makeApi();

const PHASE_LABEL = {
  connecting: "Connecting…", talking: "On the call", reconnecting: "Reconnecting…",
  "join-failed": "Could not join the room", left: "Left", removed: "Removed", "room-ended": "Call ended",
};
const MIC_LABEL = { live: "Mic live", muted: "Muted", "speaker-only": "Speaker-only", off: "Mic off" };
const REFUSED = {
  invite_not_found: "This invite link is not valid. Ask for a new one.",
  invite_expired: "This invite link has expired. Ask for a new one.",
  invite_used: "This invite link was already used. Ask for a new one.",
  call_finished: "This call has already ended.",
};

const code = decodeURIComponent(location.pathname.replace(/^\/join\/?/, "").split("/")[0] || "");
let room = null;
let creds = null;

function screen(name) {
  for (const s of ["name", "room", "done"]) $(`${s}-screen`).hidden = s !== name;
  document.body.dataset.screen = name;
}

async function join(e) {
  e.preventDefault();
  const name = $("guest-name").value.trim();
  if (!name) return;
  $("join-submit").disabled = true;
  $("join-error").textContent = "";
  try {
    const res = await api("/api/join", { method: "POST", body: JSON.stringify({ code, name }) });
    try { localStorage.setItem(NAME_KEY, name); } catch { /* private mode */ }
    creds = res.livekit;
    $("room-title").textContent = res.call?.agent?.name ? `Call with ${res.call.agent.name}` : "In the call";
    await enter();
  } catch (err) {
    $("join-error").textContent = REFUSED[err.code] || err.message;
    $("join-error").dataset.code = err.code || "";
  } finally {
    $("join-submit").disabled = false;
  }
}

async function enter() {
  screen("room");
  if (!room) {
    room = new CloudRoom();
    mountCloudPanel($("room-panel"), room, { showHangUp: false });  // "Leave" is the hang-up
    room.addEventListener("change", render);
  }
  await room.join(creds);
}

function render() {
  const v = room.view;
  $("room-phase").textContent = PHASE_LABEL[v.phase] || v.phase;
  $("room-phase").dataset.phase = v.phase === "join-failed" ? "failed" : v.phase;
  $("room-mic").textContent = MIC_LABEL[v.mic];
  $("room-mic").dataset.mic = v.mic;
  $("room-mute").textContent = v.mic === "muted" ? "Unmute" : "Mute";
  $("room-mute").disabled = !(v.mic === "live" || v.mic === "muted");
  if (!room.finished) return;
  screen("done");
  const ended = v.phase === "room-ended";
  $("done-title").textContent = ended ? "The call has ended"
    : v.phase === "removed" ? "You were removed from the call" : "You left the call";
  $("done-text").textContent = ended || v.phase === "removed" ? "" : "You can join again while your invitation is fresh.";
  $("rejoin").hidden = ended || v.phase === "removed" || !fresh(creds);
}

const fresh = (c) => !!c && (!c.expires_at || new Date(c.expires_at).getTime() > Date.now());

$("join-form").addEventListener("submit", join);
$("room-mute").onclick = () => room?.toggleMute();
$("room-leave").onclick = () => room?.leave();
$("rejoin").onclick = () => enter();

if (!code || code.length > 256) {
  screen("name");
  $("join-form").hidden = true;
  $("join-error").textContent = REFUSED.invite_not_found;
} else {
  try { $("guest-name").value = localStorage.getItem(NAME_KEY) || ""; } catch { /* private mode */ }
  screen("name");
  $("guest-name").focus();
}
document.body.dataset.ready = "1";
