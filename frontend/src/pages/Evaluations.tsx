import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api } from "../api/client";
import type { EvaluationList, EvaluationSummary } from "../api/types";
import { EVALUATION_STATUSES } from "../api/types";
import { Link, navigate, useLocation, useTitle } from "../router";
import {
  CountsBar,
  CountsText,
  Empty,
  ErrorBox,
  Field,
  LiveIndicator,
  Loading,
  StatusBadge,
  useAsync,
  useNow,
} from "../components/common";
import {
  SORTS,
  filtersFromSearch,
  filtersToApiQuery,
  filtersToSearch,
  isFirstPage,
  withFilter,
  type ListFilters,
} from "../lib/filters";
import { durationBetween, formatAge, formatDuration, formatMeanStderr, formatTime, headlineScore, runsDone } from "../lib/format";
import { useLiveSocket } from "../live/useLiveSocket";
import { applyListUpdate, type EvaluationUpdate, type Frame } from "../live/evaluationState";

const PAGE_SIZES = [50, 100, 200];

export function EvaluationsPage() {
  useTitle("Evaluations");
  const { search } = useLocation();
  const filters = useMemo(() => filtersFromSearch(search), [search]);
  const pageSize = useMemo(() => {
    const n = Number(new URLSearchParams(search).get("limit"));
    return PAGE_SIZES.includes(n) ? n : PAGE_SIZES[0];
  }, [search]);
  const apiQuery = filtersToApiQuery(filters, pageSize);
  const list = useAsync((signal) => api<EvaluationList>(`/api/v1/evaluations${apiQuery}`, { signal }), apiQuery);
  const now = useNow(5000);
  // Cursors of the pages before this one, so "Previous" works without the server's help.
  const [history, setHistory] = useState<string[]>([]);

  const setFilters = (change: Partial<ListFilters>) => {
    const next = withFilter(filters, change);
    if (!("cursor" in change)) setHistory([]);
    navigate(`/${withLimit(filtersToSearch(next), pageSize)}`, { replace: !("cursor" in change) });
  };

  const refetchTimer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const firstPage = isFirstPage(filters);
  const statusFilter = filters.status;
  const reload = list.reload;
  const scheduleRefetch = useCallback(() => {
    if (refetchTimer.current) return;
    refetchTimer.current = setTimeout(() => {
      refetchTimer.current = null;
      reload();
    }, 400);
  }, [reload]);
  useEffect(() => () => {
    if (refetchTimer.current) clearTimeout(refetchTimer.current);
  }, []);

  const dataRef = useRef(list.data);
  dataRef.current = list.data;
  const onFrame = useCallback(
    (f: Frame) => {
      if (f.type === "backlog_complete") {
        // Subscribed (or resubscribed): whatever changed before now is in a fresh fetch.
        reload();
        return;
      }
      if (f.type !== "evaluation") return;
      const u = f as unknown as EvaluationUpdate;
      const d = dataRef.current;
      if (!d) return;
      const r = applyListUpdate(d.items, u);
      const known = r.known;
      if (known) {
        const next = { ...d, items: r.items };
        dataRef.current = next;
        list.setData(() => next);
      }
      if (!known && firstPage) scheduleRefetch();
      else if (known && statusFilter && u.status !== statusFilter) scheduleRefetch();
    },
    [firstPage, statusFilter, reload, scheduleRefetch, list.setData],
  );
  const onFrames = useCallback((frames: Frame[]) => frames.forEach(onFrame), [onFrame]);
  const live = useLiveSocket("/api/v1/stream", onFrames);

  const items = list.data?.items ?? [];
  return (
    <div>
      <div className="page-head">
        <h1>Evaluations</h1>
        <LiveIndicator status={live} />
        <Link href="/evaluations/new" className="button">
          New evaluation
        </Link>
      </div>
      <FilterBar filters={filters} onChange={setFilters} />
      {list.error !== null && <ErrorBox error={list.error} onRetry={list.reload} />}
      {list.loading && !list.data && <Loading what="Loading evaluations" />}
      {list.data && items.length === 0 && (
        <Empty>
          {search && search !== "?" ? (
            <>
              No evaluation matches these filters. <Link href="/">Clear the filters</Link>.
            </>
          ) : (
            <>
              No evaluations yet. <Link href="/evaluations/new">Submit the first one</Link>.
            </>
          )}
        </Empty>
      )}
      {items.length > 0 && (
        <div className="table-wrap">
          <table className="evals" aria-label="Evaluations">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Status</th>
                <th scope="col">Progress</th>
                <th scope="col">Score</th>
                <th scope="col">Owner</th>
                <th scope="col">Labels</th>
                <th scope="col">Age</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {items.map((e) => (
                <Row key={e.id} e={e} now={now} onLabel={(l) => setFilters({ label: l })} />
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav className="pager" aria-label="Pages">
        <label className="inline">
          Per page
          <select
            value={pageSize}
            onChange={(e) => {
              setHistory([]);
              navigate(`/${withLimit(filtersToSearch(withFilter(filters, {})), Number(e.target.value))}`, { replace: true });
            }}
          >
            {PAGE_SIZES.map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <button
          type="button"
          className="secondary"
          disabled={firstPage}
          onClick={() => {
            const prev = history[history.length - 1] ?? "";
            setHistory((h) => h.slice(0, -1));
            setFilters({ cursor: prev });
          }}
        >
          ← Previous page
        </button>
        <button
          type="button"
          className="secondary"
          disabled={!list.data?.next_cursor}
          onClick={() => {
            setHistory((h) => [...h, filters.cursor]);
            setFilters({ cursor: list.data?.next_cursor ?? "" });
          }}
        >
          Next page →
        </button>
      </nav>
    </div>
  );
}

function withLimit(search: string, limit: number): string {
  if (limit === PAGE_SIZES[0]) return search;
  return `${search}${search ? "&" : "?"}limit=${limit}`;
}

function Row({ e, now, onLabel }: { e: EvaluationSummary; now: number; onLabel: (l: string) => void }) {
  const done = runsDone(e.counts);
  const score = headlineScore(e.scores);
  const dur = durationBetween(e.started_at, e.finished_at, now);
  return (
    <tr data-testid="evaluation-row" data-id={e.id}>
      <td>
        <Link href={`/evaluations/${e.id}`} className="name">
          {e.name}
        </Link>
      </td>
      <td>
        <StatusBadge state={e.status} />
        {e.cancel_requested_at && e.status !== "cancelled" && <span className="muted small"> cancelling</span>}
      </td>
      <td className="progress-cell">
        <div className="progress-line">
          <span data-testid="progress">
            {done} / {e.run_count}
          </span>
          <CountsBar counts={e.counts} total={e.run_count} />
        </div>
        <CountsText counts={e.counts} />
      </td>
      <td data-testid="score">
        {score ? (
          <span title={`${score.name}: n=${score.count}, min ${score.min}, max ${score.max}`}>
            <span className="muted">{score.name}</span> {formatMeanStderr(score)}
          </span>
        ) : (
          <span className="muted">—</span>
        )}
      </td>
      <td>{e.owner}</td>
      <td>
        {Object.entries(e.labels).map(([k, v]) => (
          <button key={k} type="button" className="label-chip" title={`Filter by ${k}=${v}`} onClick={() => onLabel(`${k}=${v}`)}>
            {k}={v}
          </button>
        ))}
      </td>
      <td title={formatTime(e.created_at)}>{formatAge(e.created_at, now)}</td>
      <td>{dur == null ? <span className="muted">not started</span> : formatDuration(dur)}</td>
    </tr>
  );
}

function FilterBar({ filters, onChange }: { filters: ListFilters; onChange: (c: Partial<ListFilters>) => void }) {
  const [text, setText] = useState({ name: filters.name, owner: filters.owner, label: filters.label });
  useEffect(() => {
    setText({ name: filters.name, owner: filters.owner, label: filters.label });
  }, [filters.name, filters.owner, filters.label]);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  const onChangeRef = useRef(onChange);
  onChangeRef.current = onChange;
  const edit = (k: "name" | "owner" | "label", v: string) => {
    setText((t) => ({ ...t, [k]: v }));
    if (timer.current) clearTimeout(timer.current);
    timer.current = setTimeout(() => onChangeRef.current({ [k]: v }), 350);
  };
  useEffect(() => () => {
    if (timer.current) clearTimeout(timer.current);
  }, []);
  return (
    <form
      className="filters"
      role="search"
      aria-label="Filter evaluations"
      onSubmit={(e) => {
        e.preventDefault();
        if (timer.current) clearTimeout(timer.current);
        onChange(text);
      }}
    >
      <Field id="f-status" label="Status">
        <select id="f-status" value={filters.status} onChange={(e) => onChange({ status: e.target.value as ListFilters["status"] })}>
          <option value="">Any</option>
          {EVALUATION_STATUSES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </Field>
      <Field id="f-name" label="Name">
        <input id="f-name" type="search" value={text.name} placeholder="contains…" onChange={(e) => edit("name", e.target.value)} />
      </Field>
      <Field id="f-label" label="Label">
        <input id="f-label" type="search" value={text.label} placeholder="key=value,…" onChange={(e) => edit("label", e.target.value)} />
      </Field>
      <Field id="f-owner" label="Owner">
        <input id="f-owner" type="search" value={text.owner} placeholder="user name" onChange={(e) => edit("owner", e.target.value)} />
      </Field>
      <Field id="f-sort" label="Sort">
        <select id="f-sort" value={filters.sort} onChange={(e) => onChange({ sort: e.target.value as ListFilters["sort"] })}>
          {SORTS.map((s) => (
            <option key={s.key} value={s.key}>
              {s.label}
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" className="secondary">
        Apply
      </button>
    </form>
  );
}
