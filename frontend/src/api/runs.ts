// Reading an evaluation's runs through the paged runs endpoint.
import { api } from "./client";
import type { Evaluation, RunList, RunSnapshot } from "./types";

/**
 * Every run of the evaluation, in task then epoch order: the first page the evaluation
 * carries, then the rest in pages of 1000. For views that need them all (comparing two
 * evaluations task by task); the evaluation page reads only the pages in view.
 */
export async function allRuns(e: Evaluation, signal?: AbortSignal): Promise<RunSnapshot[]> {
  const runs = [...e.runs];
  let cursor = e.runs_next_cursor ?? null;
  while (cursor) {
    const page: RunList = await api<RunList>(
      `/api/v1/evaluations/${encodeURIComponent(e.id)}/runs?limit=1000&cursor=${encodeURIComponent(cursor)}`,
      { signal },
    );
    runs.push(...page.items);
    cursor = page.next_cursor ?? null;
  }
  return runs;
}

/** The evaluation with all its runs in `runs`. */
export async function evaluationWithRuns(id: string, signal?: AbortSignal): Promise<Evaluation> {
  const e = await api<Evaluation>(`/api/v1/evaluations/${encodeURIComponent(id)}`, { signal });
  return { ...e, runs: await allRuns(e, signal), runs_next_cursor: null };
}
