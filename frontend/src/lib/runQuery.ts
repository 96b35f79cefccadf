// What the runs table asks the paged runs endpoint for: its "Show" filter as states and
// its "Sort by" choice as the API's sort, and how many runs that filter matches.
import type { RunState, StateCounts } from "../api/types";

export type RunFilter = RunState | "" | "waiting" | "problems";
export type RunSort = "order" | "duration_desc" | "duration_asc" | `score_desc:${string}` | `score_asc:${string}`;

/** Runs the table reads per request. */
export const RUN_PAGE = 200;

export function filterStates(filter: RunFilter): RunState[] {
  if (filter === "") return [];
  if (filter === "waiting") return ["queued", "scheduling"];
  if (filter === "problems") return ["failed", "error", "timed_out"];
  return [filter];
}

/** The query string (without `?`) of one page. */
export function runsQuery(filter: RunFilter, sort: RunSort, cursor: string | null, limit = RUN_PAGE): string {
  const q = new URLSearchParams();
  q.set("limit", String(limit));
  const states = filterStates(filter);
  if (states.length) q.set("state", states.join(","));
  if (sort !== "order") q.set("sort", sort);
  if (cursor) q.set("cursor", cursor);
  return q.toString();
}

/** How many runs the filter matches, from the evaluation's counts. */
export function matching(filter: RunFilter, counts: StateCounts, total: number): number {
  const states = filterStates(filter);
  if (!states.length) return total;
  const c = counts as Record<string, number | undefined>;
  return states.reduce((n, s) => n + (c[s] ?? 0), 0);
}
