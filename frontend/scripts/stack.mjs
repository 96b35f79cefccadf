// Starts the real Airlock stack for browser tests and the benchmark: spawns the launcher
// (`airlock-stack`, or $AIRLOCK_STACK_BIN), which prints one `AIRLOCK_STACK {json}` line
// and serves until its stdin closes.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const frontend = resolve(new URL("..", import.meta.url).pathname);

export function stackBin() {
  return process.env.AIRLOCK_STACK_BIN ?? resolve(frontend, "../target/debug/airlock-stack");
}

/**
 * @param {{ env?: Record<string, string>, logFile?: string, timeoutMs?: number }} opts
 * @returns {Promise<{ url: string, token: string, user: string, team: string, stop: () => Promise<void> }>}
 */
export async function startStack(opts = {}) {
  const bin = stackBin();
  if (!existsSync(bin)) throw new Error(`The stack launcher is missing: ${bin} (build it, or set AIRLOCK_STACK_BIN)`);
  const dist = join(frontend, "dist");
  if (!existsSync(join(dist, "index.html"))) throw new Error("frontend/dist is missing: run `npm run build` first");
  const logFile = opts.logFile ?? join(frontend, "test-results", "stack.log");
  mkdirSync(dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(bin, [], {
    env: { ...process.env, AIRLOCK_STATIC_DIR: dist, ...(opts.env ?? {}) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stderr.pipe(log);
  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));

  const info = await new Promise((res, rej) => {
    let buf = "";
    const timer = setTimeout(() => rej(new Error(`The stack did not start within ${opts.timeoutMs ?? 240000} ms (log: ${logFile})`)), opts.timeoutMs ?? 240000);
    child.stdout.on("data", (chunk) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.write(`[stdout] ${line}\n`);
        if (line.startsWith("AIRLOCK_STACK ")) {
          clearTimeout(timer);
          res(JSON.parse(line.slice("AIRLOCK_STACK ".length)));
        }
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`The stack launcher exited (${code ?? signal}) before it was ready (log: ${logFile})`));
    });
  });

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin.end();
    const kill = setTimeout(() => child.kill("SIGTERM"), 30000);
    const hard = setTimeout(() => child.kill("SIGKILL"), 60000);
    await exited;
    clearTimeout(kill);
    clearTimeout(hard);
    log.end();
  };
  return { ...info, stop };
}

/** Chromium from Debian, headless, without anything that reaches the network. */
export const CHROMIUM = {
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
  ],
};
