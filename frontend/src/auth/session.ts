// Sign-in lives here alone: today a pasted API token kept for the browser session.
// Another login method (OIDC) replaces the inside of this module, not its callers.
import { useSyncExternalStore } from "react";
import type { MeOut } from "../api/types";
import { api } from "../api/client";

const KEY = "airlock.token";
const ME_KEY = "airlock.me";

type Listener = () => void;
const listeners = new Set<Listener>();

interface SessionState {
  token: string | null;
  me: MeOut | null;
}

function read(): SessionState {
  try {
    const token = sessionStorage.getItem(KEY);
    const meRaw = sessionStorage.getItem(ME_KEY);
    return { token, me: token && meRaw ? (JSON.parse(meRaw) as MeOut) : null };
  } catch {
    return { token: null, me: null };
  }
}

let state: SessionState = typeof sessionStorage === "undefined" ? { token: null, me: null } : read();

function emit() {
  for (const l of listeners) l();
}

export function getToken(): string | null {
  return state.token;
}

export function getIdentity(): MeOut | null {
  return state.me;
}

/** Checks a token against the API and keeps it for this browser session. */
export async function signIn(token: string): Promise<MeOut> {
  const me = await api<MeOut>("/api/v1/me", { token });
  sessionStorage.setItem(KEY, token);
  sessionStorage.setItem(ME_KEY, JSON.stringify(me));
  state = { token, me };
  emit();
  return me;
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(ME_KEY);
  state = { token: null, me: null };
  emit();
}

/** A request was refused for its token: the session is over. */
export function notifyUnauthorized(): void {
  if (state.token) signOut();
}

/** Refreshes who is signed in (e.g. after a reload). */
export async function refreshIdentity(): Promise<void> {
  if (!state.token) return;
  const me = await api<MeOut>("/api/v1/me");
  sessionStorage.setItem(ME_KEY, JSON.stringify(me));
  state = { ...state, me };
  emit();
}

function subscribe(l: Listener) {
  listeners.add(l);
  return () => listeners.delete(l);
}

export function useSession(): SessionState {
  return useSyncExternalStore(subscribe, () => state);
}
