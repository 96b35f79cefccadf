// Sign-in lives here alone. Two ways to be signed in:
//  - a cookie session (single sign-on through /auth/login, or the development sign-in): the
//    browser holds an HttpOnly cookie; /api/v1/me says who is signed in and gives the CSRF
//    token that every unsafe request sends as X-CSRF-Token;
//  - a pasted API token, kept in sessionStorage and sent as a bearer token.
// Callers ask for the token (null for a cookie session) and the CSRF token, nothing more.
import { useSyncExternalStore } from "react";
import type { AuthConfig, MeOut as Me } from "../api/types";
import { api, ApiError } from "../api/client";

const KEY = "airlock.token";
const ME_KEY = "airlock.me";

type Listener = () => void;
const listeners = new Set<Listener>();

export type SessionStatus = "checking" | "signed_in" | "signed_out";

export interface SessionState {
  status: SessionStatus;
  /** "token" for a pasted API token, "cookie" for a browser session. */
  mode: "token" | "cookie" | null;
  token: string | null;
  me: Me | null;
  /** Why the last session ended without the user signing out (e.g. "session_ended"). */
  ended: string | null;
}

const SIGNED_OUT: SessionState = { status: "signed_out", mode: null, token: null, me: null, ended: null };

function read(): SessionState {
  try {
    const token = sessionStorage.getItem(KEY);
    if (token) {
      const meRaw = sessionStorage.getItem(ME_KEY);
      return { status: "signed_in", mode: "token", token, me: meRaw ? (JSON.parse(meRaw) as Me) : null, ended: null };
    }
  } catch {
    /* storage unavailable */
  }
  // Maybe a cookie session: checked by checkSession().
  return { ...SIGNED_OUT, status: "checking" };
}

let state: SessionState = typeof sessionStorage === "undefined" ? SIGNED_OUT : read();
let checking: Promise<void> | null = null;

function set(next: SessionState) {
  state = next;
  for (const l of listeners) l();
}

export function getSession(): SessionState {
  return state;
}

/** The bearer token of token mode; null for a cookie session (the browser sends the cookie). */
export function getToken(): string | null {
  return state.token;
}

/** The CSRF token of a cookie session, sent as X-CSRF-Token on unsafe requests. */
export function getCsrfToken(): string | null {
  return state.mode === "cookie" ? (state.me?.csrf_token ?? null) : null;
}

export function getIdentity(): Me | null {
  return state.me;
}

/** Checks a token against the API and keeps it for this browser session. */
export async function signIn(token: string): Promise<Me> {
  const me = await api<Me>("/api/v1/me", { token });
  sessionStorage.setItem(KEY, token);
  sessionStorage.setItem(ME_KEY, JSON.stringify(me));
  set({ status: "signed_in", mode: "token", token, me, ended: null });
  return me;
}

/** Asks the gateway whether this browser has a session cookie (at start, after a login). */
export function checkSession(): Promise<void> {
  if (state.mode === "token") return Promise.resolve();
  checking ??= (async () => {
    try {
      const me = await api<Me>("/api/v1/me", { cookieOnly: true });
      set({ status: "signed_in", mode: "cookie", token: null, me, ended: null });
    } catch (e) {
      // 401: no session. Anything else: the gateway could not say; the page says so.
      const unknown = !(e instanceof ApiError && e.status === 401);
      set({ ...SIGNED_OUT, ended: unknown ? "check_failed" : state.ended });
    } finally {
      checking = null;
    }
  })();
  return checking;
}

/** The development sign-in (only where the gateway allows it): a cookie session. */
export async function devSignIn(user: string, team: string, role: string): Promise<void> {
  await api<void>("/auth/dev-login", {
    method: "POST",
    body: JSON.stringify({ user, team, role }),
    contentType: "application/json",
    cookieOnly: true,
  });
  await checkSession();
  if (state.status !== "signed_in") throw new Error("Signed in, but the gateway does not recognise the session.");
}

/** Where single sign-on starts; the gateway sends the browser back to `returnTo`. */
export function ssoLoginUrl(returnTo: string): string {
  const path = returnTo.startsWith("/") && !returnTo.startsWith("//") ? returnTo : "/";
  return `/auth/login?return_to=${encodeURIComponent(path)}`;
}

export async function getAuthConfig(signal?: AbortSignal): Promise<AuthConfig> {
  return api<AuthConfig>("/api/v1/auth/config", { signal, cookieOnly: true });
}

function forget() {
  try {
    sessionStorage.removeItem(KEY);
    sessionStorage.removeItem(ME_KEY);
  } catch {
    /* storage unavailable */
  }
}

/** Signs out: ends the cookie session at the gateway, forgets a pasted token. */
export async function signOut(): Promise<void> {
  const wasCookie = state.mode === "cookie";
  forget();
  if (wasCookie) {
    try {
      await api<void>("/auth/logout", { method: "POST" });
    } catch {
      /* the session is gone either way for this page */
    }
  }
  set(SIGNED_OUT);
}

/** A request was refused for its credentials: the session is over. */
export function notifyUnauthorized(): void {
  if (state.status !== "signed_in") return;
  forget();
  set({ ...SIGNED_OUT, ended: "session_ended" });
}

/** Refreshes who is signed in (e.g. after a reload, or a role change). */
export async function refreshIdentity(): Promise<void> {
  if (state.status !== "signed_in") return;
  const me = await api<Me>("/api/v1/me");
  if (state.mode === "token") sessionStorage.setItem(ME_KEY, JSON.stringify(me));
  set({ ...state, me });
}

function subscribe(l: Listener) {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function useSession(): SessionState {
  return useSyncExternalStore(subscribe, () => state);
}
