#!/usr/bin/env node
// A test OpenID Provider for Airlock: oidc-provider (the certified implementation) with
// test users from IDP_USERS, the gateway's client "airlock" (authorization code + PKCE,
// loopback redirect URIs on any port) and a machine client "ci" (client_credentials,
// JWT access tokens for the audience IDP_AUDIENCE).
//
//   node server.mjs [--port N] [--jwks-file F]
//
// Prints one line on stdout once it serves:
//   IDP_READY {"issuer":"http://127.0.0.1:PORT","jwks":{"keys":[<private JWKs>]}}
// and serves until stdin closes or SIGTERM/SIGINT.
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

const SCOPES_FOR_CI = ["evaluations:read", "evaluations:write", "evaluations:cancel", "admin"];
// A resource indicator is an absolute URI; the JWT's aud is IDP_AUDIENCE.
const API_RESOURCE = "urn:airlock:api";

function fail(message) {
  process.stderr.write(`idp: ${message}\n`);
  process.exit(64);
}

function options() {
  let values;
  try {
    ({ values } = parseArgs({
      options: { port: { type: "string", default: "0" }, "jwks-file": { type: "string" } },
    }));
  } catch (e) {
    fail(e.message);
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port: not a port: ${values.port}`);

  let users = {};
  if (process.env.IDP_USERS) {
    try {
      users = JSON.parse(process.env.IDP_USERS);
    } catch (e) {
      fail(`IDP_USERS is not JSON: ${e.message}`);
    }
    if (users === null || typeof users !== "object" || Array.isArray(users)) fail("IDP_USERS must be a JSON object");
  }
  return {
    port,
    jwksFile: values["jwks-file"],
    users,
    audience: process.env.IDP_AUDIENCE || "airlock",
  };
}

async function keys(jwksFile) {
  if (jwksFile) {
    let jwks;
    try {
      jwks = JSON.parse(readFileSync(jwksFile, "utf8"));
    } catch (e) {
      fail(`--jwks-file ${jwksFile}: ${e.message}`);
    }
    if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) fail(`--jwks-file ${jwksFile}: no "keys"`);
    return jwks;
  }
  const { privateKey } = await generateKeyPair("RS256", { modulusLength: 2048, extractable: true });
  const jwk = await exportJWK(privateKey);
  const kid = `test-${Date.now().toString(36)}`;
  return { keys: [{ ...jwk, kid, alg: "RS256", use: "sig" }] };
}

/** Claims of a user: those in IDP_USERS (any other login has none but its name). */
function userClaims(users, login) {
  const extra = Object.hasOwn(users, login) ? users[login] : {};
  const claims = { sub: login, preferred_username: login, name: extra.name ?? login, ...extra };
  if (claims.email !== undefined && claims.email_verified === undefined) claims.email_verified = true;
  return claims;
}

function configuration({ users, audience, jwks }) {
  return {
    jwks,
    clients: [
      {
        client_id: "airlock",
        client_secret: "airlock-secret",
        // Native application type: http redirect URIs on loopback hosts match on any port
        // (RFC 8252 section 7.3), which is what a gateway on port 0 needs.
        application_type: "native",
        redirect_uris: ["http://127.0.0.1/auth/callback", "http://localhost/auth/callback"],
        post_logout_redirect_uris: ["http://127.0.0.1/", "http://localhost/"],
        grant_types: ["authorization_code", "refresh_token"],
        response_types: ["code"],
        token_endpoint_auth_method: "client_secret_basic", // client_secret_post is accepted too
      },
      {
        client_id: "ci",
        client_secret: "ci-secret",
        grant_types: ["client_credentials"],
        response_types: [],
        redirect_uris: [],
      },
    ],
    cookies: { keys: ["airlock-test-idp-cookie-key"] },
    claims: {
      openid: ["sub"],
      profile: ["preferred_username", "name", "groups", "airlock_role"],
      email: ["email", "email_verified"],
    },
    // ID tokens carry the profile and email claims in the code flow too, not only userinfo.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    findAccount(_ctx, sub) {
      return {
        accountId: sub,
        claims: () => userClaims(users, sub),
      };
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Only the machine client gets the API as its default resource; the browser
        // client's access token stays an ordinary one for userinfo.
        defaultResource(_ctx, client) {
          return client.clientId === "ci" ? API_RESOURCE : undefined;
        },
        useGrantedResource: () => false,
        getResourceServerInfo(_ctx, resource) {
          if (resource !== API_RESOURCE) throw new Provider.errors.InvalidTarget();
          return {
            scope: SCOPES_FOR_CI.join(" "),
            audience,
            accessTokenTTL: 3600,
            accessTokenFormat: "jwt",
            jwt: { sign: { alg: "RS256" } },
          };
        },
      },
    },
    // The ci client's JWT carries IDP_USERS["ci"] claims (e.g. groups, airlock_role).
    extraTokenClaims(_ctx, token) {
      if (token.kind === "ClientCredentials" && Object.hasOwn(users, token.clientId)) {
        const { sub: _sub, ...claims } = users[token.clientId];
        return claims;
      }
      return undefined;
    },
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 300,
      ClientCredentials: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    renderError(ctx, out) {
      ctx.type = "html";
      ctx.body = `<!doctype html><title>Error</title><h1>${escapeHtml(out.error)}</h1><p>${escapeHtml(out.error_description ?? "")}</p>`;
    },
  };
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function main() {
  const opts = options();
  const jwks = await keys(opts.jwksFile);

  // Bind first so that the issuer carries the real port.
  let handler = null;
  const server = createServer((req, res) => {
    if (handler) handler(req, res);
    else res.writeHead(503).end();
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, "127.0.0.1", resolve);
  }).catch((e) => fail(`cannot listen on 127.0.0.1:${opts.port}: ${e.message}`));

  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, configuration({ ...opts, jwks }));
  provider.on("server_error", (_ctx, err) => process.stderr.write(`idp: server error: ${err.stack ?? err}\n`));
  handler = provider.callback();

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.on("close", stop);
  process.stdin.resume();

  process.stdout.write(`IDP_READY ${JSON.stringify({ issuer, jwks })}\n`);
}

main().catch((e) => fail(e.stack ?? String(e)));
