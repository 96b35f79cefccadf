import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { inject } from "vitest";
import type { Evaluation } from "../../src/api/types";
// @ts-expect-error plain ES module without types
import { CHROMIUM } from "../../scripts/stack.mjs";

export const stack = () => inject("stack");

export const SCREENSHOTS = resolve("test-results/screenshots");

export async function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM.executablePath, args: CHROMIUM.args, headless: true });
}

export async function call<T>(method: string, path: string, body?: string, contentType = "application/json"): Promise<{ status: number; json: T }> {
  const s = stack();
  const res = await fetch(s.url + path, {
    method,
    headers: { Authorization: `Bearer ${s.token}`, ...(body ? { "Content-Type": contentType } : {}) },
    body,
  });
  const text = await res.text();
  return { status: res.status, json: (text ? JSON.parse(text) : null) as T };
}

export async function submit(yaml: string): Promise<Evaluation> {
  const r = await call<Evaluation>("POST", "/api/v1/evaluations", yaml, "application/yaml");
  if (r.status !== 201) throw new Error(`submit answered ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json;
}

/** Polls `check` until it returns a value other than undefined/false, or the deadline passes. */
export async function until<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function finished(id: string, timeoutMs = 90_000): Promise<Evaluation> {
  return until(
    `evaluation ${id} to finish`,
    async () => {
      const r = await call<Evaluation>("GET", `/api/v1/evaluations/${id}`);
      return r.json.finished_at ? r.json : undefined;
    },
    timeoutMs,
  );
}

/** A fresh browser context (its own session storage), signed in through the form. */
export async function signedIn(browser: Browser, path = "/"): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  const s = stack();
  await page.goto(s.url + path);
  await page.getByLabel("API token").fill(s.token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("identity").getByText(s.user).waitFor();
  return page;
}

export async function shot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: resolve(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/** A spec whose runs each print a line and report `accuracy` = value. */
export function quickSpec(name: string, value: number, tasks = ["easy", "hard"], epochs = 1): string {
  return `name: ${name}
image: alpine
command:
  - sh
  - -c
  - |
    echo "hello from $AIRLOCK_TASK_ID epoch $AIRLOCK_EPOCH"
    echo "a warning line" >&2
    echo '{"type":"progress","fraction":1,"message":"done"}' >> "$AIRLOCK_EVENTS"
    echo '{"type":"score","name":"accuracy","value":${value}}' >> "$AIRLOCK_EVENTS"
tasks:
${tasks.map((t) => `  - id: ${t}\n    input: {}`).join("\n")}
epochs: ${epochs}
resources: {cpu: 500m, memory: 128Mi}
timeout: 2m
labels: {suite: browser}
`;
}

/** A spec whose runs print a line and then sleep (until cancelled). */
export function sleepySpec(name: string, tasks = 1): string {
  return `name: ${name}
image: alpine
command: [sh, -c, "echo started; sleep 300"]
tasks: [${Array.from({ length: tasks }, (_, i) => `{id: nap${i + 1}, input: {}}`).join(", ")}]
resources: {cpu: 100m, memory: 64Mi}
timeout: 10m
labels: {suite: browser}
`;
}

/**
 * A fresh browser context that opens `path`, is asked to sign in, and signs in as `login`
 * through single sign-on: the gateway sends it to the test identity provider's login
 * form and consent screen, and back.
 */
export async function ssoSignedIn(browser: Browser, login: string, path = "/"): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await ctx.newPage();
  await page.goto(stack().url + path);
  await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
  await idpLogin(page, login);
  await page.getByTestId("identity").getByText(login).waitFor();
  return page;
}

/** The identity provider's login form, then its consent screen. */
export async function idpLogin(page: Page, login: string): Promise<void> {
  const issuer = new URL(stack().issuer);
  await page.waitForURL((u) => u.host === issuer.host && u.pathname.startsWith("/interaction/"));
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill("any password will do");
  await page.locator('button[type="submit"]').click();
  await page.getByRole("button", { name: "Continue" }).click();
}

/** GET /api/v1/me from Node with a bearer token or a cookie: the status and the body. */
export async function meWith(auth: { token?: string; cookie?: string }): Promise<{ status: number; json: Record<string, unknown> | null }> {
  const headers: Record<string, string> = {};
  if (auth.token) headers.Authorization = `Bearer ${auth.token}`;
  if (auth.cookie) headers.Cookie = auth.cookie;
  const res = await fetch(stack().url + "/api/v1/me", { headers });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}
