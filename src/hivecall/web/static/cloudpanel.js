// The cloud call's room panel: draws a CloudRoom's view (cloud.js) into the page and wires its
// buttons: retry or hang up after a failed join, play blocked audio, and the owner's controls
// (remove a participant, invite a friend, add an agent). The call modal and the guest page
// (join.js) mount it; it reads the room only through `room.view` and its "change" event.

const PANEL = `
  <div class="cloud-status" data-role="status" role="status" hidden>
    <p class="error" data-role="status-text"></p>
    <p class="muted small" data-role="status-detail"></p>
    <p class="row"><button type="button" data-role="retry">Retry</button>
      <button type="button" class="danger" data-role="hang-up">Hang up</button></p>
  </div>
  <p data-role="audio-blocked" hidden><button type="button" data-role="start-audio">Play the call's audio</button></p>
  <div class="cloud-grid">
    <div class="cloud-people">
      <h3>In the call</h3>
      <ul class="participants" data-role="participants"></ul>
    </div>
    <div class="cloud-talk">
      <h3>Captions</h3>
      <ol class="captions" data-role="captions" aria-live="polite"></ol>
    </div>
  </div>
  <div class="cloud-manage" data-role="manage" hidden>
    <p class="row"><button type="button" data-role="invite">Invite a friend</button>
      <select data-role="agent-pick" aria-label="Agent to add"></select>
      <button type="button" data-role="add-agent">Add agent</button></p>
    <div class="invite" data-role="invite-box" hidden>
      <p class="row"><input data-role="invite-url" readonly size="34" aria-label="Invite link">
        <button type="button" data-role="copy">Copy</button></p>
      <p class="muted small" data-role="invite-note"></p>
    </div>
    <p class="error" data-role="manage-error" role="alert" hidden></p>
  </div>`;

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(c ?? ""))));
  return node;
}

/** One person or agent in the room; `onRemove` (the owner's) adds a Remove button. */
function participantItem(p, { onRemove, removing } = {}) {
  const li = el("li", { className: "participant" },
    el("span", { className: "speaking-dot", title: p.speaking ? "speaking" : "" }),
    el("span", { className: "who" }, p.name),
    el("span", { className: `kind kind-${p.kind}` }, p.kind === "agent" ? "agent" : p.local ? "you" : "person"),
    el("span", { className: "agent-state muted" }, p.kind === "agent" && p.state === "thinking" ? "thinking…" : ""));
  li.dataset.identity = p.identity;
  li.dataset.kind = p.kind;
  li.dataset.speaking = p.speaking ? "1" : "0";
  if (p.agentId) li.dataset.agent = p.agentId;
  if (onRemove) {
    const rm = el("button", { type: "button", className: "danger remove", textContent: "Remove" });
    rm.dataset.identity = p.identity;
    rm.disabled = !!removing;
    rm.onclick = onRemove;
    li.append(rm);
  }
  return li;
}

/** An agent the hub dispatched that is not in the room yet. */
function pendingItem(a) {
  const li = el("li", { className: "participant pending" }, el("span", { className: "speaking-dot" }),
    el("span", { className: "who" }, a.name), el("span", { className: "kind kind-agent" }, "joining…"));
  li.dataset.kind = "agent";
  li.dataset.agent = a.agentId;
  li.dataset.pending = "1";
  return li;
}

function captionItem(c) {
  const li = el("li", { className: `caption-line kind-${c.kind}` }, el("b", {}, `${c.local ? "You" : c.name}: `), c.text);
  li.dataset.kind = c.kind;
  li.dataset.final = c.final ? "1" : "0";
  li.dataset.identity = c.identity || "";
  return li;
}

function inviteNote(inv) {
  const uses = inv.max_uses === 1 ? "Works once" : `Works ${inv.max_uses} times`;
  const time = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const until = inv.expires_at ? `, until ${time(inv.expires_at)}` : "";
  return `${uses}${until}. Send it to the person you want in the call.`;
}

class CloudPanel {
  constructor(container, room, { api, callId, manage, onHangUp, showHangUp }) {
    this.container = container;
    this.room = room;
    this.api = api;
    this.manage = manage;
    this.showHangUp = showHangUp;
    this.base = `/api/calls/${encodeURIComponent(callId)}`;
    this.agents = [];             // the hub's agents, for "Add agent"
    this.removing = new Set();    // identities whose removal is under way
    this.adding = false;
    this.render = this.render.bind(this);
    container.classList.add("cloud-panel");
    container.innerHTML = PANEL;
    this.wire(onHangUp);
  }

  $(role) { return this.container.querySelector(`[data-role="${role}"]`); }

  wire(onHangUp) {
    const room = this.room;
    this.$("retry").onclick = () => { this.$("retry").disabled = true; room.retry(); };
    this.$("hang-up").onclick = () => (onHangUp ? onHangUp() : room.leave());
    this.$("start-audio").onclick = () => room.startAudio();
    this.$("invite").onclick = () => this.invite();
    this.$("copy").onclick = () => this.copy();
    this.$("add-agent").onclick = () => this.addAgent();
  }

  mount() {
    this.room.addEventListener("change", this.render);
    if (this.manage && this.api) {
      this.api("/api/agents").then((res) => { this.agents = res.agents || []; this.render(); }).catch(() => {});
    }
    this.render();
  }

  unmount() { this.room.removeEventListener("change", this.render); }

  // -- drawing ------------------------------------------------------------------------------

  render() {
    const v = this.room.view;
    this.container.dataset.phase = v.phase;
    this.renderStatus(v);
    this.$("participants").replaceChildren(...v.participants.map((p) => this.participant(p)), ...v.pending.map(pendingItem));
    this.$("captions").replaceChildren(...v.captions.map(captionItem));
    this.renderManage(v);
  }

  renderStatus(v) {
    const failed = v.phase === "join-failed" || v.phase === "removed";
    this.$("status").hidden = !(failed || v.phase === "room-ended");
    this.$("status-text").textContent = v.phase === "room-ended" ? "The call has ended." : v.error?.message || "";
    this.$("status-detail").textContent = v.error?.detail || "";
    this.$("status-detail").hidden = !v.error?.detail;
    this.$("retry").hidden = v.phase !== "join-failed";
    this.$("retry").disabled = false;
    this.$("hang-up").hidden = !this.showHangUp || v.phase !== "join-failed";
    this.$("audio-blocked").hidden = !v.audioBlocked || this.room.finished;
  }

  participant(p) {
    if (!this.manage || p.local) return participantItem(p);
    return participantItem(p, { onRemove: () => this.remove(p), removing: this.removing.has(p.identity) });
  }

  renderManage(v) {
    const canManage = this.manage && !this.room.finished && v.phase !== "idle";
    this.$("manage").hidden = !canManage;
    if (!canManage) return;
    const busy = new Set([...v.participants.map((p) => p.agentId), ...v.pending.map((a) => a.agentId)].filter(Boolean));
    const choices = this.agents.filter((a) => !busy.has(a.id) && a.status !== "unavailable");
    this.fillAgentPick(choices);
    this.$("agent-pick").hidden = this.$("add-agent").hidden = !choices.length;  // nobody left to add
    this.$("add-agent").disabled = this.adding;
  }

  // Rebuilt only when the choices change, so an open <select> keeps what the owner picked.
  fillAgentPick(choices) {
    const pick = this.$("agent-pick");
    const key = choices.map((a) => a.id).join(",");
    if (pick.dataset.key === key) return;
    const current = pick.value;
    pick.replaceChildren(...choices.map((a) => el("option", { value: a.id, textContent: a.name })));
    pick.dataset.key = key;
    if (choices.some((a) => a.id === current)) pick.value = current;
  }

  manageError(err) {
    this.$("manage-error").hidden = !err;
    this.$("manage-error").textContent = err ? err.message || String(err) : "";
  }

  // -- the owner's controls -------------------------------------------------------------------

  async remove(p) {
    if (!confirm(`Remove ${p.name} from the call?`)) return;
    this.removing.add(p.identity);
    this.manageError(null);
    this.render();
    try {
      await this.api(`${this.base}/participants/${encodeURIComponent(p.identity)}`, { method: "DELETE" });
      this.room.forget(p.identity);
    } catch (err) {
      this.manageError(err);
    } finally {
      this.removing.delete(p.identity);
      this.render();
    }
  }

  async invite() {
    this.manageError(null);
    this.$("invite").disabled = true;
    try {
      const { invite } = await this.api(`${this.base}/invites`, { method: "POST", body: JSON.stringify({}) });
      this.$("invite-url").value = invite.url;
      this.$("invite-note").textContent = inviteNote(invite);
      this.$("copy").textContent = "Copy";
      this.$("invite-box").hidden = false;
      this.$("invite-url").select();
    } catch (err) {
      this.manageError(err);
    } finally {
      this.$("invite").disabled = false;
    }
  }

  async copy() {
    const text = this.$("invite-url").value;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      this.$("invite-url").select();
      document.execCommand?.("copy");
    }
    this.$("copy").textContent = "Copied";
  }

  async addAgent() {
    const id = this.$("agent-pick").value;
    if (!id) return;
    this.manageError(null);
    this.adding = true;
    this.render();
    try {
      const res = await this.api(`${this.base}/agents`, { method: "POST", body: JSON.stringify({ agent_id: id }) });
      this.room.expectAgent(res.agent || { id, name: this.agents.find((a) => a.id === id)?.name || id });
    } catch (err) {
      this.manageError(err);
    } finally {
      this.adding = false;
      this.render();
    }
  }
}

/**
 * Draw `room` (a CloudRoom) into `container` and wire the controls.
 * @param {{api?: Function, callId?: string, manage?: boolean, onHangUp?: Function,
 *          showHangUp?: boolean}} options
 * `manage`: the owner's controls (remove, invite, add agent) with `api` and `callId`.
 * `onHangUp`: what "Hang up" does after a failed join (default: leave the room).
 */
export function mountCloudPanel(container, room, { api, callId, manage = false, onHangUp, showHangUp = true } = {}) {
  const panel = new CloudPanel(container, room, { api, callId, manage, onHangUp, showHangUp });
  panel.mount();
  return { render: panel.render, unmount: () => panel.unmount() };
}
