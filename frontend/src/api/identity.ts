// Identity types of the API (sessions, API tokens, team administration, audit log),
// written from the identity contract until the generated types carry them.
import type { MeOut as GeneratedMeOut } from "./types";

export type Role = "admin" | "researcher" | "viewer";
export type Scope = "evaluations:read" | "evaluations:write" | "evaluations:cancel" | "admin";
export type AuthKind = "session" | "api_token" | "jwt";

/** Who is signed in. The fields beyond the generated `MeOut` come with identity. */
export type Me = GeneratedMeOut & {
  user_id?: string;
  email?: string | null;
  kind?: "user" | "service";
  scopes?: string[];
  auth?: AuthKind;
  csrf_token?: string | null;
};

export interface AuthConfig {
  oidc: boolean;
  dev_login: boolean;
}

export interface TokenOwner {
  id: string;
  name: string;
}

export interface TokenOut {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  owner: TokenOwner;
}

export interface TokenListOut {
  tokens: TokenOut[];
}

export interface TokenIn {
  name: string;
  scopes: string[];
  expires_at: string | null;
}

export interface TokenCreatedOut {
  token: TokenOut;
  secret: string;
}

export interface MemberOut {
  id: string;
  name: string;
  email: string | null;
  kind: "user" | "service";
  role: Role;
  created_at: string;
  last_login_at: string | null;
}

export interface MemberListOut {
  members: MemberOut[];
}

export interface ServiceAccountListOut {
  service_accounts: MemberOut[];
}

export interface AuditEntryOut {
  id: string;
  at: string;
  actor: { id: string; name: string } | null;
  action: string;
  object_type: string;
  object_id: string | null;
  source_address: string | null;
  outcome: "success" | "failure";
  detail: Record<string, unknown>;
}

export interface AuditListOut {
  entries: AuditEntryOut[];
  next_cursor: string | null;
}
