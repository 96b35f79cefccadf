import { resolve } from "node:path";
import type { TestProject } from "vitest/node";
// @ts-expect-error plain ES module without types
import { startStack } from "../../scripts/stack.mjs";
// @ts-expect-error plain ES module without types
import { startIdp } from "../../scripts/idp.mjs";

export interface StackInfo {
  url: string;
  token: string;
  user: string;
  team: string;
  /** The test identity provider the gateway signs people in through. */
  issuer: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

/** The people of the test identity provider: their team and role come as claims. */
export const IDP_USERS = {
  alice: { groups: ["alpha"], airlock_role: "admin", email: "alice@example.com" },
  bob: { groups: ["alpha"], airlock_role: "viewer", email: "bob@example.com" },
};

const stops: (() => Promise<void>)[] = [];

export async function setup(project: TestProject) {
  const idp = await startIdp({ users: IDP_USERS });
  stops.push(idp.stop);
  const stack = await startStack({
    env: {
      AIRLOCK_MAX_CONCURRENT_RUNS: process.env.AIRLOCK_MAX_CONCURRENT_RUNS ?? "2",
      AIRLOCK_OIDC_ISSUER: idp.issuer,
      AIRLOCK_OIDC_CLIENT_ID: "airlock",
      AIRLOCK_OIDC_CLIENT_SECRET: "airlock-secret",
      AIRLOCK_COOKIE_SECURE: "false",
      // The gateway binds a loopback address, where the development sign-in is allowed.
      AIRLOCK_DEV_LOGIN: "true",
    },
  });
  stops.unshift(stack.stop);
  project.provide("stack", { url: stack.url, token: stack.token, user: stack.user, team: stack.team, issuer: idp.issuer });
}

export async function teardown() {
  for (const stop of stops) await stop();
  console.log(`\nScreenshots: ${resolve("test-results/screenshots")}\n`);
}
