// The dashboard's Phone panel: make a pairing code (text, QR code, countdown), watch it get
// used, and list the paired phones with a Revoke button each. When the hub serves HTTPS with
// its own certificate authority, step 1 is trusting that CA on the phone (its QR code, its
// fingerprint, how to install it per platform); step 2 is the pairing code.

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.map((c) => (c instanceof Node ? c : document.createTextNode(c ?? ""))));
  return node;
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "never");

let timers = [];
const stop = () => { timers.forEach(clearInterval); timers = []; };

// Step 1 when the hub has its own CA ({ca_url, ca_qr_svg, fingerprint}); none when null.
function showTrust(https) {
  $("pair-trust").hidden = !https;
  if (!https) return;
  $("pair-ca-qr").innerHTML = https.ca_qr_svg;  // drawn by the hub from its own CA's URL
  const link = $("pair-ca-url");
  link.textContent = https.ca_url;
  if (/^https?:\/\//.test(https.ca_url)) link.href = https.ca_url;
  else link.removeAttribute("href");
  $("pair-ca-fingerprint").textContent = https.fingerprint;
}

/** Wire the panel to `api`; returns the function that (re)loads the device list. */
export function setupPhonePanel(api) {
  const loadDevices = async () => {
    const { devices } = await api("/api/devices");
    $("devices").replaceChildren(...devices.map((d) => {
      const revoke = el("button", { type: "button", className: "danger revoke", textContent: "Revoke" });
      revoke.dataset.device = d.id;
      revoke.onclick = async () => {
        if (!confirm(`Unpair ${d.name}? It stops working at once.`)) return;
        await api(`/api/devices/${encodeURIComponent(d.id)}`, { method: "DELETE" });
        await loadDevices();
      };
      return el("tr", {}, el("td", {}, d.name), el("td", {}, when(d.paired_at)),
        el("td", {}, when(d.last_seen_at)), el("td", {}, revoke));
    }));
    $("devices-empty").hidden = devices.length > 0;
  };

  const show = (state, text) => {
    $("pairing").dataset.state = state;
    if (state === "paired" || state === "expired") $("pair-hint").hidden = true;
    $("pair-status").textContent = text;
    $("pair-status").className = state === "expired" ? "error" : "muted";
  };

  $("pair-phone").onclick = async () => {
    stop();
    $("pair-phone").disabled = true;
    try {
      const res = await api("/api/pairing", { method: "POST" });
      const p = res.pairing;
      $("pair-code-text").textContent = p.code;
      $("pair-qr").innerHTML = res.qr_svg;  // drawn by the hub from its own URL and the code
      $("pair-url").textContent = p.url;
      $("pair-hint").hidden = !res.hint;
      $("pair-hint").textContent = res.hint || "";
      showTrust(res.https);
      $("pairing").hidden = false;
      $("pair-qr").hidden = false;
      // Count down from what the hub said, so a skewed clock here does not matter.
      const ends = Date.now() + p.expires_in * 1000;
      const tick = () => {
        const left = Math.max(0, Math.round((ends - Date.now()) / 1000));
        if (left > 0) {
          show("waiting", `Waiting for a phone… expires in ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`);
          return;
        }
        stop();
        $("pair-qr").hidden = true;
        show("expired", "This code has expired. Make a new one.");
      };
      const watch = async () => {
        const { pairing } = await api(`/api/pairing/${p.id}`).catch(() => ({ pairing: null }));
        if (pairing?.state !== "paired") return;
        stop();
        $("pair-qr").hidden = true;
        $("pair-trust").hidden = true;  // it trusted the hub, or it could not have paired
        show("paired", `Paired: ${pairing.device?.name || "a phone"}.`);
        await loadDevices();
      };
      tick();
      timers = [setInterval(tick, 1000), setInterval(watch, POLL_MS)];
    } catch (err) {
      show("error", err.message);
      $("pairing").hidden = false;
    } finally {
      $("pair-phone").disabled = false;
    }
  };

  return loadDevices;
}
