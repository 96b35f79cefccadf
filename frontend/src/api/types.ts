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

export type RunSnapshot = S["RunSnapshot"];
export type SortOrder = S["SortOrder"];
export type EvaluationSummary = S["EvaluationSummaryOut"];
export type Evaluation = S["EvaluationOut"];
export type EvaluationList = S["EvaluationListOut"];
export type EventList = S["EventListOut"];
export type RunList = S["RunListOut"];
export type HistogramOut = S["HistogramOut"];
export type MeOut = S["MeOut"];
export type SystemOut = S["SystemOut"];
export type ReplicaOut = S["ReplicaOut"];

// Identity: sessions, API tokens, team administration, the audit log.
export type Role = S["Role"];
export type Scope = S["Scope"];
export type AuthConfig = S["AuthConfigOut"];
export type TokenOut = S["TokenOut"];
export type TokenListOut = S["TokenListOut"];
export type TokenIn = S["TokenIn"];
export type TokenCreatedOut = S["CreatedTokenOut"];
export type MemberOut = S["MemberOut"];
export type MemberListOut = S["MembersOut"];
export type ServiceAccountListOut = S["ServiceAccountsOut"];
export type AuditEntryOut = S["AuditEntryOut"];
export type AuditListOut = S["AuditPageOut"];

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
