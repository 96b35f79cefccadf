import { describe, expect, it } from "vitest";
import {
  expiryFromDate,
  grantableScopes,
  identityErrorText,
  navEntries,
  roleScopes,
  scopeList,
  signInErrorText,
  todayDate,
  tokenState,
} from "../../src/lib/identity";
import { requestHeaders } from "../../src/api/client";

describe("scopes a token may be given", () => {
  it("are what the signed-in request may do, in the fixed order", () => {
    expect(grantableScopes({ role: "admin", scopes: ["admin", "evaluations:read"] })).toEqual(["evaluations:read", "admin"]);
    expect(grantableScopes({ role: "viewer", scopes: ["evaluations:read"] })).toEqual(["evaluations:read"]);
  });
  it("fall back to the role's scopes when /me does not list them", () => {
    expect(grantableScopes({ role: "researcher" })).toEqual(["evaluations:read", "evaluations:write", "evaluations:cancel"]);
    expect(grantableScopes({ role: "viewer" })).toEqual(["evaluations:read"]);
    expect(grantableScopes(null)).toEqual([]);
  });
  it("of a service account follow its role", () => {
    expect(roleScopes("admin")).toHaveLength(4);
    expect(roleScopes("viewer")).toEqual(["evaluations:read"]);
    expect(roleScopes("unknown")).toEqual([]);
  });
  it("are listed known first, then any others", () => {
    expect(scopeList(["admin", "x:y", "evaluations:read"])).toBe("evaluations:read, admin, x:y");
  });
});

describe("token state", () => {
  const now = Date.parse("2026-03-01T12:00:00Z");
  it("is revoked before expired before active", () => {
    expect(tokenState({ revoked_at: "2026-02-01T00:00:00Z", expires_at: "2026-01-01T00:00:00Z" }, now)).toBe("revoked");
    expect(tokenState({ revoked_at: null, expires_at: "2026-03-01T12:00:00Z" }, now)).toBe("expired");
    expect(tokenState({ revoked_at: null, expires_at: "2026-03-02T00:00:00Z" }, now)).toBe("active");
    expect(tokenState({ revoked_at: null, expires_at: null }, now)).toBe("active");
  });
});

describe("expiry from a date input", () => {
  it("is the end of that day, local time", () => {
    const iso = expiryFromDate("2027-05-04")!;
    const d = new Date(iso);
    expect([d.getFullYear(), d.getMonth(), d.getDate(), d.getHours(), d.getMinutes()]).toEqual([2027, 4, 4, 23, 59]);
    expect(iso.endsWith("Z")).toBe(true);
  });
  it("is null when empty or malformed", () => {
    expect(expiryFromDate("")).toBeNull();
    expect(expiryFromDate("tomorrow")).toBeNull();
  });
  it("today is the date input's value for now", () => {
    expect(todayDate(new Date(2026, 0, 9, 10))).toBe("2026-01-09");
  });
});

describe("words", () => {
  it("say why a sign-in failed", () => {
    expect(signInErrorText("login_expired")).toMatch(/took too long/);
    expect(signInErrorText("access_denied")).toMatch(/did not let you in/);
    expect(signInErrorText("login_failed")).toMatch(/did not complete/);
    expect(signInErrorText("weird")).toMatch(/\(weird\)/);
  });
  it("explain the last admin refusal", () => {
    expect(identityErrorText("last_admin", "x")).toMatch(/at least one admin/);
    expect(identityErrorText("other", "server says")).toBe("server says");
  });
});

describe("navigation", () => {
  it("shows the admin pages to admins only", () => {
    const admin = navEntries({ role: "admin", scopes: ["evaluations:read", "admin"] }).map((n) => n.label);
    const viewer = navEntries({ role: "viewer", scopes: ["evaluations:read"] }).map((n) => n.label);
    expect(admin).toEqual(expect.arrayContaining(["API tokens", "Team", "Service accounts", "Audit log"]));
    expect(viewer).toContain("API tokens");
    expect(viewer).not.toContain("Team");
    expect(viewer).not.toContain("Audit log");
    expect(navEntries(undefined).map((n) => n.label)).not.toContain("Team");
  });
  it("hides them from an admin whose token lacks the admin scope", () => {
    expect(navEntries({ role: "admin", scopes: ["evaluations:read"] }).map((n) => n.label)).not.toContain("Audit log");
    expect(navEntries({ role: "admin" }).map((n) => n.label)).toContain("Audit log");
  });
});

describe("request headers", () => {
  const cookie = { token: null, csrf: "c5rf" };
  it("carry the CSRF token on unsafe requests of a cookie session only", () => {
    for (const m of ["POST", "PUT", "PATCH", "DELETE"]) expect(requestHeaders(m, {}, cookie)["X-CSRF-Token"]).toBe("c5rf");
    expect(requestHeaders("GET", {}, cookie)["X-CSRF-Token"]).toBeUndefined();
    expect(requestHeaders("GET", {}, cookie).Authorization).toBeUndefined();
  });
  it("carry the bearer token in token mode, and no CSRF token", () => {
    const h = requestHeaders("POST", { contentType: "application/json" }, { token: "alk_x", csrf: null });
    expect(h).toEqual({ Accept: "application/json", Authorization: "Bearer alk_x", "Content-Type": "application/json" });
  });
  it("prefer a candidate token; cookieOnly sends none", () => {
    expect(requestHeaders("GET", { token: "alk_new" }, { token: "alk_old", csrf: null }).Authorization).toBe("Bearer alk_new");
    expect(requestHeaders("POST", { cookieOnly: true }, { token: "alk_old", csrf: null }).Authorization).toBeUndefined();
  });
});
