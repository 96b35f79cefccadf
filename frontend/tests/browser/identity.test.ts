// Signing in through single sign-on (the test identity provider), the session cookie,
// signing out, API tokens, and what admins and viewers see.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { idpLogin, launch, meWith, quickSpec, shot, ssoSignedIn, stack, until } from "./helpers";

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

const unique = (p: string) => `${p}-${Date.now().toString(36)}`;

const mainNav = (page: Page) => page.getByRole("navigation", { name: "Main" }).getByRole("link");

async function sessionCookie(page: Page) {
  return (await page.context().cookies(stack().url)).find((c) => c.name === "airlock_session");
}

describe("single sign-on", () => {
  it("signs alice in through the identity provider, back to the page she asked for, in an HttpOnly cookie that survives a reload; signing out ends it", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    await page.goto(stack().url + "/system");
    await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
    await shot(page, "20-sign-in-sso");
    await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
    await idpLogin(page, "alice");

    // Back on the page she wanted, as admin of team alpha.
    await page.getByRole("heading", { name: "System" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/system");
    const who = page.getByTestId("identity");
    await who.getByText("alice").waitFor();
    expect(await who.textContent()).toMatch(/team alpha.*admin/);

    // The session is an HttpOnly cookie: scripts cannot read it, and no token is stored.
    const cookie = await sessionCookie(page);
    expect(cookie?.httpOnly).toBe(true);
    expect(cookie?.sameSite).toBe("Lax");
    expect(await page.evaluate(() => document.cookie)).not.toContain("airlock_session");
    expect(await page.evaluate(() => sessionStorage.getItem("airlock.token"))).toBeNull();

    await page.reload();
    await page.getByRole("heading", { name: "System" }).waitFor();
    await who.getByText("alice").waitFor();

    // Signing out ends the session at the gateway, not only in this page.
    const jar = `airlock_session=${cookie!.value}`;
    expect((await meWith({ cookie: jar })).status).toBe(200);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
    expect(await sessionCookie(page)).toBeUndefined();
    expect((await meWith({ cookie: jar })).status).toBe(401);
    await page.goto(stack().url + "/tokens");
    await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
    expect(await page.getByTestId("identity").count()).toBe(0);
    await ctx.close();
  });

  it("says in plain words why a cancelled sign-in did not succeed", async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(stack().url + "/");
    await page.getByRole("link", { name: "Sign in with single sign-on" }).click();
    await page.waitForURL((u) => u.pathname.startsWith("/interaction/"));
    await page.getByRole("link", { name: "[ Cancel ]" }).click();
    await page.waitForURL((u) => u.pathname === "/sign-in" && u.searchParams.get("error") === "access_denied");
    await page.getByTestId("sign-in-error").getByText("The identity provider did not let you in").waitFor();
    await shot(page, "21-sign-in-cancelled");
    await ctx.close();
  });
});

describe("sessions", () => {
  it("sends the page to sign in, saying why, when its session is ended elsewhere", async () => {
    const page = await ssoSignedIn(browser, "alice", "/system");
    await page.getByRole("heading", { name: "System" }).waitFor();
    // Another tab signs out: the cookie's session is deleted at the gateway.
    const jar = `airlock_session=${(await sessionCookie(page))!.value}`;
    const me = await meWith({ cookie: jar });
    const out = await fetch(stack().url + "/auth/logout", {
      method: "POST",
      headers: { Cookie: jar, "X-CSRF-Token": String(me.json!.csrf_token) },
    });
    expect(out.status).toBe(204);
    // The next request of this page is refused, and the page says so.
    await mainNav(page).getByText("API tokens").click();
    await page.getByTestId("sign-in-error").getByText("Your session has ended").waitFor();
    await page.getByRole("link", { name: "Sign in with single sign-on" }).waitFor();
    await page.context().close();
  });

  it("signs in with the development sign-in where the gateway allows it", async () => {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(stack().url + "/tokens");
    await page.getByRole("heading", { name: "Development sign-in" }).waitFor();
    await page.getByLabel("User").fill("carol");
    await page.getByLabel("Team").fill("beta");
    await page.getByLabel("Role").selectOption("researcher");
    await page.getByRole("button", { name: "Enter as this user" }).click();
    await page.getByRole("heading", { name: "API tokens" }).waitFor();
    expect(await page.getByTestId("identity").textContent()).toMatch(/carol.*team beta.*researcher/);
    // A researcher may give her tokens the evaluation scopes, not admin.
    expect(await page.getByRole("checkbox").count()).toBe(3);
    // Unsafe requests of this cookie session carry the CSRF token: creating a token works.
    await page.getByLabel("Name", { exact: true }).fill("dev");
    await page.getByRole("button", { name: "Create token" }).click();
    await page.getByTestId("secret-once").waitFor();
    await ctx.close();
  });
});

describe("API tokens", () => {
  it("creates a token shown once, which works from a program until it is revoked", async () => {
    const page = await ssoSignedIn(browser, "alice", "/");
    await mainNav(page).getByText("API tokens").click();
    await page.getByRole("heading", { name: "API tokens" }).waitFor();
    // An admin may give every scope.
    expect(await page.getByRole("checkbox").count()).toBe(4);

    const name = unique("ci");
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByRole("checkbox", { name: /evaluations:write/ }).check();
    await page.getByLabel(/^Expires/).fill(new Date(Date.now() + 7 * 86400_000).toISOString().slice(0, 10));
    await page.getByRole("button", { name: "Create token" }).click();
    const once = page.getByTestId("secret-once");
    await once.getByText("you will not see it again").waitFor();
    const secret = await page.getByTestId("token-secret").inputValue();
    expect(secret).toMatch(/^alk_/);
    await shot(page, "22-token-created");

    const me = await meWith({ token: secret });
    expect(me.status).toBe(200);
    expect(me.json).toMatchObject({ user: "alice", team: "alpha", auth: "api_token" });
    expect(me.json!.scopes).toEqual(["evaluations:read", "evaluations:write"]);

    await page.getByRole("button", { name: "I have copied it" }).click();
    await once.waitFor({ state: "detached" });
    expect(await page.content()).not.toContain(secret);
    const row = page.getByTestId(`token-${name}`);
    await row.getByText(secret.slice(0, 8)).waitFor();
    expect(await row.textContent()).toContain("evaluations:read, evaluations:write");
    // After a reload the list shows when the program used it.
    await page.reload();
    await row.waitFor();
    expect(await row.getByTestId("token-last-used").textContent()).not.toBe("never");
    expect(await row.getByTestId("token-state").textContent()).toBe("active");

    await row.getByRole("button", { name: "Revoke" }).click();
    await row.getByRole("button", { name: "Revoke token" }).click();
    await row.getByTestId("token-state").getByText(/^revoked/).waitFor();
    expect((await meWith({ token: secret })).status).toBe(401);
    await page.context().close();
  });
});

describe("administration", () => {
  it("shows alice her sign-in in the audit log, refuses to demote the last admin, and issues a service account's token", async () => {
    const page = await ssoSignedIn(browser, "alice", "/");
    await mainNav(page).getByText("Audit log").click();
    const login = page.getByTestId("audit-row").filter({ hasText: "Sign-in" }).filter({ hasText: "alice" }).first();
    await login.waitFor();
    expect(await login.textContent()).toContain("success");
    await page.getByLabel("Action").selectOption("login");
    await page.waitForURL(/action=login/);
    await until("only sign-ins listed", async () => {
      const actions = await page.getByTestId("audit-row").locator("td:nth-child(3)").allTextContents();
      return actions.length > 0 && actions.every((a) => a === "Sign-in");
    });
    await shot(page, "23-audit-log");

    await mainNav(page).getByText("Team").click();
    const role = page.getByLabel("Role of alice");
    await role.waitFor();
    await role.selectOption("viewer");
    await page.getByTestId("member-alice").getByRole("alert").getByText("at least one admin").waitFor();
    expect(await role.inputValue()).toBe("admin");

    await mainNav(page).getByText("Service accounts").click();
    const name = unique("bot");
    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.getByLabel("Role", { exact: true }).selectOption("researcher");
    await page.getByRole("button", { name: "Create service account" }).click();
    const account = page.getByTestId(`sa-${name}`);
    // A researcher's token cannot be given admin.
    await account.getByRole("checkbox", { name: /evaluations:read/ }).waitFor();
    expect(await account.getByRole("checkbox").count()).toBe(3);
    await account.getByLabel("Name", { exact: true }).fill("nightly");
    await account.getByRole("button", { name: "Create token" }).click();
    const secret = await account.getByTestId("token-secret").inputValue();
    const me = await meWith({ token: secret });
    expect(me.status).toBe(200);
    expect(me.json).toMatchObject({ user: name, kind: "service", role: "researcher" });
    await shot(page, "24-service-account-token");
    await page.context().close();
  });

  it("shows bob, a viewer, no admin pages, and offers him read-only tokens", async () => {
    const page = await ssoSignedIn(browser, "bob", "/tokens");
    await page.getByRole("heading", { name: "API tokens" }).waitFor();
    expect(new URL(page.url()).pathname).toBe("/tokens");
    const labels = await mainNav(page).allTextContents();
    expect(labels).toContain("API tokens");
    for (const admin of ["Team", "Service accounts", "Audit log"]) expect(labels).not.toContain(admin);
    const boxes = page.getByRole("checkbox");
    expect(await boxes.count()).toBe(1);
    expect(await boxes.first().isChecked()).toBe(true);
    expect(await page.locator("fieldset").textContent()).toContain("evaluations:read");
    // The API is the enforcement: a typed-in admin page is refused.
    await page.goto(stack().url + "/admin/audit");
    await page.getByRole("alert").getByText(/403/).waitFor();
    await page.context().close();
  });
});

describe("live over the session", () => {
  it("submits from the editor and follows the runs over the cookie-authenticated WebSocket", async () => {
    const page = await ssoSignedIn(browser, "alice", "/evaluations/new");
    const name = unique("cookie-live");
    const content = page.locator(".cm-content");
    await content.waitFor();
    await content.fill(quickSpec(name, 0.5));
    await page.getByRole("button", { name: "Submit evaluation" }).click();
    await page.waitForURL(/\/evaluations\/[0-9a-f-]{36}$/);
    await page.getByRole("heading", { name }).waitFor();
    // No token anywhere in the page: the stream is authenticated by the cookie alone.
    expect(await page.evaluate(() => sessionStorage.getItem("airlock.token"))).toBeNull();
    await page.getByTestId("live-indicator").getByText("Live").waitFor();
    await page.getByTestId("eval-progress").getByText("2 / 2 runs done").waitFor({ timeout: 90_000 });
    await page.locator(".page-head .badge").first().getByText("succeeded").waitFor();
    await page.context().close();
  });
});
