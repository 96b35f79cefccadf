// UI benchmark (a measurement, not a test: nothing fails when a number is slow).
// Prints: initial JavaScript gzipped, first render of the evaluations list with 1,000
// evaluations, and frame times while 100,000 log lines stream into a run's page.
// Needs `npm run build` and the stack launcher (see scripts/stack.mjs).
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { CHROMIUM, startStack } from "../scripts/stack.mjs";

const root = resolve(new URL("..", import.meta.url).pathname);
const dist = join(root, "dist");
const EVALUATIONS = Number(process.env.BENCH_EVALUATIONS ?? 1000);
const LINES = Number(process.env.BENCH_LOG_LINES ?? 100000);
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];

function initialJs() {
  const html = readFileSync(join(dist, "index.html"), "utf8");
  const files = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]);
  let raw = 0;
  let gz = 0;
  for (const f of files) {
    const b = readFileSync(join(dist, f));
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
  }
  return { files, raw, gz };
}

async function api(stack, method, path, body, type = "application/yaml") {
  for (;;) {
    const res = await fetch(stack.url + path, {
      method,
      headers: { Authorization: `Bearer ${stack.token}`, ...(body ? { "Content-Type": type } : {}) },
      body,
    });
    if (res.status === 429) {
      await new Promise((r) => setTimeout(r, Number(res.headers.get("retry-after") ?? 1) * 1000));
      continue;
    }
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
}

async function pool(n, width, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < n) await fn(next++);
    }),
  );
}

async function main() {
  const js = initialJs();
  console.log(`initial JS: ${js.files.join(", ")}`);
  console.log(`BENCH initial_js_gzipped ${kb(js.gz)} (raw ${kb(js.raw)}; budget 300 KB)`);

  const stack = await startStack({
    logFile: join(root, "test-results", "bench-stack.log"),
    env: {
      AIRLOCK_SANDBOX_MAX_LINES_PER_SEC: "1000000",
      AIRLOCK_SANDBOX_MAX_OUTPUT_BYTES: String(256 * 1024 * 1024),
      AIRLOCK_MAX_CONCURRENT_RUNS: "2",
    },
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM.executablePath, args: CHROMIUM.args, headless: true });
  try {
    // 1. The list with 1,000 evaluations (each cancelled at once, so the machine stays quiet).
    const t0 = Date.now();
    await pool(EVALUATIONS, 8, async (i) => {
      const e = await api(
        stack,
        "POST",
        "/api/v1/evaluations",
        `name: bench-${String(i).padStart(4, "0")}\nimage: alpine\ncommand: ["true"]\nlabels: {bench: list, shard: s${i % 7}}\n`,
      );
      await api(stack, "POST", `/api/v1/evaluations/${e.id}/cancel`).catch(() => undefined);
    });
    console.log(`submitted ${EVALUATIONS} evaluations in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await ctx.addInitScript(
      ({ token }) => {
        sessionStorage.setItem("airlock.token", token);
        new MutationObserver((_, obs) => {
          const rows = document.querySelectorAll('[data-testid="evaluation-row"]');
          if (rows.length > 0 && window.__firstRows === undefined) {
            window.__firstRows = performance.now();
            window.__rowCount = rows.length;
            obs.disconnect();
          }
        }).observe(document, { childList: true, subtree: true });
      },
      { token: stack.token },
    );
    const page = await ctx.newPage();
    for (const limit of [50, 200]) {
      const times = [];
      let rows = 0;
      for (let i = 0; i < 5; i++) {
        await page.goto(`${stack.url}/?limit=${limit}`);
        await page.waitForFunction(() => window.__firstRows !== undefined, null, { timeout: 60000 });
        times.push(await page.evaluate(() => window.__firstRows));
        rows = await page.evaluate(() => window.__rowCount);
      }
      console.log(
        `BENCH list_first_render ${median(times).toFixed(0)} ms (median of 5 cold loads, ${EVALUATIONS} evaluations, page of ${rows} rows; from navigation start)`,
      );
    }

    // 2. An evaluation page with 10,000 runs (cancelled at once: only the table matters here).
    const tasks = Array.from({ length: 10000 }, (_, i) => `  - {id: t${i}, input: ${i}}`).join("\n");
    const big = await api(stack, "POST", "/api/v1/evaluations", `name: bench-10k-runs\nimage: alpine\ncommand: ["true"]\ntasks:\n${tasks}\n`);
    await api(stack, "POST", `/api/v1/evaluations/${big.id}/cancel`).catch(() => undefined);
    // Measure the page, not the platform cancelling 10,000 runs: wait until that is done.
    const settleDeadline = Date.now() + 300000;
    while (Date.now() < settleDeadline) {
      const cur = await api(stack, "GET", `/api/v1/evaluations/${big.id}`);
      if (cur.finished_at) break;
      await new Promise((r) => setTimeout(r, 1000));
    }
    const evalTimes = [];
    for (let i = 0; i < 3; i++) {
      await page.goto(`${stack.url}/evaluations/${big.id}`);
      await page.locator('[data-testid="run-row"]').first().waitFor({ timeout: 60000 });
      evalTimes.push(await page.evaluate(() => performance.now()));
    }
    const scrollOnce = () => page.evaluate(async () => {
      const el = document.querySelector(".runs-table");
      el.scrollTop = 0;
      const frames = [];
      let last = performance.now();
      const end = el.scrollHeight - el.clientHeight;
      await new Promise((done) => {
        const step = (t) => {
          frames.push(t - last);
          last = t;
          el.scrollTop = Math.min(end, el.scrollTop + 900);
          if (el.scrollTop >= end - 1 || frames.length > 2000) done();
          else requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
      });
      return frames.slice(1);
    });
    const firstPass = await scrollOnce();
    const scroll = await scrollOnce();
    const sortStart = Date.now();
    await page.getByLabel("Sort by").selectOption("duration_desc");
    // The server sorts: wait for the first page in the new order.
    await page.getByTestId("runs-shown").getByText(/^200 of 10000 shown$/).waitFor({ timeout: 60000 });
    const sortMs = Date.now() - sortStart;
    console.log(
      `BENCH evaluation_10k_runs first rows ${median(evalTimes).toFixed(0)} ms (median of 3 loads, from navigation start; the first page of 200 runs); scrolling the rows read 900 px per frame (reaching the end reads the next page): first pass mean frame ${(firstPass.reduce((a, b) => a + b, 0) / firstPass.length).toFixed(1)} ms (p95 ${pct(firstPass, 0.95).toFixed(1)}), second pass mean ${(scroll.reduce((a, b) => a + b, 0) / scroll.length).toFixed(1)} ms (median ${median(scroll).toFixed(1)}, p95 ${pct(scroll, 0.95).toFixed(1)}) over ${scroll.length} frames; re-sort by duration on the server ${sortMs} ms`,
    );

    // 3. 100,000 log lines streaming into an open run page.
    const spec = `name: bench-log
image: alpine
command:
  - sh
  - -c
  - |
    sleep 4
    awk 'BEGIN { for (i = 1; i <= ${LINES}; i++) printf "line %d of the benchmark log, some words to make it realistic\\n", i }'
resources: {cpu: "1", memory: 256Mi}
timeout: 10m
`;
    const e = await api(stack, "POST", "/api/v1/evaluations", spec);
    const runId = e.runs[0].id;
    await page.goto(`${stack.url}/runs/${runId}`);
    await page.getByTestId("log-count").waitFor({ timeout: 60000 });
    await page.evaluate(() => {
      window.__frames = [];
      let last = performance.now();
      const tick = (t) => {
        window.__frames.push(t - last);
        last = t;
        if (!window.__stopFrames) requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
    const started = Date.now();
    await page.waitForFunction(
      (n) => {
        const m = /(\d+) lines/.exec(document.querySelector('[data-testid="log-count"]')?.textContent ?? "");
        return m && Number(m[1]) >= n;
      },
      LINES,
      { timeout: 600000, polling: 250 },
    );
    const streamSecs = (Date.now() - started) / 1000;
    const frames = await page.evaluate(() => {
      window.__stopFrames = true;
      return window.__frames.slice(1);
    });
    const following = await page.getByRole("button", { name: "Pause following" }).isVisible();
    const mean = frames.reduce((a, b) => a + b, 0) / frames.length;
    console.log(
      `BENCH log_frame_time mean ${mean.toFixed(1)} ms, median ${median(frames).toFixed(1)} ms, p95 ${pct(frames, 0.95).toFixed(1)} ms, max ${Math.max(...frames).toFixed(0)} ms over ${frames.length} frames while ${LINES} lines streamed in (${streamSecs.toFixed(1)} s; following the tail: ${following})`,
    );
    // Responsiveness with everything loaded: a search over all lines.
    const t = await page.evaluate(async () => {
      const input = document.querySelector('input[type="search"]');
      const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, "value").set;
      const s = performance.now();
      setter.call(input, "line 99999 ");
      input.dispatchEvent(new Event("input", { bubbles: true }));
      await new Promise((r) => {
        const check = () => (/^1 of /.test(document.querySelector('[data-testid="log-count"]').textContent) ? r() : requestAnimationFrame(check));
        check();
      });
      return performance.now() - s;
    });
    console.log(`BENCH log_search ${t.toFixed(0)} ms to filter ${LINES} lines (includes a 120 ms typing debounce)`);
  } finally {
    await browser.close();
    await stack.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
