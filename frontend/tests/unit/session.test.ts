// The sign-in module against a fake gateway: cookie sessions (with CSRF) and pasted tokens.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  credentials?: string;
}

function memoryStorage() {
  const m = new Map<string, string>();
  return {
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
    clear: () => m.clear(),
  };
}

const ME_SESSION = { user: "alice", team: "alpha", team_id: "t1", role: "admin", auth: "session", csrf_token: "csrf-1", scopes: ["admin"] };
const ME_TOKEN = { user: "ada", team: "interp", team_id: "t2", role: "researcher", auth: "api_token", csrf_token: null };

let calls: Call[];
let cookie: boolean;

function json(status: number, body?: unknown) {
  return new Response(body === undefined ? null : JSON.stringify(body), { status });
}

/** A gateway: a cookie session when `cookie`; the token alk_good; CSRF checked on unsafe cookie requests. */
function gateway(url: string, init: RequestInit = {}): Response {
  const method = init.method ?? "GET";
  const headers = (init.headers ?? {}) as Record<string, string>;
  calls.push({ url, method, headers, credentials: init.credentials });
  const bearer = headers.Authorization;
  if (bearer && bearer !== "Bearer alk_good") return json(401, { code: "unauthorized", message: "bad token" });
  if (!bearer && method !== "GET" && cookie && headers["X-CSRF-Token"] !== "csrf-1")
    return json(403, { code: "csrf_failed", message: "csrf" });
  if (url === "/api/v1/me") {
    if (bearer) return json(200, ME_TOKEN);
    return cookie ? json(200, ME_SESSION) : json(401, { code: "unauthorized", message: "sign in" });
  }
  if (url === "/auth/logout") {
    cookie = false;
    return json(204);
  }
  if (url === "/auth/dev-login") {
    cookie = true;
    return json(204);
  }
  if (url === "/api/v1/tokens" && method === "POST") return cookie || bearer ? json(201, { token: {}, secret: "alk_s" }) : json(401, { code: "unauthorized", message: "no" });
  return json(404, { code: "not_found", message: "nothing" });
}

async function load() {
  vi.resetModules();
  const session = await import("../../src/auth/session");
  const client = await import("../../src/api/client");
  return { session, client };
}

beforeEach(() => {
  calls = [];
  cookie = false;
  vi.stubGlobal("sessionStorage", memoryStorage());
  vi.stubGlobal("fetch", vi.fn(async (url: string, init?: RequestInit) => gateway(url, init)));
});

afterEach(() => {
  vi.unstubAllGlobals();
});

describe("a cookie session", () => {
  it("is found at start, and unsafe requests carry its CSRF token with the cookie", async () => {
    cookie = true;
    const { session, client } = await load();
    expect(session.getSession().status).toBe("checking");
    await session.checkSession();
    expect(session.getSession()).toMatchObject({ status: "signed_in", mode: "cookie", token: null });
    expect(session.getCsrfToken()).toBe("csrf-1");

    await client.api("/api/v1/tokens", { method: "POST", body: "{}", contentType: "application/json" });
    const post = calls.at(-1)!;
    expect(post.headers["X-CSRF-Token"]).toBe("csrf-1");
    expect(post.headers.Authorization).toBeUndefined();
    expect(post.credentials).toBe("same-origin");
  });

  it("is absent when /me answers 401, without an 'ended' reason", async () => {
    const { session } = await load();
    await session.checkSession();
    expect(session.getSession()).toMatchObject({ status: "signed_out", ended: null });
  });

  it("is unknown, and said so, when the gateway cannot answer", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => json(503, { code: "unavailable", message: "down" })));
    const { session } = await load();
    await session.checkSession();
    expect(session.getSession()).toMatchObject({ status: "signed_out", ended: "check_failed" });
  });

  it("signs out through POST /auth/logout with the CSRF token", async () => {
    cookie = true;
    const { session } = await load();
    await session.checkSession();
    await session.signOut();
    const logout = calls.find((c) => c.url === "/auth/logout")!;
    expect(logout.method).toBe("POST");
    expect(logout.headers["X-CSRF-Token"]).toBe("csrf-1");
    expect(cookie).toBe(false);
    expect(session.getSession().status).toBe("signed_out");
  });

  it("ends, with a reason, when a request is refused with 401", async () => {
    cookie = true;
    const { session, client } = await load();
    await session.checkSession();
    cookie = false; // the session expired at the gateway
    await expect(client.api("/api/v1/me")).rejects.toMatchObject({ status: 401 });
    expect(session.getSession()).toMatchObject({ status: "signed_out", ended: "session_ended" });
  });

  it("starts with the development sign-in", async () => {
    const { session } = await load();
    await session.checkSession();
    await session.devSignIn("alice", "alpha", "admin");
    const dev = calls.find((c) => c.url === "/auth/dev-login")!;
    expect(dev.method).toBe("POST");
    expect(session.getSession()).toMatchObject({ status: "signed_in", mode: "cookie" });
  });
});

describe("a pasted token", () => {
  it("is checked, kept for the browser session, and sent as a bearer token without CSRF", async () => {
    const { session, client } = await load();
    await session.checkSession();
    await expect(session.signIn("alk_bad")).rejects.toMatchObject({ status: 401 });
    expect(session.getSession().status).toBe("signed_out");
    await session.signIn("alk_good");
    expect(session.getSession()).toMatchObject({ status: "signed_in", mode: "token", token: "alk_good" });
    expect(sessionStorage.getItem("airlock.token")).toBe("alk_good");

    await client.api("/api/v1/tokens", { method: "POST", body: "{}" });
    expect(calls.at(-1)!.headers).toMatchObject({ Authorization: "Bearer alk_good" });
    expect(calls.at(-1)!.headers["X-CSRF-Token"]).toBeUndefined();
  });

  it("survives a reload (module loaded again) without asking the gateway for a cookie session", async () => {
    sessionStorage.setItem("airlock.token", "alk_good");
    sessionStorage.setItem("airlock.me", JSON.stringify(ME_TOKEN));
    const { session } = await load();
    expect(session.getSession()).toMatchObject({ status: "signed_in", mode: "token" });
    await session.checkSession();
    expect(calls).toHaveLength(0);
  });

  it("signs out without calling the gateway", async () => {
    const { session } = await load();
    await session.signIn("alk_good");
    await session.signOut();
    expect(calls.some((c) => c.url === "/auth/logout")).toBe(false);
    expect(sessionStorage.getItem("airlock.token")).toBeNull();
  });
});

describe("single sign-on", () => {
  it("returns to same-origin paths only", async () => {
    const { session } = await load();
    expect(session.ssoLoginUrl("/runs/r1?x=1")).toBe("/auth/login?return_to=%2Fruns%2Fr1%3Fx%3D1");
    expect(session.ssoLoginUrl("//evil.example/")).toBe("/auth/login?return_to=%2F");
    expect(session.ssoLoginUrl("https://evil.example/")).toBe("/auth/login?return_to=%2F");
  });
});
