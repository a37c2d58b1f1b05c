// The mobile web app: pair with a code (typed, or from the QR link /m#pair=CODE), then list
// the hub's agents and call one with the same call modal as the dashboard. The device token
// and the hub it paired with live in this phone's localStorage; a 401 (the owner revoked the
// phone) forgets them and goes back to the pairing screen.
//
// Like an app: a service worker (sw.js) keeps the shell, so with the hub down the app still
// opens and says it cannot reach the hub, with a button to try again; the screen stays on
// while a call is live (wakelock.js).
import { makeApi } from "/static/api.js";
import { openCallModal } from "/static/callmodal.js";
import { ScreenAwake } from "/static/m/wakelock.js";

const STORE_KEY = "hivecall.device";
const REFRESH_MS = 20000;
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(c ?? ""))));
  return node;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "");
const length = (s) => (s == null ? "" : `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`);

// -- what this phone remembers ---------------------------------------------------------------

function remembered() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    return saved && saved.token ? saved : null;
  } catch {
    return null;
  }
}

const remember = (pairing) => localStorage.setItem(STORE_KEY, JSON.stringify(pairing));
const forget = () => localStorage.removeItem(STORE_KEY);

let pairing = remembered();
let api = null;
let inCall = false;
let agents = [];
let roomCalls = false;  // cloud calls are available but not the default: offer a "Room" button
const awake = new ScreenAwake();

// Requests with the device token; a 401 means the hub no longer knows this phone.
function deviceApi(token) {
  const base = makeApi(token);
  const api = async (path, options) => {
    try {
      return await base(path, options);
    } catch (err) {
      if (err.status === 401) unpaired();
      throw err;
    }
  };
  api.authHeaders = base.authHeaders;
  return api;
}

function unpaired() {
  if (!pairing) return;
  forget();
  pairing = null;
  api = null;
  showPairing("This phone is no longer paired with the hub (the owner revoked it, or the hub " +
    "was reset). Ask for a new pairing code to connect again.");
}

// -- screens ---------------------------------------------------------------------------------

function screen(name) {
  $("pair-screen").hidden = name !== "pair";
  $("home-screen").hidden = name !== "home";
  document.body.dataset.screen = name;
  $("whoami").textContent = pairing ? pairing.device.name : "";
}

function showPairing(notice, code) {
  screen("pair");
  $("pair-notice").hidden = !notice;
  $("pair-notice").textContent = notice || "";
  $("pair-error").textContent = "";
  if (code) $("pair-code").value = /^[0-9A-Z]{8}$/i.test(code) ? `${code.slice(0, 4)}-${code.slice(4)}` : code;
  if (!$("pair-name").value) $("pair-name").value = defaultName();
  (code ? $("pair-name") : $("pair-code")).focus();
}

function defaultName() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return "iPhone";
  if (/iPad/.test(ua)) return "iPad";
  const model = ua.match(/Android [\d.]+; ([^;)]+?)(?: Build[^;)]*)?\)/);
  if (model && model[1].trim().length > 1) return model[1].trim();  // reduced UAs say "K"
  if (/Android/.test(ua)) return "Android phone";
  return "Phone";
}

async function pair(e) {
  e.preventDefault();
  const code = $("pair-code").value.trim();
  const name = $("pair-name").value.trim() || defaultName();
  if (!code) return;
  $("pair-submit").disabled = true;
  $("pair-error").textContent = "";
  try {
    const res = await makeApi()("/api/pairing/claim", { method: "POST",
      body: JSON.stringify({ code, device_name: name }) });
    pairing = { token: res.token, device: res.device, hub: res.hub.url, paired_at: res.device.paired_at };
    remember(pairing);
    $("pair-code").value = "";
    await showHome();
  } catch (err) {
    $("pair-error").textContent = err.status ? err.message : unreachableText(location.origin);
    $("pair-error").dataset.code = err.code || (err.status ? "" : "hub_unreachable");
  } finally {
    $("pair-submit").disabled = false;
  }
}

// -- agents and calls ------------------------------------------------------------------------

async function showHome() {
  api = deviceApi(pairing.token);
  screen("home");
  $("paired-with").textContent = `Paired as ${pairing.device.name} with ${pairing.hub}.`;
  await refresh();
}

async function refresh() {
  if (!api) return;
  $("unreachable-retry").disabled = true;
  try {
    await Promise.all([loadAgents(), loadModes(), loadCalls()]);
    reachable(true);
    document.body.dataset.ready = "1";
  } catch (err) {
    if (!err.status) reachable(false);  // no answer at all (an answer has a status)
    else if (err.status !== 401) $("mode-note").textContent = `The hub answered with an error: ${err.message}`;
  } finally {
    $("unreachable-retry").disabled = false;
  }
}

// Whether the hub answered; when it did not, the app says so and how to fix it.
function reachable(yes) {
  document.body.dataset.hub = yes ? "reachable" : "unreachable";
  $("unreachable").hidden = yes;
  $("unreachable-text").textContent = yes ? "" : unreachableText(pairing?.hub || location.origin);
}

function unreachableText(hub) {
  return `Can't reach your hub at ${hub}: is it running and is this phone on the same network?`;
}

async function loadAgents() {
  ({ agents } = await api("/api/agents"));
  renderAgents();
}

function renderAgents() {
  $("agents").replaceChildren(...agents.map((a) => {
    const call = el("button", { type: "button", className: "call big", textContent: "Call" });
    call.dataset.agent = a.name;
    call.disabled = a.status === "unavailable";
    call.onclick = () => startCall(a);
    const buttons = [call];
    if (roomCalls) {
      const room = el("button", { type: "button", className: "call room big", textContent: "Room" });
      room.dataset.agent = a.name;
      room.dataset.mode = "cloud";
      room.disabled = call.disabled;
      room.onclick = () => startCall(a, "cloud");
      buttons.push(room);
    }
    return el("li", { className: "card" },
      el("div", { className: "who" },
        el("strong", {}, a.name),
        el("span", { className: "muted" }, [a.machine, a.preset || a.runtime].filter(Boolean).join(" · ")),
        el("span", { className: `status status-${a.status}` }, a.status)),
      ...buttons);
  }));
  if (!agents.length) $("agents").replaceChildren(el("li", { className: "muted" }, "The hub has no agents yet."));
}

async function loadModes() {
  const { default: mode, modes } = await api("/api/calls/modes");
  const chosen = modes.find((m) => m.mode === mode);
  $("mode-note").className = chosen?.available ? "muted" : "error";
  $("mode-note").textContent = chosen?.available ? "" : `Calls cannot start yet: ${chosen?.reason}.`;
  const cloud = mode !== "cloud" && modes.some((m) => m.mode === "cloud" && m.available);
  if (cloud !== roomCalls) { roomCalls = cloud; renderAgents(); }
}

async function loadCalls() {
  const { calls } = await api("/api/calls?limit=10");
  $("calls").replaceChildren(...calls.map((c) => el("li", {},
    el("span", {}, c.agent.name),
    el("span", { className: `state-${c.state}`, title: c.error?.message || "" }, c.state),
    el("span", { className: "muted" }, `${when(c.created_at)} ${length(c.duration_s)}`.trim()))));
  if (!calls.length) $("calls").replaceChildren(el("li", { className: "muted" }, "No calls yet."));
}

function startCall(agent, mode) {
  inCall = true;
  openCallModal({ api, agent, mode, onCall: (call) => awake.follow(call),
    onClose: () => { inCall = false; refresh(); } });
}

// -- start -----------------------------------------------------------------------------------

function codeFromLink() {
  const match = location.hash.match(/(?:^#|&)pair=([^&]+)/);
  if (!match) return null;
  history.replaceState(null, "", location.pathname);  // the code leaves the address bar
  return decodeURIComponent(match[1]);
}

// The shell, kept for when the hub is unreachable. Without a service worker (no secure
// context, an old browser) the app works the same, online only.
function keepShell() {
  if (!window.isSecureContext || !("serviceWorker" in navigator)) return;
  navigator.serviceWorker.register("/m/sw.js", { scope: "/m" }).catch(() => {});
}

$("pair-form").addEventListener("submit", pair);
$("refresh").onclick = refresh;
$("unreachable-retry").onclick = refresh;
$("forget").onclick = () => {
  if (!confirm("Forget this hub? You will need a new pairing code to connect again.")) return;
  forget();
  pairing = null;
  api = null;
  showPairing();
};
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && !inCall) refresh();
});
setInterval(() => { if (document.visibilityState === "visible" && !inCall) refresh(); }, REFRESH_MS);
$("insecure").hidden = window.isSecureContext;
keepShell();

const linked = codeFromLink();
if (linked) {
  showPairing(pairing ? `This phone is paired as ${pairing.device.name}; pairing again replaces that.` : "",
    linked);
} else if (pairing) {
  showHome();
} else {
  showPairing();
}
