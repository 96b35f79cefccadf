// What the evaluation page knows, kept current from its stream's frames.
import type {
  Evaluation,
  EvaluationSummary,
  RunSnapshot,
  ScoreSummary,
  StateCounts,
  EvaluationStatus,
} from "../api/types";
import { TERMINAL_STATES } from "../api/types";

export interface EvaluationLive {
  summary: EvaluationSummary;
  scores: ScoreSummary[];
  runs: Map<string, RunSnapshot>;
  /** Bumped whenever `runs` changes (the map is updated in place for speed). */
  runsVersion: number;
}

export type Frame = { type: string } & Record<string, unknown>;

export function fromEvaluation(e: Evaluation): EvaluationLive {
  const runs = new Map<string, RunSnapshot>();
  for (const r of e.runs) runs.set(r.id, r);
  return { summary: e, scores: sortScores(e.scores ?? []), runs, runsVersion: 1 };
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

/**
 * Whether `incoming` should replace `current`: the snapshot with the higher seq wins.
 * Without seqs, a terminal state is never replaced by a non-terminal one.
 */
export function isNewerRun(incoming: RunSnapshot, current: RunSnapshot | undefined): boolean {
  if (!current) return true;
  if (typeof incoming.seq === "number" && typeof current.seq === "number") {
    return incoming.seq > current.seq;
  }
  if (incoming.attempt !== current.attempt) return incoming.attempt > current.attempt;
  if (TERMINAL_STATES.has(current.state) && !TERMINAL_STATES.has(incoming.state)) return false;
  return true;
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
  };
  const out = items.slice();
  out[i] = next;
  return { items: out, known: true };
}
