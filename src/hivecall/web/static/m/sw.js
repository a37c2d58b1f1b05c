// The phone app's service worker: it keeps the app's shell (the /m page and every file it
// loads) so the app still opens when the hub is down or the phone is off the hub's network,
// and can say so. Shell files go to the network first: a running hub always serves its current
// files, and the kept copy is only for when it cannot be reached. Everything else (the API,
// event streams, other origins) is left to the browser and never kept.
//
// Served at /m/sw.js with scope /m (the hub sends Service-Worker-Allowed for it); the hub
// writes its version into HUB_VERSION, so a new hub replaces the shells of the old one.

const SHELL_VERSION = 1;  // bump when the list below or the caching changes
const HUB_VERSION = "__HUB_VERSION__";
const CACHE = `hivecall-shell-${SHELL_VERSION}-${HUB_VERSION}`;
const SHELL = [
  "/m",
  "/m/manifest.webmanifest",
  "/static/hub.css",
  "/static/m/m.css",
  "/static/m/app.js",
  "/static/m/wakelock.js",
  "/static/api.js",
  "/static/callmodal.js",
  "/static/call.js",
  "/static/cloud.js",
  "/static/cloudaudio.js",
  "/static/cloudpanel.js",
  "/static/turns.js",
  "/static/turnlist.js",
  "/static/icon.svg",
  "/static/m/icon-192.png",
  "/static/m/icon-512.png",
];
const IN_SHELL = new Set(SHELL);

self.addEventListener("install", (event) => {
  // `reload`: the files as the hub serves them now, not from the HTTP cache.
  event.waitUntil(caches.open(CACHE)
    .then((cache) => cache.addAll(SHELL.map((path) => new Request(path, { cache: "reload" }))))
    .then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter(isOldShell).map((name) => caches.delete(name))))
    .then(() => self.clients.claim()));
});

self.addEventListener("fetch", (event) => {
  const path = shellPath(event.request);
  if (path) event.respondWith(networkThenShell(event.request, path));
});

const isOldShell = (name) => name.startsWith("hivecall-shell-") && name !== CACHE;

// The shell file a request asks for, or null (not a GET of this origin, or not in the shell).
function shellPath(request) {
  if (request.method !== "GET") return null;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || !IN_SHELL.has(url.pathname)) return null;
  return url.pathname;
}

async function networkThenShell(request, path) {
  try {
    const response = await fetch(request);
    if (response.ok) keep(path, response.clone());
    return response;
  } catch (err) {
    const kept = await caches.match(path, { cacheName: CACHE });
    if (kept) return kept;
    throw err;
  }
}

// A fresh copy into this worker's shell, if it still has one: once a newer worker has dropped
// it, this one (still answering a page's last requests) must not make it again.
async function keep(path, response) {
  try {
    if (await caches.has(CACHE)) await (await caches.open(CACHE)).put(path, response);
  } catch {
    // a full or unavailable cache only costs the offline copy
  }
}
