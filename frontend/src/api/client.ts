import type { ErrorOut, FieldError } from "./types";
import { getCsrfToken, getToken, notifyUnauthorized } from "../auth/session";

/** An error answered by the API (or the network), with the server's message. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The per-field problems of a 422, if any. */
  get fieldErrors(): FieldError[] {
    const d = this.details as { errors?: FieldError[] } | null | undefined;
    return Array.isArray(d?.errors) ? d!.errors : [];
  }
}

export interface RequestOptions {
  method?: string;
  body?: BodyInit;
  contentType?: string;
  signal?: AbortSignal;
  /** Use this token instead of the session's (sign-in checks a candidate token). */
  token?: string;
  /**
   * Only the browser's cookie, no bearer token, and a 401 does not end the session
   * (asking whether there is a cookie session, the sign-in endpoints).
   */
  cookieOnly?: boolean;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** The headers of a request: a bearer token in token mode; the CSRF token on unsafe cookie requests. */
export function requestHeaders(
  method: string,
  opts: Pick<RequestOptions, "token" | "cookieOnly" | "contentType">,
  session: { token: string | null; csrf: string | null },
): Record<string, string> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = opts.cookieOnly ? undefined : (opts.token ?? session.token);
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (UNSAFE.has(method) && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  if (opts.contentType) headers["Content-Type"] = opts.contentType;
  return headers;
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const method = (opts.method ?? "GET").toUpperCase();
  const headers = requestHeaders(method, opts, { token: getToken(), csrf: getCsrfToken() });
  let res: Response;
  try {
    // Same-origin cookies (the session) go with every request.
    res = await fetch(path, { method, headers, body: opts.body, signal: opts.signal, credentials: "same-origin" });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError(0, "network", `Cannot reach the server: ${(e as Error).message}`);
  }
  const text = await res.text();
  let json: unknown = undefined;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
  }
  if (!res.ok) {
    const err = (json ?? {}) as Partial<ErrorOut>;
    const message = err.message ?? `${res.status} ${res.statusText || "error"}`;
    if (res.status === 401 && !opts.token && !opts.cookieOnly) notifyUnauthorized();
    throw new ApiError(res.status, String(err.code ?? "http_" + res.status), message, err.details);
  }
  return json as T;
}

/** Builds a query string from defined, non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** The WebSocket URL of an API path on this origin. */
export function wsUrl(path: string): string {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}${path}`;
}
