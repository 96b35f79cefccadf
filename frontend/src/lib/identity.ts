// Identity in words: scopes a role may hold, token states, sign-in failures, audit actions.
import type { Role, Scope, TokenOut } from "../api/types";

export const ALL_SCOPES: Scope[] = ["evaluations:read", "evaluations:write", "evaluations:cancel", "admin"];

export const ROLES: Role[] = ["viewer", "researcher", "admin"];

/** What each role may do; a token's scopes must stay within its owner's role. */
export const ROLE_SCOPES: Record<Role, Scope[]> = {
  viewer: ["evaluations:read"],
  researcher: ["evaluations:read", "evaluations:write", "evaluations:cancel"],
  admin: ALL_SCOPES,
};

export const SCOPE_TEXT: Record<Scope, string> = {
  "evaluations:read": "read evaluations, runs, logs and the system view",
  "evaluations:write": "submit evaluations",
  "evaluations:cancel": "cancel evaluations",
  admin: "administer the team: members, service accounts, tokens, audit log",
};

function isScope(s: string): s is Scope {
  return (ALL_SCOPES as string[]).includes(s);
}

/**
 * The scopes a new token may carry: what the signed-in request may do (`me.scopes`,
 * already its role intersected with its credential), or else the role's scopes.
 */
export function grantableScopes(me: { role: string; scopes?: string[] } | null): Scope[] {
  if (!me) return [];
  if (Array.isArray(me.scopes)) return ALL_SCOPES.filter((s) => me.scopes!.includes(s));
  return ROLE_SCOPES[me.role as Role] ?? [];
}

/** The scopes a role allows, in the fixed order. */
export function roleScopes(role: string): Scope[] {
  return ROLE_SCOPES[role as Role] ?? [];
}

export function scopeList(scopes: string[]): string {
  const known = ALL_SCOPES.filter((s) => scopes.includes(s));
  const other = scopes.filter((s) => !isScope(s));
  return [...known, ...other].join(", ");
}

export type TokenState = "active" | "expired" | "revoked";

export function tokenState(t: Pick<TokenOut, "revoked_at" | "expires_at">, now = Date.now()): TokenState {
  if (t.revoked_at) return "revoked";
  if (t.expires_at && Date.parse(t.expires_at) <= now) return "expired";
  return "active";
}

/** An `<input type="date">` value as the end of that day, local time, in RFC 3339; "" → null. */
export function expiryFromDate(date: string): string | null {
  if (!date) return null;
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return null;
  const end = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 23, 59, 59);
  return end.toISOString();
}

/** Today as an `<input type="date">` value (the earliest expiry offered). */
export function todayDate(now = new Date()): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}`;
}

/** Why a sign-in failed, from the `error` code the gateway puts on `/sign-in?error=`. */
export function signInErrorText(code: string): string {
  switch (code) {
    case "login_failed":
      return "The single sign-on did not complete. Please try again; if it keeps failing, ask an administrator.";
    case "login_expired":
      return "The sign-in took too long or was started in another tab. Please sign in again.";
    case "access_denied":
      return "The identity provider did not let you in (or the sign-in was cancelled).";
    case "session_ended":
      return "Your session has ended. Please sign in again.";
    case "check_failed":
      return "Could not check whether you are signed in: the server did not answer. Reload the page to try again.";
    default:
      return `The sign-in did not succeed (${code}). Please try again.`;
  }
}

export const AUDIT_ACTIONS: { action: string; text: string }[] = [
  { action: "login", text: "Sign-in" },
  { action: "login_failed", text: "Failed sign-in" },
  { action: "logout", text: "Sign-out" },
  { action: "evaluation.submit", text: "Evaluation submitted" },
  { action: "evaluation.cancel", text: "Evaluation cancelled" },
  { action: "token.create", text: "Token created" },
  { action: "token.revoke", text: "Token revoked" },
  { action: "role.change", text: "Role changed" },
  { action: "service_account.create", text: "Service account created" },
];

export function auditActionText(action: string): string {
  return AUDIT_ACTIONS.find((a) => a.action === action)?.text ?? action;
}

/** What a 409 or 422 from the identity endpoints means, in words (or the server's message). */
export function identityErrorText(code: string, fallback: string): string {
  switch (code) {
    case "last_admin":
      return "The team needs at least one admin: make someone else an admin first.";
    case "scope_not_allowed":
      return "That scope is beyond the role.";
    case "in_past":
      return "The expiry must be in the future.";
    default:
      return fallback;
  }
}

/** Whether the admin pages may work: role admin, and (when known) the admin scope on this credential. */
export function isAdmin(me: { role: string; scopes?: string[] } | null | undefined): boolean {
  if (!me || me.role !== "admin") return false;
  return !Array.isArray(me.scopes) || me.scopes.includes("admin");
}

/** Main navigation: everyone's entries, then the admin's (the API enforces, this only hides). */
export function navEntries(me: { role: string; scopes?: string[] } | null | undefined): { href: string; label: string }[] {
  const all = [
    { href: "/", label: "Evaluations" },
    { href: "/evaluations/new", label: "New evaluation" },
    { href: "/compare", label: "Compare" },
    { href: "/system", label: "System" },
    { href: "/tokens", label: "API tokens" },
  ];
  if (!isAdmin(me)) return all;
  return [
    ...all,
    { href: "/admin/team", label: "Team" },
    { href: "/admin/service-accounts", label: "Service accounts" },
    { href: "/admin/audit", label: "Audit log" },
  ];
}
