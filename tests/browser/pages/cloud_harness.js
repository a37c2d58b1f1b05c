// The page the cloud call tests drive: the hub's modules, the fake client and a recording fake API.
import { CloudRoom, loadLivekit } from "/static/cloud.js";
import { mountCloudPanel } from "/static/cloudpanel.js";
import { openCallModal } from "/static/callmodal.js";
import "/fake-livekit.js";

window.hc = { CloudRoom, mountCloudPanel, openCallModal, loadLivekit };
window.apiCalls = [];
const agents = [
  { id: "ag_1", name: "coder", status: "ready" },
  { id: "ag_2", name: "reviewer", status: "ready" },
  { id: "ag_3", name: "gone", status: "unavailable" },
];
const refuse = (status, code, message) => Object.assign(new Error(message), { status, code });
const added = new Set();
const routes = {
  "POST /api/calls": (body) => ({ call: { id: "call_1", mode: "cloud", state: "ringing",
    agent: { id: body.agent_id, name: "coder" },
    livekit: { url: "ws://127.0.0.1:9", room: "hivecall-call_1", token: window.TOKEN,
      identity: "human-0001", expires_at: new Date(Date.now() + 900e3).toISOString() } } }),
  "GET /api/agents": () => ({ agents }),
  "POST /api/calls/call_1/invites": () => ({ invite: { id: "inv_1", code: "Zm9vYmFyYmF6cXV4",
    url: "http://127.0.0.1:8000/join/Zm9vYmFyYmF6cXV4", max_uses: 1, uses: 0,
    expires_at: new Date(Date.now() + 3600e3).toISOString() } }),
  "POST /api/calls/call_1/agents": (body) => {
    if (added.has(body.agent_id)) throw refuse(409, "agent_in_call", "that agent is already in this call");
    added.add(body.agent_id);
    const a = agents.find((x) => x.id === body.agent_id);
    return { agent: { id: a.id, name: a.name, voice: "cedar" }, dispatch_id: "AD_1" };
  },
  "POST /api/calls/call_1/end": () => ({ call: { id: "call_1", state: "ended" } }),
};
window.fakeApi = async (path, init = {}) => {
  const method = init.method || "GET";
  const body = init.body ? JSON.parse(init.body) : null;
  window.apiCalls.push({ method, path, body });
  const fail = window.failNext;  // {status, code, message}: the next request is refused
  window.failNext = null;
  if (fail) throw refuse(fail.status, fail.code, fail.message);
  if (method === "DELETE" && path.startsWith("/api/calls/call_1/participants/"))
    return { removed: decodeURIComponent(path.split("/").pop()) };
  const route = routes[`${method} ${path}`];
  if (!route) throw refuse(404, "not_found", `no route ${method} ${path}`);
  return route(body);
};
window.fakeApi.authHeaders = () => ({});
document.body.dataset.ready = "1";
