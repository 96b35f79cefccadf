import { describe, expect, it } from "vitest";
import type { RunSnapshot } from "../../src/api/types";
import { aggregate, perTaskDiffs, scoreDeltas } from "../../src/lib/stats";
import { runReason } from "../../src/lib/reasons";
import { formatDuration, formatMeanStderr, headlineScore } from "../../src/lib/format";

describe("stats", () => {
  it("delta of means with the combined standard error", () => {
    const [d] = scoreDeltas(
      [{ name: "acc", count: 10, mean: 0.5, stderr: 0.03, min: 0, max: 1 }],
      [{ name: "acc", count: 10, mean: 0.7, stderr: 0.04, min: 0, max: 1 }],
    );
    expect(d.delta).toBeCloseTo(0.2);
    expect(d.stderr).toBeCloseTo(0.05);
  });

  it("a score on one side only has no delta", () => {
    const ds = scoreDeltas([{ name: "x", count: 1, mean: 1, min: 1, max: 1 }], []);
    expect(ds[0].delta).toBeNull();
    expect(ds[0].b).toBeNull();
  });

  it("aggregate matches the sample standard error", () => {
    const a = aggregate([1, 2, 3, 4])!;
    expect(a.mean).toBe(2.5);
    expect(a.stderr).toBeCloseTo(Math.sqrt(1.6666667 / 4));
    expect(aggregate([5])!.stderr).toBeNull();
  });

  it("per-task differences average the epochs", () => {
    const r = (task: string, v?: number) => ({ task_id: task, scores: v === undefined ? {} : { acc: v } }) as unknown as RunSnapshot;
    const diffs = perTaskDiffs([r("t1", 0), r("t1", 1), r("t2", 1)], [r("t1", 1), r("t1", 1), r("t3", 0)], "acc");
    expect(diffs.map((d) => [d.task, d.delta])).toEqual([
      ["t1", 0.5],
      ["t2", null],
      ["t3", null],
    ]);
  });
});

describe("words", () => {
  it("explain waiting and failed runs", () => {
    expect(runReason({ state: "scheduling", reason: "capacity full: 2 of 2 running" })).toBe(
      "Waiting: capacity full: 2 of 2 running.",
    );
    expect(runReason({ state: "failed", exit_code: 3 })).toBe("The program exited with code 3.");
    expect(runReason({ state: "succeeded" })).toBeNull();
  });

  it("format durations and scores", () => {
    expect(formatDuration(1500)).toBe("1.5 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
    expect(formatMeanStderr({ mean: 0.8123, stderr: 0.0131 })).toBe("0.812 ± 0.013");
    expect(formatMeanStderr({ mean: 1, stderr: null })).toBe("1");
    expect(headlineScore([{ name: "b", count: 1, mean: 1, min: 1, max: 1 }, { name: "a", count: 1, mean: 2, min: 2, max: 2 }])!.name).toBe("a");
  });
});
