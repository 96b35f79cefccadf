import type { ErrorOut, FieldError } from "./types";
import { getToken, notifyUnauthorized } from "../auth/session";

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
}

export async function api<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const token = opts.token ?? getToken();
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (opts.contentType) headers["Content-Type"] = opts.contentType;
  let res: Response;
  try {
    res = await fetch(path, { method: opts.method ?? "GET", headers, body: opts.body, signal: opts.signal });
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
    if (res.status === 401 && !opts.token) notifyUnauthorized();
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
