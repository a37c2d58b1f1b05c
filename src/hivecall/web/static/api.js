// JSON requests to the hub with the session cookie (or a bearer token); errors carry the code.
export function makeApi(token) {
  const authHeaders = () => (token ? { authorization: `Bearer ${token}` } : {});
  async function api(path, options = {}) {
    const headers = { "content-type": "application/json", ...authHeaders(), ...(options.headers || {}) };
    const res = await fetch(path, { credentials: "same-origin", ...options, headers });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) {
      throw Object.assign(new Error(body.error?.message || res.statusText),
        { status: res.status, code: body.error?.code });
    }
    return body;
  }
  api.authHeaders = authHeaders;  // for requests that are not JSON (an SDP offer)
  return api;
}
