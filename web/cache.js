// The model's bytes kept in IndexedDB, so that a second visit does not download it again. An entry
// is keyed by the model's URL and holds the version the server gave (ETag, else Last-Modified and
// size, asked by a HEAD request, which downloads nothing): a file replaced on the server is
// fetched again. Offline, the cached copy is used as it is.
const DB = "quranft", STORE = "models";

function database() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function transaction(mode, act) {
  return database().then((db) => new Promise((resolve, reject) => {
    const request = act(db.transaction(STORE, mode).objectStore(STORE));
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  }));
}

async function serverVersion(url) {
  try {
    const head = await fetch(url, { method: "HEAD", cache: "no-store" });
    if (!head.ok) return null;
    return head.headers.get("ETag") ?? `${head.headers.get("Last-Modified")} ${head.headers.get("Content-Length")}`;
  } catch {
    return null; // offline: the cached copy stands
  }
}

// The model file at `url` as bytes, and whether they came from the cache or the network.
export async function modelBytes(url) {
  const absolute = new URL(url, location.href).href;
  const [cached, version] = await Promise.all([transaction("readonly", (s) => s.get(absolute)), serverVersion(absolute)]);
  if (cached && (version === null || cached.version === version)) {
    return { bytes: new Uint8Array(cached.bytes), source: "cache" };
  }
  const response = await fetch(absolute, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: cannot be read (HTTP ${response.status} ${response.statusText})`);
  const bytes = await response.arrayBuffer();
  await transaction("readwrite", (s) => s.put({ bytes, version }, absolute));
  return { bytes: new Uint8Array(bytes), source: "network" };
}
