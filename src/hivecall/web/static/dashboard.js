// The dashboard shell: agents, a text turn through the bridge, recent turns.
const $ = (id) => document.getElementById(id);
const text = (value) => document.createTextNode(value ?? "");
let agentNames = {};

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options,
    headers: { "content-type": "application/json", ...(options.headers || {}) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.error?.message || res.statusText), { status: res.status, code: body.error?.code });
  return body;
}

function row(cells, className) {
  const tr = document.createElement("tr");
  cells.forEach((value, i) => {
    const td = document.createElement("td");
    td.appendChild(text(value));
    if (className && i === cells.length - 1) td.className = className;
    tr.appendChild(td);
  });
  return tr;
}

async function loadAgents() {
  const { agents } = await api("/api/agents");
  agentNames = Object.fromEntries(agents.map((a) => [a.id, a.name]));
  $("agents").replaceChildren(...agents.map((a) =>
    row([a.name, a.preset || a.runtime, a.machine, a.workspace || "—", a.status], `status-${a.status}`)));
  $("ask-agent").replaceChildren(...agents.map((a) => {
    const o = document.createElement("option"); o.value = a.id; o.textContent = a.name; return o; }));
}

async function loadTurns() {
  const { turns } = await api("/api/turns?limit=20");
  $("turns").replaceChildren(...turns.map((t) => row([
    new Date(t.queued_at).toLocaleTimeString(), agentNames[t.agent_id] || t.agent_id,
    t.message, t.spoken || "", t.status])));
}

async function start() {
  try {
    const health = await api("/api/health");
    $("hub-state").textContent = `v${health.version} · ${health.database}`;
    await loadAgents();
    await loadTurns();
    for (const id of ["agents-panel", "ask-panel", "turns-panel"]) $(id).hidden = false;
  } catch (err) {
    if (err.status === 401) $("signin").hidden = false;
    else $("hub-state").textContent = `error: ${err.message}`;
  }
}

$("signin-form").addEventListener("submit", (e) => {
  e.preventDefault();
  location.href = `/?token=${encodeURIComponent($("token").value.trim())}`;
});

$("ask-form").addEventListener("submit", async (e) => {
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
});

start();
