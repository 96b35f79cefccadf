// Starts the test identity provider (crates/test-support/idp, oidc-provider) for browser
// tests: installs its packages when missing, spawns it, and waits for its one
// `IDP_READY {json}` line. It serves until its stdin closes.
import { spawn, spawnSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const frontend = resolve(new URL("..", import.meta.url).pathname);
export const IDP_DIR = resolve(frontend, "../crates/test-support/idp");

/**
 * @param {{ users: Record<string, object>, logFile?: string, timeoutMs?: number }} opts
 * @returns {Promise<{ issuer: string, stop: () => Promise<void> }>}
 */
export async function startIdp(opts) {
  if (!existsSync(join(IDP_DIR, "node_modules", "oidc-provider"))) {
    const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: IDP_DIR, stdio: "inherit" });
    if (r.status !== 0) throw new Error(`npm ci in ${IDP_DIR} failed`);
  }
  const logFile = opts.logFile ?? join(frontend, "test-results", "idp.log");
  mkdirSync(dirname(logFile), { recursive: true });
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(process.execPath, [join(IDP_DIR, "server.mjs")], {
    env: { ...process.env, IDP_USERS: JSON.stringify(opts.users) },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stderr.pipe(log);
  const exited = new Promise((res) => child.once("exit", (code, signal) => res({ code, signal })));
  const info = await new Promise((res, rej) => {
    let buf = "";
    const timer = setTimeout(() => rej(new Error(`The test IdP did not start (log: ${logFile})`)), opts.timeoutMs ?? 30000);
    child.stdout.on("data", (chunk) => {
      buf += chunk.toString();
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith("IDP_READY ")) {
          clearTimeout(timer);
          const ready = JSON.parse(line.slice("IDP_READY ".length));
          log.write(`[stdout] IDP_READY issuer ${ready.issuer}\n`);
          res(ready);
        }
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      rej(new Error(`The test IdP exited (${code ?? signal}) before it was ready (log: ${logFile})`));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin.end();
    const kill = setTimeout(() => child.kill("SIGTERM"), 10000);
    await exited;
    clearTimeout(kill);
    log.end();
  };
  return { issuer: info.issuer, stop };
}
