// The API as the page uses it: the token kept in this browser, every call with
// `Authorization: Bearer`, and the events websocket (token as ?token=, since browsers cannot
// set headers on a websocket). Only this origin is ever contacted.

const KEY = "galaxy-home.token";

export class Unauthorized extends Error {}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

export function token() {
  return localStorage.getItem(KEY);
}

export function setToken(value) {
  if (value) localStorage.setItem(KEY, value);
  else localStorage.removeItem(KEY);
}

async function detail(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    return JSON.stringify(body.detail ?? body);
  } catch {
    return response.statusText;
  }
}

/** fetch(path) on this origin with the token; JSON in and out unless `raw`. */
export async function call(method, path, body, { raw = false, contentType, tokenOverride } = {}) {
  const headers = {};
  const tok = tokenOverride ?? token();
  if (tok) headers.Authorization = `Bearer ${tok}`;
  let payload;
  if (body instanceof Blob || body instanceof ArrayBuffer) {
    payload = body;
    headers["Content-Type"] = contentType || "application/octet-stream";
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(path, { method, headers, body: payload, cache: "no-store" });
  if (response.status === 401) throw new Unauthorized(await detail(response));
  if (!response.ok) throw new ApiError(response.status, await detail(response));
  return raw ? response : response.json();
}

export const get = (path, opts) => call("GET", path, undefined, opts);
export const post = (path, body, opts) => call("POST", path, body, opts);

/**
 * The live events: onEvent(event) for each pushed event, onState("open" | "closed") when the
 * connection comes and goes. Reconnects by itself (1 s, then up to 15 s apart).
 * Returns a function that closes it for good.
 */
export function events(onEvent, onState) {
  let socket = null;
  let stopped = false;
  let wait = 1000;
  let timer = null;
  const open = () => {
    if (stopped) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const url = `${scheme}://${location.host}/v1/events?token=${encodeURIComponent(token() || "")}`;
    socket = new WebSocket(url);
    socket.onopen = () => {
      wait = 1000;
      onState("open");
    };
    socket.onmessage = (message) => {
      try {
        onEvent(JSON.parse(message.data));
      } catch (error) {
        console.error("bad event", error);
      }
    };
    socket.onclose = () => {
      onState("closed");
      if (!stopped) timer = setTimeout(open, wait);
      wait = Math.min(wait * 2, 15000);
    };
  };
  open();
  return () => {
    stopped = true;
    clearTimeout(timer);
    if (socket) socket.close();
  };
}
