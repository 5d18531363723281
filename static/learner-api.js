// The learner's side of the HTTP API (docs/http-api.md, "Learners"): who am I, my conversations, one of
// them, deleting it; and the administrators' search. Each call resolves to {status, body} (body: the
// parsed JSON, or null); network failures resolve to status 0, so callers have one shape to handle.

export const PAGE_SIZE = 100; // conversations asked for per page (the server's maximum)

/** GET `url` as JSON. */
export async function getJson(url, { fetchImpl = fetch } = {}) {
  return request(url, { headers: { Accept: "application/json" } }, fetchImpl);
}

/** GET /api/me */
export function fetchMe(options) {
  return getJson("/api/me", options);
}

/** GET /api/conversations (one page; `cursor` is the previous page's `next`). */
export function fetchConversations(cursor = null, options) {
  return getJson(withQuery("/api/conversations", { limit: PAGE_SIZE, cursor }), options);
}

/** GET /api/admin/conversations with the filters given (empty values are left out). */
export function searchConversations(filters, cursor = null, options) {
  return getJson(withQuery("/api/admin/conversations", { ...filters, limit: PAGE_SIZE, cursor }), options);
}

/** GET /api/conversations/<id> */
export function fetchConversation(sessionId, options) {
  return getJson(`/api/conversations/${encodeURIComponent(sessionId)}`, options);
}

/** DELETE /api/conversations/<id> (204 when deleted, 404 when it was not there). */
export async function deleteConversation(sessionId, { fetchImpl = fetch } = {}) {
  return request(`/api/conversations/${encodeURIComponent(sessionId)}`, { method: "DELETE" }, fetchImpl);
}

/** `path` with the non-empty `params` as its query string. */
export function withQuery(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && String(value).trim() !== "") query.set(name, String(value).trim());
  }
  const text = query.toString();
  return text ? `${path}?${text}` : path;
}

async function request(url, init, fetchImpl) {
  try {
    const response = await fetchImpl(url, { credentials: "same-origin", ...init });
    const type = response.headers.get("Content-Type") || "";
    let body = null;
    if (type.includes("json")) {
      try {
        body = await response.json();
      } catch {
        body = null;
      }
    }
    return { status: response.status, body };
  } catch {
    return { status: 0, body: null };
  }
}
