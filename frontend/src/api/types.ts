// Names for the generated OpenAPI types (src/api/schema.d.ts, written by `npm run gen:api`).
import type { components } from "./schema";

type S = components["schemas"];

export type RunState = S["RunState"];
export type EvaluationStatus = S["EvaluationStatus"];
export type StateCounts = S["StateCounts"];
export type ScoreSummary = S["ScoreSummary"];
export type EvalSpec = S["EvalSpec"];
export type ErrorOut = S["ErrorOut"];
export type FieldError = S["FieldError"];
export type StoredEvent = S["StoredEvent"];
export type StreamOut = S["StreamOut"];
export type StreamIn = S["StreamIn"];

// Fields of the contract that older documents may lack are optional here, so the UI
// works with either; the generated type wins where it has them.
type Compat<T, Extra> = T & Partial<Omit<Extra, keyof T>>;

export type RunSnapshot = Compat<S["RunSnapshot"], { seq: number; scores: Record<string, number> }>;
export type EvaluationSummary = Compat<S["EvaluationSummaryOut"], { scores: ScoreSummary[] }>;
export type Evaluation = Compat<S["EvaluationOut"], { scores: ScoreSummary[] }> & {
  runs: RunSnapshot[];
};
export type EvaluationList = { items: EvaluationSummary[]; next_cursor?: string | null };
export type EventList = S["EventListOut"];

type SchemaOr<K extends string, Fallback> = K extends keyof S ? S[K] : Fallback;

export type MeOut = SchemaOr<
  "MeOut",
  { user: string; team: string; team_id: string; role: "admin" | "researcher" | "viewer" }
>;

export type SystemOut = SchemaOr<
  "SystemOut",
  {
    orchestrator: {
      runtime: string;
      max_concurrent_runs: number;
      team_max_concurrent_runs?: number | null;
      seen_at: string;
      online: boolean;
    } | null;
    queued: number;
    running: number;
    team_queued: number;
    team_running: number;
  }
>;

export const RUN_STATES: RunState[] = [
  "queued",
  "scheduling",
  "starting",
  "running",
  "succeeded",
  "failed",
  "error",
  "timed_out",
  "cancelled",
];

export const TERMINAL_STATES: ReadonlySet<string> = new Set([
  "succeeded",
  "failed",
  "error",
  "timed_out",
  "cancelled",
]);

export const EVALUATION_STATUSES: EvaluationStatus[] = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
] as EvaluationStatus[];
