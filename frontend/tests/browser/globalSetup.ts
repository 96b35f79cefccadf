import { resolve } from "node:path";
import type { TestProject } from "vitest/node";
// @ts-expect-error plain ES module without types
import { startStack } from "../../scripts/stack.mjs";

export interface StackInfo {
  url: string;
  token: string;
  user: string;
  team: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    stack: StackInfo;
  }
}

let stop: (() => Promise<void>) | null = null;

export async function setup(project: TestProject) {
  const stack = await startStack({
    env: { AIRLOCK_MAX_CONCURRENT_RUNS: process.env.AIRLOCK_MAX_CONCURRENT_RUNS ?? "2" },
  });
  stop = stack.stop;
  project.provide("stack", { url: stack.url, token: stack.token, user: stack.user, team: stack.team });
}

export async function teardown() {
  await stop?.();
  console.log(`\nScreenshots: ${resolve("test-results/screenshots")}\n`);
}
