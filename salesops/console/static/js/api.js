// The services, through the console's same-origin proxy (/api/<service>/...), with the signed-in key.

const KEY_NAME = "salesops.apiKey";
const MAX_PAGES = 50;

export function apiKey() {
  return sessionStorage.getItem(KEY_NAME) || localStorage.getItem(KEY_NAME) || "";
}

export function rememberKey(key, onThisDevice) {
  sessionStorage.setItem(KEY_NAME, key);
  if (onThisDevice) localStorage.setItem(KEY_NAME, key);
  else localStorage.removeItem(KEY_NAME);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_NAME);
  localStorage.removeItem(KEY_NAME);
}

// A problem document (RFC 9457) as the services send it: `detail` for a person, `errors` naming each field.
export class ApiError extends Error {
  constructor(status, detail, errors) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.errors = Array.isArray(errors) ? errors : [];
  }

  // 404/405 on an action: the service does not offer it (yet), rather than a missing resource.
  get notOffered() {
    return this.status === 404 || this.status === 405;
  }
}

export async function api(service, path, options = {}) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { cache: "no-store", method: options.method || "GET", headers };
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(`/api/${service}${path}`, init);
  if (!response.ok) {
    let detail = response.statusText;
    let errors = [];
    try {
      const body = await response.json();
      detail = body.detail || body.title || detail;
      errors = body.errors || [];
    } catch (_) {
      // not a JSON problem document: keep the status text
    }
    throw new ApiError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail), errors);
  }
  const result = response.status === 204 ? null : await response.json();
  return options.withStatus ? { status: response.status, body: result } : result;
}

// An optional read may be missing on an older service: 404/405 read as "not available".
export async function optional(service, path) {
  try {
    return await api(service, path);
  } catch (error) {
    if (error instanceof ApiError && error.notOffered) return null;
    throw error;
  }
}

export async function allPages(service, path, cursorField, cursorParam) {
  const rows = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const separator = path.includes("?") ? "&" : "?";
    const url = cursor ? `${path}${separator}${cursorParam}=${encodeURIComponent(cursor)}` : path;
    const body = await api(service, url);
    rows.push(...(body.data || []));
    cursor = body[cursorField];
    if (!cursor) break;
  }
  return rows;
}

// Runs `task` over `items`, at most `width` at a time: the services are not flooded by one page.
export async function inPool(items, width, task) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next;
      next += 1;
      results[index] = await task(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
  return results;
}
