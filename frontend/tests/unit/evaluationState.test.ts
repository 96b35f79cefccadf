import { describe, expect, it } from "vitest";
import type { Evaluation, RunSnapshot } from "../../src/api/types";
import { applyFrame, applyListUpdate, fromEvaluation, isNewerRun, mergeRuns, mergeScores } from "../../src/live/evaluationState";

function run(id: string, state: string, seq: number, extra: Partial<RunSnapshot> = {}): RunSnapshot {
  return {
    id,
    evaluation_id: "e1",
    task_id: "t",
    epoch: 0,
    attempt: 1,
    state: state as RunSnapshot["state"],
    created_at: "2026-01-01T00:00:00Z",
    seq,
    scores: {},
    ...extra,
  };
}

function evaluation(runs: RunSnapshot[]): Evaluation {
  return {
    id: "e1",
    name: "n",
    status: "queued",
    owner: "o",
    team_id: "t",
    labels: {},
    priority: "normal",
    run_count: runs.length,
    counts: { queued: runs.length },
    created_at: "2026-01-01T00:00:00Z",
    spec: {} as Evaluation["spec"],
    runs,
    scores: [],
  } as Evaluation;
}

describe("run snapshots", () => {
  it("keep the one with the higher seq", () => {
    const s = fromEvaluation(evaluation([run("r1", "queued", 1)]));
    const a = applyFrame(s, { type: "run", run: run("r1", "succeeded", 9) });
    expect(a.runs.get("r1")!.state).toBe("succeeded");
    // A late, older frame does not go back in time.
    const b = applyFrame(a, { type: "run", run: run("r1", "running", 5) });
    expect(b).toBe(a);
    expect(b.runs.get("r1")!.state).toBe("succeeded");
    // A snapshot after a reconnect carries older and newer runs: each is compared.
    const c = applyFrame(b, {
      type: "snapshot",
      evaluation: { ...b.summary, status: "running" },
      scores: [],
      runs: [run("r1", "running", 4), run("r2", "queued", 1)],
    });
    expect(c.runs.get("r1")!.state).toBe("succeeded");
    expect(c.runs.get("r2")!.state).toBe("queued");
    expect(c.runsVersion).toBeGreaterThan(b.runsVersion);
  });

  it("read from a page never undo a newer run frame", () => {
    const s = fromEvaluation(evaluation([]));
    // A run frame arrives while the page holding that run is being read.
    const live = applyFrame(s, { type: "run", run: run("r1", "running", 6) });
    const merged = mergeRuns(live, [run("r1", "queued", 1), run("r2", "succeeded", 8)]);
    expect(merged.runs.get("r1")!.state).toBe("running");
    expect(merged.runs.get("r2")!.state).toBe("succeeded");
    expect(merged.runsVersion).toBeGreaterThan(live.runsVersion);
    // The same page again changes nothing.
    expect(mergeRuns(merged, [run("r2", "succeeded", 8)])).toBe(merged);
  });

  it("without seqs, never replace a terminal state by a live one", () => {
    expect(isNewerRun(run("r", "running", 3), run("r", "succeeded", 7))).toBe(false);
    expect(isNewerRun(run("r", "succeeded", 7), run("r", "running", 3))).toBe(true);
    expect(isNewerRun(run("r", "running", 7), run("r", "running", 7))).toBe(false);
  });
});

describe("evaluation frames", () => {
  it("replace status and counts and merge changed score aggregates by name", () => {
    const e = evaluation([]);
    e.scores = [
      { name: "b", count: 1, mean: 1, min: 1, max: 1 },
      { name: "a", count: 1, mean: 0, min: 0, max: 0 },
    ];
    const s = fromEvaluation(e);
    expect(s.scores.map((x) => x.name)).toEqual(["a", "b"]);
    const n = applyFrame(s, {
      type: "evaluation",
      id: "e1",
      status: "running",
      counts: { running: 1 },
      scores: [{ name: "a", count: 2, mean: 0.5, stderr: 0.5, min: 0, max: 1 }],
    });
    expect(n.summary.status).toBe("running");
    expect(n.summary.counts).toEqual({ running: 1 });
    expect(n.scores.find((x) => x.name === "a")!.count).toBe(2);
    expect(n.scores.find((x) => x.name === "b")!.count).toBe(1);
  });

  it("mergeScores adds new names", () => {
    expect(mergeScores([], [{ name: "x", count: 1, mean: 1, min: 1, max: 1 }]).map((s) => s.name)).toEqual(["x"]);
  });
});

describe("list updates", () => {
  const items = [evaluation([])].map(({ runs: _r, spec: _s, ...rest }) => rest);
  it("update a known evaluation in place", () => {
    const r = applyListUpdate(items, { id: "e1", status: "succeeded", counts: { succeeded: 3 }, scores: [] });
    expect(r.known).toBe(true);
    expect(r.items[0].status).toBe("succeeded");
    expect(items[0].status).toBe("queued");
  });
  it("report an unknown id so the page can refetch", () => {
    const r = applyListUpdate(items, { id: "other", status: "queued", counts: {} });
    expect(r.known).toBe(false);
    expect(r.items).toBe(items);
  });
});
