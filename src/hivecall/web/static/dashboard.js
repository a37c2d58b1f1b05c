// The dashboard: agents with a Call button, the call modal, call history, settings, text turns.
import { makeApi } from "/static/api.js";
import { openCallModal } from "/static/callmodal.js";
import { setupPhonePanel } from "/static/phone.js";
import { progressList, statusLabel } from "/static/turnlist.js";
import { clock } from "/static/turns.js";

const $ = (id) => document.getElementById(id);
const api = makeApi();
const loadDevices = setupPhonePanel(api);
let agents = [];
let roomCalls = false;  // cloud calls are available but not the default: offer a "Room" button

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(c ?? ""))));
  return node;
}

function row(cells) {
  return el("tr", {}, ...cells.map((c) => (c instanceof Node && c.tagName === "TD" ? c : el("td", {}, c))));
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "");
const length = (s) => (s == null ? "—" : `${Math.floor(s / 60)}:${String(Math.round(s % 60)).padStart(2, "0")}`);

// -- agents and calls --------------------------------------------------------------------

async function loadAgents() {
  ({ agents } = await api("/api/agents"));
  renderAgents();
  $("ask-agent").replaceChildren(...agents.map((a) => el("option", { value: a.id, textContent: a.name })));
}

function renderAgents() {
  const onClose = () => { loadCalls(); loadAgents().then(loadTurns); };
  $("agents").replaceChildren(...agents.map((a) => {
    const call = el("button", { type: "button", className: "call", textContent: "Call" });
    call.dataset.agent = a.name;
    call.disabled = a.status === "unavailable";
    call.onclick = () => openCallModal({ api, agent: a, onClose });
    const cell = el("td", {}, call);
    if (roomCalls) {
      const room = el("button", { type: "button", className: "call room", textContent: "Room",
        title: "A cloud call: a LiveKit room you can invite people and more agents to" });
      room.dataset.agent = a.name;
      room.dataset.mode = "cloud";
      room.disabled = call.disabled;
      room.onclick = () => openCallModal({ api, agent: a, mode: "cloud", onClose });
      cell.append(" ", room);
    }
    return row([a.name, a.preset || a.runtime, a.machine, a.workspace || "—",
      el("td", { className: `status-${a.status}` }, a.status), cell]);
  }));
}

const MODE_NAMES = {
  byok: "your OpenAI key (BYOK)",
  local: "speech on this machine (local: no key needed)",
  cloud: "LiveKit rooms (cloud)",
};

async function loadModes() {
  const { default: mode, modes } = await api("/api/calls/modes");
  const chosen = modes.find((m) => m.mode === mode);
  $("call-mode-note").textContent = chosen.available
    ? `Calls use ${MODE_NAMES[mode] || mode}.`
    : `Calls cannot start yet: ${chosen.reason}.`;
  $("call-mode-note").className = chosen.available ? "muted" : "error";
  const cloud = mode !== "cloud" && modes.some((m) => m.mode === "cloud" && m.available);
  if (cloud !== roomCalls) { roomCalls = cloud; renderAgents(); }
}

async function loadCalls() {
  const { calls } = await api("/api/calls?limit=20");
  $("calls").replaceChildren(...calls.map((c) => {
    const tr = row([when(c.created_at), c.agent.name, c.mode,
      el("td", { className: `state-${c.state}`, title: c.error?.message || "" }, c.state),
      length(c.duration_s), c.started_by]);
    tr.className = "clickable";
    tr.onclick = () => showCall(c.id);
    return tr;
  }));
}

async function showCall(id) {
  const { call, lines, turns } = await api(`/api/calls/${id}`);
  $("call-detail-title").textContent = `${call.agent.name} · ${when(call.created_at)} · ${call.state}`;
  const who = { user: "You", agent: call.agent.name, tool: "→ agent", error: "error", phase: "·" };
  const turnOf = new Map((turns || []).map((t) => [t.id, t]));
  $("call-lines").replaceChildren(...lines.map((l) => {  // cloud calls name each line's speaker
    const item = el("li", { className: `line-${l.kind}` }, el("b", {}, `${l.speaker || who[l.kind] || l.kind}: `), l.text);
    const turn = l.kind === "tool" && turnOf.get(l.turn_id);
    if (turn) item.append(turnSummary(turn));
    return item;
  }));
  $("call-detail").hidden = false;
}

// A tool line's turn in the history: how it ended, how long it ran, what it reported meanwhile.
function turnSummary(t) {
  const box = el("div", { className: "line-turn" }, el("span", { className: `state-${t.status}` },
    ` ${statusLabel(t)}`), t.duration_ms != null ? ` · ${clock(t.duration_ms)}` : "");
  box.dataset.turnId = t.id;
  if (t.progress?.length) box.append(progressList(t.progress));
  return box;
}

// -- settings ----------------------------------------------------------------------------

let settings = {};

async function loadSettings() {
  const body = await api("/api/settings");
  settings = Object.fromEntries(body.settings.map((s) => [s.name, s]));
  const key = settings.openai_api_key;
  $("key-state").textContent = key.value
    ? `A key is set (${key.source === "environment" ? "by the environment; change it there" : "saved on this hub"}).`
    : "No key yet: paste yours to make BYOK calls.";
  for (const [id, name] of [["set-model", "realtime_model"], ["set-voice", "realtime_voice"], ["set-mode", "default_call_mode"]]) {
    $(id).value = settings[name].value;
    $(id).disabled = settings[name].source === "environment";
    $(id).title = $(id).disabled ? `set by ${settings[name].env[0]}` : "";
  }
  $("set-key").disabled = $("key-remove").disabled = key.source === "environment";
  $("key-remove").hidden = !key.value;
}

async function saveSettings(e) {
  e.preventDefault();
  const patch = {};
  const key = $("set-key").value.trim();
  if (key) patch.openai_api_key = key;
  for (const [id, name] of [["set-model", "realtime_model"], ["set-voice", "realtime_voice"], ["set-mode", "default_call_mode"]]) {
    if (!$(id).disabled && $(id).value !== settings[name].value) patch[name] = $(id).value;
  }
  await settingsChange(patch, "Saved.");
}

async function settingsChange(patch, done) {
  try {
    if (Object.keys(patch).length) await api("/api/settings", { method: "PATCH", body: JSON.stringify(patch) });
    $("set-key").value = "";
    $("settings-result").className = "muted";
    $("settings-result").textContent = done;
    await Promise.all([loadSettings(), loadModes()]);
  } catch (err) {
    $("settings-result").className = "error";
    $("settings-result").textContent = err.message;
  }
}

async function testKey() {
  const key = $("set-key").value.trim();
  $("key-result").className = "muted";
  $("key-result").textContent = "Testing…";
  try {
    const res = await api("/api/settings/openai-key/test", { method: "POST",
      body: JSON.stringify(key ? { openai_api_key: key } : {}) });
    $("key-result").textContent = `The key works with ${res.model}.`;
  } catch (err) {
    $("key-result").className = "error";
    $("key-result").textContent = err.message;
  }
}

// -- text turns --------------------------------------------------------------------------

async function loadTurns() {
  const names = Object.fromEntries(agents.map((a) => [a.id, a.name]));
  const { turns } = await api("/api/turns?limit=20");
  $("turns").replaceChildren(...turns.map((t) => row([
    new Date(t.queued_at).toLocaleTimeString(), names[t.agent_id] || t.agent_id,
    t.message, t.spoken || "", el("td", { className: `state-${t.status}` }, t.status)])));
}

async function ask(e) {
  e.preventDefault();
  const message = $("ask-message").value.trim();
  if (!message) return;
  $("ask-send").disabled = true;
  $("ask-answer").className = "answer muted";
  $("ask-answer").textContent = "working on it…";
  try {
    const res = await api("/api/phone", { method: "POST",
      body: JSON.stringify({ agent_id: $("ask-agent").value, message }) });
    $("ask-answer").className = res.ok ? "answer" : "answer error";
    $("ask-answer").textContent = res.text;
    await loadTurns();
  } catch (err) {
    $("ask-answer").className = "answer error";
    $("ask-answer").textContent = err.message;
  } finally {
    $("ask-send").disabled = false;
  }
}

// -- start -------------------------------------------------------------------------------

async function start() {
  try {
    const health = await api("/api/health");
    $("hub-state").textContent = `v${health.version} · ${health.database}`;
    await loadAgents();
    await Promise.all([loadModes(), loadCalls(), loadSettings(), loadTurns(), loadDevices()]);
    for (const id of ["nav", "agents-panel", "calls-panel", "phone-panel", "settings-panel", "ask-panel", "turns-panel"]) $(id).hidden = false;
    document.body.dataset.ready = "1";
  } catch (err) {
    if (err.status === 401) $("signin").hidden = false;
    else $("hub-state").textContent = `error: ${err.message}`;
  }
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  location.href = `/?token=${encodeURIComponent($("token").value.trim())}`;
});
$("ask-form").addEventListener("submit", ask);
$("settings-form").addEventListener("submit", saveSettings);
$("key-test").onclick = testKey;
$("key-remove").onclick = () => settingsChange({ openai_api_key: null }, "Key removed.");
$("logout").onclick = async () => { await api("/api/logout", { method: "POST" }).catch(() => {}); location.reload(); };

start();
