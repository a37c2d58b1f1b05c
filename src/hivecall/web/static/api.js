// JSON requests to the hub with the session cookie (or a bearer token); errors carry the code.
export function makeApi(token) {
  const authHeaders = () => (token ? { authorization: `Bearer ${token}` } : {});
  async function api(path, options = {}) {
    const headers = { "content-type": "application/json", ...authHeaders(), ...(options.headers || {}) };
    const res = await fetch(path, { credentials: "same-origin", ...options, headers });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) throw failure(res, body);
    return body;
  }
  api.authHeaders = authHeaders;  // for requests that are not JSON (an SDP offer, an event stream)
  return api;
}

function failure(res, body) {
  return Object.assign(new Error(body.error?.message || res.statusText),
    { status: res.status, code: body.error?.code });
}

// Server-sent events from the hub as {event, data} (data parsed as JSON), until the stream ends.
// Read with fetch, not EventSource, so a phone's bearer token goes along (EventSource cannot send
// headers). A refused request throws like api() does; `signal` aborts the stream.
export async function* serverEvents(api, path, { signal } = {}) {
  const res = await fetch(path, { credentials: "same-origin", signal,
    headers: { accept: "text/event-stream", ...(api.authHeaders?.() || {}) } });
  if (!res.ok) throw failure(res, await res.json().catch(() => ({})));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = parseFrame(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (frame) yield frame;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// One SSE frame; comments (keep-alives) and frames without JSON data are skipped.
function parseFrame(text) {
  let event = "message";
  const data = [];
  for (const line of text.split("\n").map((l) => l.replace(/\r$/, ""))) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  try { return { event, data: JSON.parse(data.join("\n")) }; } catch { return null; }
}
