// What the evaluation page knows, kept current from its stream's frames.
import type {
  Evaluation,
  EvaluationSummary,
  RunSnapshot,
  ScoreSummary,
  StateCounts,
  EvaluationStatus,
} from "../api/types";

export interface EvaluationLive {
  summary: EvaluationSummary;
  scores: ScoreSummary[];
  /** The newest snapshot seen of each run, from pages read and the stream's run frames. */
  runs: Map<string, RunSnapshot>;
  /** Bumped whenever `runs` changes (the map is updated in place for speed). */
  runsVersion: number;
  /** Snapshot frames received: one per (re)connection of the stream. */
  snapshots: number;
}

export type Frame = { type: string } & Record<string, unknown>;

export function fromEvaluation(e: Evaluation): EvaluationLive {
  const runs = new Map<string, RunSnapshot>();
  for (const r of e.runs) runs.set(r.id, r);
  return { summary: e, scores: sortScores(e.scores ?? []), runs, runsVersion: 1, snapshots: 0 };
}

export function sortScores(scores: ScoreSummary[]): ScoreSummary[] {
  return [...scores].sort((a, b) => a.name.localeCompare(b.name));
}

/** Replaces aggregates by name with the (complete) changed ones. */
export function mergeScores(current: ScoreSummary[], changed: ScoreSummary[]): ScoreSummary[] {
  if (!changed.length) return current;
  const byName = new Map(current.map((s) => [s.name, s]));
  for (const s of changed) byName.set(s.name, s);
  return sortScores([...byName.values()]);
}

/** Whether `incoming` should replace `current`: of two snapshots, the higher seq is newer. */
export function isNewerRun(incoming: RunSnapshot, current: RunSnapshot | undefined): boolean {
  return !current || incoming.seq > current.seq;
}

/** Takes in runs read from a page, keeping whichever snapshot of each run is newer. */
export function mergeRuns(state: EvaluationLive, runs: RunSnapshot[]): EvaluationLive {
  let changed = false;
  for (const r of runs) {
    if (isNewerRun(r, state.runs.get(r.id))) {
      state.runs.set(r.id, r);
      changed = true;
    }
  }
  return changed ? { ...state, runsVersion: state.runsVersion + 1 } : state;
}

/** The timing fields an `evaluation` frame carries, where it carries them. */
function timing(frame: Frame): Partial<EvaluationSummary> {
  const out: Partial<EvaluationSummary> = {};
  for (const key of ["started_at", "finished_at", "cancel_requested_at"] as const) {
    if (key in frame) out[key] = (frame[key] as string | null) ?? null;
  }
  return out;
}

/** Applies one stream frame; returns the same object when nothing changed. */
export function applyFrame(state: EvaluationLive, frame: Frame): EvaluationLive {
  switch (frame.type) {
    case "snapshot": {
      const summary = frame.evaluation as EvaluationSummary;
      let runsChanged = false;
      const runs = frame.runs as RunSnapshot[] | undefined;
      if (runs) {
        for (const r of runs) {
          if (isNewerRun(r, state.runs.get(r.id))) {
            state.runs.set(r.id, r);
            runsChanged = true;
          }
        }
      }
      return {
        ...state,
        summary: { ...state.summary, ...summary },
        scores: sortScores((frame.scores as ScoreSummary[]) ?? state.scores),
        runsVersion: state.runsVersion + (runsChanged ? 1 : 0),
        snapshots: state.snapshots + 1,
      };
    }
    case "run": {
      const r = frame.run as RunSnapshot;
      if (!isNewerRun(r, state.runs.get(r.id))) return state;
      state.runs.set(r.id, r);
      return { ...state, runsVersion: state.runsVersion + 1 };
    }
    case "evaluation": {
      return {
        ...state,
        summary: {
          ...state.summary,
          status: frame.status as EvaluationStatus,
          counts: frame.counts as StateCounts,
          ...timing(frame),
        },
        scores: mergeScores(state.scores, (frame.scores as ScoreSummary[]) ?? []),
      };
    }
    default:
      return state;
  }
}

export interface EvaluationUpdate {
  id: string;
  status: EvaluationStatus;
  counts: StateCounts;
  scores?: ScoreSummary[];
  started_at?: string | null;
  finished_at?: string | null;
  cancel_requested_at?: string | null;
}

/**
 * Applies a team-stream update to a list page. `known` is false when the id is not on
 * the page (it may be a new evaluation: the caller refetches).
 */
export function applyListUpdate(
  items: EvaluationSummary[],
  u: EvaluationUpdate,
): { items: EvaluationSummary[]; known: boolean } {
  const i = items.findIndex((e) => e.id === u.id);
  if (i < 0) return { items, known: false };
  const cur = items[i];
  const next: EvaluationSummary = {
    ...cur,
    status: u.status,
    counts: u.counts,
    scores: mergeScores(cur.scores ?? [], u.scores ?? []),
    ...timing(u as unknown as Frame),
  };
  const out = items.slice();
  out[i] = next;
  return { items: out, known: true };
}
