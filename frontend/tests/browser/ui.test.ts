import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Browser, Page } from "playwright-core";
import { call, finished, launch, quickSpec, shot, signedIn, sleepySpec, stack, submit, until } from "./helpers";
import type { Evaluation, EvaluationList } from "../../src/api/types";
import { TEMPLATES } from "../../src/lib/templates";
import { CuttableProxy } from "./proxy";

let browser: Browser;
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  await browser?.close();
});

const unique = (p: string) => `${p}-${Date.now().toString(36)}`;

async function headStatus(page: Page) {
  return page.locator(".page-head .badge").first();
}

describe("signing in", () => {
  it("refuses a bad token with the server's message, then signs in and shows who and which team", async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    await page.goto(stack().url);
    await page.getByRole("heading", { name: "Sign in" }).waitFor();
    await shot(page, "01-sign-in");
    await page.getByLabel("API token").fill("alk_not_a_real_token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("alert").waitFor();
    expect(await page.getByRole("alert").textContent()).toMatch(/401/);
    await page.getByLabel("API token").fill(stack().token);
    await page.getByRole("button", { name: "Sign in" }).click();
    const who = page.getByTestId("identity");
    await who.getByText(stack().user).waitFor();
    expect(await who.textContent()).toContain(stack().team);
    await page.getByRole("heading", { name: "Evaluations" }).waitFor();
    await ctx.close();
  });
});

describe("the editor", () => {
  it("places a validation error at its line, then submits and watches the runs succeed live", async () => {
    const page = await signedIn(browser, "/evaluations/new");
    const name = unique("editor");
    const bad = quickSpec(name, 0.75, ["easy", "easy"]);
    const badLine = bad.split("\n").findIndex((l, i, all) => l.includes("- id: easy") && all.slice(0, i).some((x) => x.includes("- id: easy"))) + 1;
    const content = page.locator(".cm-content");
    await content.waitFor();
    await content.fill(bad);
    await page.getByRole("button", { name: "Submit evaluation" }).click();
    const err = page.getByTestId("field-error").first();
    await err.waitFor();
    expect(await err.getAttribute("data-line")).toBe(String(badLine));
    expect(await err.textContent()).toContain(`Line ${badLine}`);
    expect(await err.textContent()).toContain("tasks[1].id");
    // The editor marks that very line.
    const marked = page.locator(".cm-line").nth(badLine - 1).locator(".cm-lintRange-error");
    await marked.waitFor();
    await shot(page, "02-editor-validation-error");

    await content.fill(quickSpec(name, 0.75, ["easy", "hard"], 2));
    await page.getByRole("button", { name: "Submit evaluation" }).click();
    await page.waitForURL(/\/evaluations\/[0-9a-f-]{36}$/);
    await page.getByRole("heading", { name }).waitFor();
    await page.getByTestId("live-indicator").getByText("Live").waitFor();
    // No reload from here on: the stream carries every change.
    await page.getByTestId("eval-progress").getByText("4 / 4 runs done").waitFor({ timeout: 90_000 });
    await (await headStatus(page)).getByText("succeeded").waitFor();
    expect(await page.locator('[data-testid="run-row"][data-state="succeeded"]').count()).toBe(4);
    expect(await page.getByTestId("eval-finished").textContent()).not.toBe("—");
    const card = page.locator('[data-testid="score-card"][data-name="accuracy"]');
    await card.getByTestId("score-count").getByText("4").waitFor();
    expect(await card.getByTestId("score-mean").textContent()).toBe("0.750");
    expect(await card.locator("svg .bar").count()).toBeGreaterThan(0);
    await page.locator("details.spec summary").click();
    expect(await page.locator("details.spec pre").textContent()).toContain(name);
    await shot(page, "03-evaluation");

    // A run's page: timeline, log, filters and scores.
    await page.getByRole("link", { name: "easy" }).first().click();
    await page.waitForURL(/\/runs\//);
    await page.getByText("hello from easy epoch", { exact: false }).first().waitFor();
    await page.getByTestId("timeline-4").getByText("succeeded").waitFor();
    await page.getByTestId("run-scores").getByText("accuracy = 0.750").waitFor();
    await page.getByTestId("run-progress").getByText("100%").waitFor();
    await shot(page, "04-run");
    await page.getByRole("checkbox", { name: /stdout/ }).uncheck();
    await page.getByText("a warning line").first().waitFor();
    // The stderr line was already shown: wait for the filter to hide stdout.
    await until("stdout lines hidden", async () => (await page.getByText("hello from easy epoch").count()) === 0);
    await page.getByRole("checkbox", { name: /stdout/ }).check();
    await page.getByLabel("Search").fill("HELLO FROM");
    await page.getByTestId("log-count").getByText(/^1 of \d+ lines$/).waitFor();
    await page.context().close();
  });
});

describe("the evaluations list", () => {
  it("shows a new evaluation and its progress live, and keeps filters in the URL", async () => {
    const page = await signedIn(browser, "/");
    await page.getByTestId("live-indicator").getByText("Live").waitFor();
    const name = unique("listed");
    const e = await submit(quickSpec(name, 1));
    const row = page.locator(`[data-testid="evaluation-row"][data-id="${e.id}"]`);
    await row.waitFor({ timeout: 30_000 });
    await row.getByTestId("progress").getByText("2 / 2").waitFor({ timeout: 90_000 });
    await row.locator(".badge").getByText("succeeded").waitFor();
    expect(await row.getByTestId("score").textContent()).toContain("accuracy");
    await shot(page, "05-evaluations");

    await page.getByLabel("Name", { exact: true }).fill(name);
    await page.waitForURL(new RegExp(`name=${name}`));
    await until("the list to show only the match", async () => (await page.getByTestId("evaluation-row").count()) === 1);
    await page.reload();
    await page.locator(`[data-testid="evaluation-row"][data-id="${e.id}"]`).waitFor();
    expect(await page.getByLabel("Name", { exact: true }).inputValue()).toBe(name);
    expect(await page.getByTestId("evaluation-row").count()).toBe(1);
    await page.getByLabel("Status", { exact: true }).selectOption("running");
    await page.waitForURL(/status=running/);
    await page.getByText("No evaluation matches these filters").waitFor();
    await page.context().close();
  });
});

describe("editing a copy", () => {
  it("opens an evaluation's spec in the editor as YAML, and a template replaces it", async () => {
    const name = unique("copied");
    const e = await submit(quickSpec(name, 0.5));
    const page = await signedIn(browser, `/evaluations/${e.id}`);
    await page.getByRole("link", { name: "Edit as new" }).click();
    await page.waitForURL(/\/evaluations\/new\?from=/);
    const content = page.locator(".cm-content");
    await content.getByText(`name: ${name}`).waitFor();
    expect(await content.textContent()).toContain("epochs: 1");
    await page.getByLabel("Start from a template").selectOption("graded");
    await content.getByText("name: graded").waitFor();
    await page.context().close();
  });
});

describe("paging", () => {
  it("pages through a filtered, sorted list with the cursor in the URL", async () => {
    const prefix = unique("paged");
    for (let i = 0; i < 55; i++) {
      const e = await submit(`name: ${prefix}-${String(i).padStart(2, "0")}\nimage: alpine\ncommand: ["true"]\n`);
      await call("POST", `/api/v1/evaluations/${e.id}/cancel`);
    }
    const page = await signedIn(browser, `/?name=${prefix}&sort=name_desc`);
    const rows = page.getByTestId("evaluation-row");
    await until("a full first page", async () => (await rows.count()) === 50);
    expect(await rows.first().locator(".name").textContent()).toBe(`${prefix}-54`);
    await page.getByRole("button", { name: "Next page →" }).click();
    await page.waitForURL(/cursor=/);
    await until("the last five", async () => (await rows.count()) === 5);
    expect(await rows.last().locator(".name").textContent()).toBe(`${prefix}-00`);
    expect(await page.getByRole("button", { name: "Next page →" }).isDisabled()).toBe(true);
    await page.getByRole("button", { name: "← Previous page" }).click();
    await until("the first page again", async () => (await rows.count()) === 50 && !page.url().includes("cursor="));
    expect(await rows.first().locator(".name").textContent()).toBe(`${prefix}-54`);
    await page.context().close();
  });
});

describe("waiting, cancelling and re-running", () => {
  it("says why a run waits, cancels after confirmation, and re-runs the same spec", async () => {
    // The stack runs two at once: the third run waits, and says so.
    const name = unique("sleepy");
    const e = await submit(sleepySpec(name, 3));
    const page = await signedIn(browser, `/evaluations/${e.id}`);
    try {
      await waitCancelRerun(page, e, name);
    } finally {
      // Whatever happened, free the slots for the tests that follow.
      await call("POST", `/api/v1/evaluations/${e.id}/cancel`);
      await page.context().close();
    }
  });

  async function waitCancelRerun(page: Page, e: Evaluation, name: string) {
    await until("two running runs", async () => (await page.locator('[data-testid="run-row"][data-state="running"]').count()) === 2, 60_000);
    const waiting = page.locator('[data-testid="run-row"][data-state="scheduling"]');
    await waiting.waitFor();
    expect(await waiting.locator(".c-reason").textContent()).toMatch(/^Waiting: capacity full: 2 of 2 running/);
    // The system view answers the same question.
    await page.getByRole("link", { name: "System" }).click();
    await page.getByTestId("sys-why").getByText(/Capacity is full \(2 of 2 running\)/).waitFor();
    expect(await page.getByTestId("sys-queued").textContent()).toBe("1");
    await shot(page, "08-system-capacity-full");
    await page.goBack();
    await page.getByRole("heading", { name }).waitFor();

    await page.getByRole("button", { name: "Cancel" }).click();
    await page.getByRole("alertdialog").waitFor();
    await page.getByRole("button", { name: "Yes, cancel it" }).click();
    await (await headStatus(page)).getByText("cancelled").waitFor({ timeout: 60_000 });
    await until("every run cancelled", async () => (await page.locator('[data-testid="run-row"][data-state="cancelled"]').count()) === 3, 60_000);
    expect(await page.getByRole("button", { name: "Cancel" }).isDisabled()).toBe(true);
    await shot(page, "06-cancelled");

    await page.getByRole("button", { name: "Re-run" }).click();
    await page.waitForURL((u) => /\/evaluations\/[0-9a-f-]{36}$/.test(u.pathname) && !u.pathname.endsWith(e.id));
    await page.getByRole("heading", { name }).waitFor();
    const rerun = new URL(page.url()).pathname.split("/").pop()!;
    const r = await call<{ spec: { command: string[] }; run_count: number }>("GET", `/api/v1/evaluations/${rerun}`);
    expect(r.json.spec.command).toEqual(e.spec.command);
    expect(r.json.run_count).toBe(3);
    expect((await call("POST", `/api/v1/evaluations/${rerun}/cancel`)).status).toBe(202);
    await (await headStatus(page)).getByText("cancelled").waitFor({ timeout: 60_000 });
  }

  it("explains a failed run in plain words", async () => {
    const e = await submit(`name: ${unique("failing")}
image: alpine
command: [sh, -c, "echo 'something broke' >&2; exit 3"]
resources: {cpu: 100m, memory: 64Mi}
timeout: 1m
`);
    const page = await signedIn(browser, `/evaluations/${e.id}`);
    const row = page.locator('[data-testid="run-row"][data-state="failed"]');
    await row.waitFor({ timeout: 60_000 });
    expect(await row.locator(".c-reason").textContent()).toContain("The program exited with code 3.");
    await (await headStatus(page)).getByText("failed").waitFor();
    await page.context().close();
  });
});

describe("a large evaluation", () => {
  it("reads its runs a page at a time and filters them on the server", async () => {
    const name = unique("large");
    const tasks = ["a", "b", "c", "d", "e"].map((t) => `  - {id: ${t}}`).join("\n");
    const e = await submit(`name: ${name}\nimage: alpine\ncommand: ["sleep", "600"]\nepochs: 50\ntasks:\n${tasks}\n`);
    expect(e.runs).toHaveLength(100);
    const page = await signedIn(browser, `/evaluations/${e.id}`);
    try {
      await page.getByTestId("runs-shown").getByText("200 of 250 shown").waitFor();
      await page.getByRole("button", { name: "Show 50 more" }).click();
      await page.getByTestId("runs-shown").getByText("250 shown").waitFor();
      expect(await page.getByRole("button", { name: /more$/ }).count()).toBe(0);
      // The stack runs two at once: the filter asks the server for those two.
      await until("two runs running", async () => (await call<Evaluation>("GET", `/api/v1/evaluations/${e.id}?runs=false`)).json.counts.running === 2);
      await page.locator("#runs-state").selectOption("running");
      await page.getByTestId("runs-shown").getByText("2 shown").waitFor();
      expect(await page.locator('[data-testid="run-row"][data-state="running"]').count()).toBe(2);
    } finally {
      await call("POST", `/api/v1/evaluations/${e.id}/cancel`);
      await page.context().close();
    }
    await finished(e.id);
  });
});

describe("starter templates", () => {
  it("are accepted by the server", async () => {
    for (const t of TEMPLATES) {
      const r = await call<{ id: string; code?: string; details?: unknown }>("POST", "/api/v1/evaluations", t.text, "application/yaml");
      expect(r.status, `${t.id}: ${JSON.stringify(r.json)}`).toBe(201);
      await call("POST", `/api/v1/evaluations/${r.json.id}/cancel`);
    }
  });
});

describe("comparing", () => {
  it("shows the per-score delta and per-task differences of two evaluations", async () => {
    const a = await submit(quickSpec(unique("base"), 0.25, ["t1", "t2"], 2));
    const b = await submit(quickSpec(unique("cand"), 0.75, ["t1", "t2"], 2));
    await finished(a.id);
    await finished(b.id);
    const page = await signedIn(browser, "/compare");
    await page.getByLabel("Baseline (A)").selectOption(a.id);
    await page.getByLabel("Candidate (B)").selectOption(b.id);
    await page.waitForURL(new RegExp(`a=${a.id}.*b=${b.id}|b=${b.id}.*a=${a.id}`));
    const row = page.locator('[data-testid="delta-row"][data-name="accuracy"]');
    await row.waitFor();
    expect(await row.getByTestId("delta").textContent()).toContain("+0.500");
    const tasks = page.getByTestId("task-diffs");
    await tasks.getByText("t1").waitFor();
    expect(await tasks.locator("tbody tr").count()).toBe(2);
    expect(await tasks.locator("tbody tr").first().textContent()).toContain("+0.500");
    await shot(page, "07-compare");
    await page.context().close();
  });
});

describe("following a live log", () => {
  it("follows the tail, pauses when the reader scrolls up, and resumes on request", async () => {
    const e = await submit(`name: ${unique("chatty")}
image: alpine
command: [sh, -c, "i=0; while [ $i -lt 1500 ]; do i=$((i+1)); echo line $i; [ $((i % 50)) -eq 0 ] && sleep 0.2; done"]
tasks: [{id: talk, input: {}}]
resources: {cpu: 500m, memory: 64Mi}
timeout: 5m
`);
    const page = await signedIn(browser, `/runs/${e.runs[0].id}`);
    const count = async () => Number(/(\d+)/.exec((await page.getByTestId("log-count").textContent()) ?? "")?.[1] ?? 0);
    await until("some lines", async () => (await count()) > 100);
    // Following: the newest line is on screen.
    const list = page.locator(".log-list");
    await list.hover();
    await page.mouse.wheel(0, -600);
    await page.getByRole("button", { name: "Follow the tail ↓" }).waitFor();
    const top = await list.evaluate((el) => el.scrollTop);
    await until("more lines while paused", async () => (await count()) > 700);
    expect(await list.evaluate((el) => el.scrollTop)).toBe(top);
    await page.getByRole("button", { name: "Follow the tail ↓" }).click();
    await page.getByTestId("timeline-4").getByText("succeeded").waitFor({ timeout: 60_000 });
    await page.getByText("line 1500", { exact: true }).waitFor();
    await page.getByText("status → succeeded exit code 0").waitFor();
    await page.context().close();
  });
});

describe("losing the connection", () => {
  it("shows reconnecting, then resumes the log after the last line seen, without gaps or repeats", async () => {
    const proxy = new CuttableProxy(new URL(stack().url));
    const base = await proxy.start();
    const lines = 2000;
    const e = await submit(`name: ${unique("flaky-net")}
image: alpine
command: [sh, -c, "i=0; while [ $i -lt ${lines} ]; do i=$((i+1)); echo line $i; [ $((i % 100)) -eq 0 ] && sleep 0.3; done"]
tasks: [{id: talk, input: {}}]
resources: {cpu: 500m, memory: 64Mi}
timeout: 5m
`);
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    try {
      const page = await ctx.newPage();
      await page.goto(`${base}/runs/${e.runs[0].id}`);
      await page.getByLabel("API token").fill(stack().token);
      await page.getByRole("button", { name: "Sign in" }).click();
      const indicator = page.getByTestId("live-indicator");
      await indicator.getByText("Live").waitFor();
      const stdout = async () => Number(/stdout \((\d+)\)/.exec((await page.locator(".kinds").textContent()) ?? "")?.[1] ?? 0);
      await until("some lines", async () => (await stdout()) >= 200);
      proxy.cut();
      await indicator.getByText("Reconnecting…").waitFor();
      const before = await stdout();
      expect(before).toBeLessThan(lines);
      proxy.restore();
      await indicator.getByText("Live").waitFor({ timeout: 60_000 });
      await page.getByTestId("timeline-4").getByText("succeeded").waitFor({ timeout: 90_000 });
      // Every line exactly once: as many stdout lines as the program wrote, numbered in order.
      await until("all lines", async () => (await stdout()) === lines);
      await page.getByLabel("Search").fill(`line ${lines}`);
      await page.getByTestId("log-count").getByText(/^1 of \d+ lines$/).waitFor();
      await page.getByLabel("Search").fill("line 1");
      // line 1, 10-19, 100-199, 1000-1999: 1 + 10 + 100 + 1000
      await page.getByTestId("log-count").getByText(/^1111 of \d+ lines$/).waitFor();
    } finally {
      await ctx.close();
      await proxy.stop();
    }
  });
});

describe("deep links", () => {
  it("opens a run's page cold: sign in, then land where the link pointed", async () => {
    const list = await call<EvaluationList>("GET", "/api/v1/evaluations?limit=1&sort=newest");
    const done = list.json.items[0];
    const full = await call<{ runs: { id: string; task_id: string }[] }>("GET", `/api/v1/evaluations/${done.id}`);
    const run = full.json.runs[0];
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    const res = await page.goto(`${stack().url}/runs/${run.id}`);
    expect(res?.status()).toBe(200);
    await page.getByLabel("API token").fill(stack().token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: `Task ${run.task_id}`, exact: false }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/runs/${run.id}`);
    await page.getByTestId("log-count").waitFor();
    // A reload keeps the session (session storage) and the page.
    await page.reload();
    await page.getByRole("heading", { name: `Task ${run.task_id}`, exact: false }).waitFor();
    await ctx.close();
  });

  it("shows an API error for an evaluation that does not exist, not a blank page", async () => {
    const page = await signedIn(browser, "/evaluations/00000000-0000-0000-0000-000000000000");
    await page.getByRole("alert").getByText(/404/).waitFor();
    await page.context().close();
  });
});

describe("the system view", () => {
  it("shows queued and running counts, capacity, the team's quota and the replicas", async () => {
    const page = await signedIn(browser, "/system");
    await page.getByTestId("sys-capacity").waitFor();
    expect(await page.getByTestId("sys-capacity").textContent()).toMatch(/^\d+$/);
    expect(await page.getByTestId("sys-why").textContent()).not.toBe("");
    // The stack runs one orchestrator and one result-processor: each is listed live in its own table.
    const replicas = page.getByTestId("sys-replicas");
    await replicas.getByRole("table", { name: "Orchestrators" }).locator('tr[data-state="live"]').first().waitFor();
    await replicas.getByRole("table", { name: "Result processors" }).locator('tr[data-state="live"]').first().waitFor();
    await shot(page, "08-system");
    await page.context().close();
  });
});
