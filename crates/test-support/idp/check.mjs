#!/usr/bin/env node
// A self-check of the test IdP: starts server.mjs, then checks discovery, the JWKS, a
// client_credentials JWT (aud, iss, kid), and the authorization code flow with PKCE
// through the login and consent forms, as a browser would (cookies, redirects).
// Prints "N passed, 0 failed" or exits non-zero on the first failure.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { createLocalJWKSet, jwtVerify } from "jose";

const here = new URL(".", import.meta.url).pathname;
const users = { alice: { groups: ["alpha"], airlock_role: "admin", email: "alice@example.com" }, ci: { groups: ["alpha"] } };
const child = spawn(process.execPath, [`${here}server.mjs`], {
  env: { ...process.env, IDP_USERS: JSON.stringify(users), IDP_AUDIENCE: "airlock-check" },
  stdio: ["pipe", "pipe", "inherit"],
});
let passed = 0;
const ok = (cond, what) => {
  if (!cond) throw new Error(`failed: ${what}`);
  passed++;
};

try {
  const lines = createInterface({ input: child.stdout });
  const [line] = await once(lines, "line");
  ok(line.startsWith("IDP_READY "), "IDP_READY line");
  const { issuer, jwks } = JSON.parse(line.slice("IDP_READY ".length));
  ok(jwks.keys.length > 0 && jwks.keys.every((k) => k.d), "private JWKs printed");

  const disc = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  ok(disc.issuer === issuer, "discovery issuer");
  const published = await (await fetch(disc.jwks_uri)).json();
  ok(published.keys[0].kid === jwks.keys[0].kid && !published.keys[0].d, "JWKS publishes the public key");
  const keySet = createLocalJWKSet(published);

  // client_credentials -> a JWT access token for the API audience.
  const cc = await (
    await fetch(disc.token_endpoint, {
      method: "POST",
      headers: { Authorization: `Basic ${Buffer.from("ci:ci-secret").toString("base64")}` },
      body: new URLSearchParams({ grant_type: "client_credentials", scope: "evaluations:read" }),
    })
  ).json();
  const at = await jwtVerify(cc.access_token, keySet, { issuer, audience: "airlock-check" });
  ok(at.protectedHeader.alg === "RS256" && at.protectedHeader.kid === jwks.keys[0].kid, "JWT alg and kid");
  ok(at.payload.sub === "ci" && at.payload.scope === "evaluations:read", "JWT sub and scope");
  ok(JSON.stringify(at.payload.groups) === '["alpha"]', "JWT carries IDP_USERS.ci claims");

  // Authorization code + PKCE, through the forms, with a cookie jar.
  const jar = new Map();
  const browse = async (url, init = {}) => {
    const res = await fetch(url, {
      ...init,
      redirect: "manual",
      headers: { ...init.headers, Cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
    return res;
  };
  const follow = async (res) => {
    while (res.status === 302 || res.status === 303) {
      const to = new URL(res.headers.get("location"), res.url || issuer);
      if (to.pathname === "/auth/callback") return to;
      res = await browse(to.href);
    }
    return res;
  };
  const submitForm = async (res, fields) => {
    const html = await res.text();
    const action = /<form[^>]*action="([^"]+)"/.exec(html)?.[1];
    ok(action, "a form on the page");
    const hidden = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    return browse(new URL(action, issuer).href, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ ...hidden, ...fields }),
    });
  };

  const verifier = randomBytes(32).toString("base64url");
  const challenge = createHash("sha256").update(verifier).digest("base64url");
  const redirectUri = "http://127.0.0.1:54321/auth/callback"; // any loopback port
  const auth = new URL(disc.authorization_endpoint);
  auth.search = new URLSearchParams({
    client_id: "airlock",
    response_type: "code",
    scope: "openid profile email",
    redirect_uri: redirectUri,
    state: "s1",
    nonce: "n1",
    code_challenge: challenge,
    code_challenge_method: "S256",
  }).toString();
  let page = await follow(await browse(auth.href));
  ok(page.status === 200, "login page");
  page = await follow(await submitForm(page, { login: "alice", password: "anything" }));
  ok(page.status === 200, "consent page");
  const callback = await follow(await submitForm(page, {}));
  ok(callback instanceof URL && callback.port === "54321", "redirected to the callback on the requested port");
  ok(callback.searchParams.get("state") === "s1", "state returned");

  const tok = await (
    await fetch(disc.token_endpoint, {
      method: "POST",
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code: callback.searchParams.get("code"),
        redirect_uri: redirectUri,
        code_verifier: verifier,
        client_id: "airlock",
        client_secret: "airlock-secret", // client_secret_post
      }),
    })
  ).json();
  const id = await jwtVerify(tok.id_token, keySet, { issuer, audience: "airlock" });
  ok(id.payload.sub === "alice" && id.payload.nonce === "n1", "ID token sub and nonce");
  ok(id.payload.preferred_username === "alice", "ID token preferred_username");
  ok(id.payload.email === "alice@example.com" && id.payload.airlock_role === "admin", "ID token email and role");
  ok(JSON.stringify(id.payload.groups) === '["alpha"]', "ID token groups");
  const me = await (await fetch(disc.userinfo_endpoint, { headers: { Authorization: `Bearer ${tok.access_token}` } })).json();
  ok(me.sub === "alice" && me.airlock_role === "admin", "userinfo");

  console.log(`${passed} passed, 0 failed`);
} catch (e) {
  console.error(e.message);
  console.log(`${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  child.stdin.end();
}
