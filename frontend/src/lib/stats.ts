// Comparing two evaluations: per-score deltas with their standard errors, per-task differences.
import type { RunSnapshot, ScoreSummary } from "../api/types";

export interface ScoreDelta {
  name: string;
  a: ScoreSummary | null;
  b: ScoreSummary | null;
  /** b.mean - a.mean */
  delta: number | null;
  /** sqrt(se_a² + se_b²) (independent samples); null when either side has no stderr. */
  stderr: number | null;
}

export function scoreDeltas(a: ScoreSummary[], b: ScoreSummary[]): ScoreDelta[] {
  const names = [...new Set([...a.map((s) => s.name), ...b.map((s) => s.name)])].sort();
  return names.map((name) => {
    const sa = a.find((s) => s.name === name) ?? null;
    const sb = b.find((s) => s.name === name) ?? null;
    const delta = sa && sb ? sb.mean - sa.mean : null;
    const stderr =
      sa && sb && sa.stderr != null && sb.stderr != null ? Math.sqrt(sa.stderr ** 2 + sb.stderr ** 2) : null;
    return { name, a: sa, b: sb, delta, stderr };
  });
}

export interface Aggregate {
  count: number;
  mean: number;
  stderr: number | null;
  min: number;
  max: number;
}

export function aggregate(values: number[]): Aggregate | null {
  const n = values.length;
  if (n === 0) return null;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of values) {
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = sum / n;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  const stderr = n >= 2 ? Math.sqrt(ss / (n - 1) / n) : null;
  return { count: n, mean, stderr, min, max };
}

export interface TaskDiff {
  task: string;
  a: Aggregate | null;
  b: Aggregate | null;
  delta: number | null;
}

/** Per task: the mean of `score` over that task's runs (epochs) in each evaluation, and b - a. */
export function perTaskDiffs(aRuns: RunSnapshot[], bRuns: RunSnapshot[], score: string): TaskDiff[] {
  const collect = (runs: RunSnapshot[]) => {
    const m = new Map<string, number[]>();
    for (const r of runs) {
      const v = r.scores?.[score];
      if (!m.has(r.task_id)) m.set(r.task_id, []);
      if (typeof v === "number") m.get(r.task_id)!.push(v);
    }
    return m;
  };
  const ma = collect(aRuns);
  const mb = collect(bRuns);
  const tasks = [...new Set([...ma.keys(), ...mb.keys()])].sort();
  return tasks.map((task) => {
    const a = aggregate(ma.get(task) ?? []);
    const b = aggregate(mb.get(task) ?? []);
    return { task, a, b, delta: a && b ? b.mean - a.mean : null };
  });
}
