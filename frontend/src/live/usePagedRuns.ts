// The runs table's rows: pages of the paged runs endpoint, read as the reader scrolls.
import { useCallback, useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import type { RunList, RunSnapshot } from "../api/types";
import { RUN_PAGE, runsQuery, type RunFilter, type RunSort } from "../lib/runQuery";

export interface PagedRuns {
  /** Run ids in the server's order; their snapshots are in the page's live map. */
  ids: string[];
  /** More pages follow. */
  more: boolean;
  loading: boolean;
  error: unknown;
  loadMore: () => void;
}

/**
 * Reads the first page once `epoch` is above 0 and again (as many runs as were loaded)
 * whenever it changes or the filter or sort does. The caller bumps `epoch` at each
 * stream snapshot: the stream is subscribed by then, so a run changing after the read
 * arrives as a run frame and no change falls between the two. `onRuns` receives every
 * page to merge into the live map.
 */
export function usePagedRuns(
  evaluationId: string,
  filter: RunFilter,
  sort: RunSort,
  epoch: number,
  onRuns: (runs: RunSnapshot[]) => void,
): PagedRuns {
  const [ids, setIds] = useState<string[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const generation = useRef(0);
  const loaded = useRef(0);
  const onRunsRef = useRef(onRuns);
  onRunsRef.current = onRuns;
  const base = `/api/v1/evaluations/${encodeURIComponent(evaluationId)}/runs`;

  const read = useCallback(
    async (after: string | null, limit: number, replace: boolean) => {
      const mine = ++generation.current;
      setLoading(true);
      setError(null);
      try {
        const page = await api<RunList>(`${base}?${runsQuery(filter, sort, after, limit)}`);
        if (mine !== generation.current) return;
        onRunsRef.current(page.items);
        const got = page.items.map((r) => r.id);
        setIds((current) => {
          const next = replace ? got : [...current, ...got];
          loaded.current = next.length;
          return next;
        });
        setCursor(page.next_cursor ?? null);
      } catch (e) {
        if (mine === generation.current) setError(e);
      } finally {
        if (mine === generation.current) setLoading(false);
      }
    },
    [base, filter, sort],
  );

  // A new filter or sort starts from the first page; a new stream epoch re-reads what
  // was loaded.
  const shape = `${filter}|${sort}`;
  const lastShape = useRef(shape);
  useEffect(() => {
    if (epoch <= 0) return;
    const sameShape = lastShape.current === shape;
    lastShape.current = shape;
    const limit = sameShape ? Math.min(1000, Math.max(RUN_PAGE, loaded.current)) : RUN_PAGE;
    void read(null, limit, true);
  }, [epoch, shape, read]);

  const loadMore = useCallback(() => {
    if (!loading && cursor) void read(cursor, RUN_PAGE, false);
  }, [loading, cursor, read]);

  return { ids, more: cursor !== null, loading, error, loadMore };
}
