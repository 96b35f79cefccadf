import { useMemo, useRef, useState } from "react";
import { api } from "../api/client";
import type { Evaluation, RunSnapshot, RunState } from "../api/types";
import { RUN_STATES } from "../api/types";
import { Link, navigate, useTitle } from "../router";
import { useSession } from "../auth/session";
import {
  ConfirmButton,
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
  useThrottled,
} from "../components/common";
import { Histogram } from "../components/Histogram";
import { VirtualList } from "../components/VirtualList";
import { applyFrame, fromEvaluation, type EvaluationLive, type Frame } from "../live/evaluationState";
import { useLiveSocket } from "../live/useLiveSocket";
import { useFrameBatch } from "../live/useFrameBatch";
import { durationBetween, formatDuration, formatNumber, formatTime, runsDone } from "../lib/format";
import { needsReason, runReason } from "../lib/reasons";

export function EvaluationPage({ id }: { id: string }) {
  const loaded = useAsync((signal) => api<Evaluation>(`/api/v1/evaluations/${encodeURIComponent(id)}?runs=false`, { signal }), id);
  useTitle(loaded.data?.name ?? "Evaluation");
  if (loaded.error !== null && !loaded.data) {
    return (
      <div>
        <h1>Evaluation</h1>
        <ErrorBox error={loaded.error} onRetry={loaded.reload} />
        <p>
          <Link href="/">Back to the evaluations</Link>
        </p>
      </div>
    );
  }
  if (!loaded.data) return <Loading what="Loading the evaluation" />;
  return <EvaluationView initial={loaded.data} />;
}

function EvaluationView({ initial }: { initial: Evaluation }) {
  const [live, setLive] = useState<EvaluationLive>(() => fromEvaluation(initial));
  const onFrame = useFrameBatch((frames: Frame[]) => setLive((s) => frames.reduce(applyFrame, s)));
  const status = useLiveSocket(`/api/v1/evaluations/${initial.id}/stream?events=none&runs=true`, onFrame);
  const [actionError, setActionError] = useState<unknown>(null);
  const [notice, setNotice] = useState<string | null>(null);
  // Viewers read; researchers and admins also submit and cancel.
  const canWrite = useSession().me?.role !== "viewer";
  const now = useNow(1000);
  const e = live.summary;
  const finished = e.status === "succeeded" || e.status === "failed" || e.status === "cancelled";
  const done = runsDone(e.counts);
  const startedAt = e.started_at ?? null;
  const finishedAt = finished ? (e.finished_at ?? null) : null;
  const dur = durationBetween(startedAt, finishedAt, now);

  const cancel = async () => {
    setActionError(null);
    try {
      await api(`/api/v1/evaluations/${e.id}/cancel`, { method: "POST" });
      setNotice("Cancellation requested: queued runs will not start, running ones are being stopped.");
    } catch (err) {
      setActionError(err);
    }
  };
  const rerun = async () => {
    setActionError(null);
    try {
      const created = await api<Evaluation>("/api/v1/evaluations", {
        method: "POST",
        body: JSON.stringify(initial.spec),
        contentType: "application/json",
      });
      navigate(`/evaluations/${created.id}`);
    } catch (err) {
      setActionError(err);
    }
  };

  return (
    <div>
      <div className="page-head">
        <h1>{e.name}</h1>
        <StatusBadge state={e.status} />
        <LiveIndicator status={status} />
        <div className="actions">
          <ConfirmButton
            label="Cancel"
            question={`Cancel “${e.name}”? Runs not yet finished will stop.`}
            confirmLabel="Yes, cancel it"
            onConfirm={cancel}
            disabled={!canWrite || finished || !!e.cancel_requested_at}
            danger
          />
          <button type="button" className="secondary" onClick={rerun} disabled={!canWrite} title={canWrite ? undefined : "Viewers cannot submit"}>
            Re-run
          </button>
          <Link className="button secondary" href={`/evaluations/new?from=${e.id}`}>
            Edit as new
          </Link>
          <Link className="button secondary" href={`/compare?a=${e.id}`}>
            Compare…
          </Link>
        </div>
      </div>
      {actionError !== null && <ErrorBox error={actionError} />}
      {notice && !finished && (
        <p className="notice" role="status">
          {notice}
        </p>
      )}
      <dl className="facts eval-facts">
        <div>
          <dt>Progress</dt>
          <dd>
            <span data-testid="eval-progress">
              {done} / {e.run_count} runs done
            </span>
            <CountsBar counts={e.counts} total={e.run_count} />
            <CountsText counts={e.counts} />
          </dd>
        </div>
        <div>
          <dt>Owner</dt>
          <dd>{e.owner}</dd>
        </div>
        <div>
          <dt>Priority</dt>
          <dd>{e.priority}</dd>
        </div>
        <div>
          <dt>Submitted</dt>
          <dd>{formatTime(e.created_at)}</dd>
        </div>
        <div>
          <dt>Started</dt>
          <dd>{formatTime(startedAt)}</dd>
        </div>
        <div>
          <dt>Finished</dt>
          <dd data-testid="eval-finished">{formatTime(finishedAt)}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{dur == null ? "not started" : formatDuration(dur)}</dd>
        </div>
        {e.cancel_requested_at && (
          <div>
            <dt>Cancel requested</dt>
            <dd>{formatTime(e.cancel_requested_at)}</dd>
          </div>
        )}
        {Object.keys(e.labels).length > 0 && (
          <div>
            <dt>Labels</dt>
            <dd>
              {Object.entries(e.labels).map(([k, v]) => (
                <Link key={k} className="label-chip" href={`/?label=${encodeURIComponent(`${k}=${v}`)}`}>
                  {k}={v}
                </Link>
              ))}
            </dd>
          </div>
        )}
      </dl>
      <SpecView spec={initial.spec} />
      <ScoresSection live={live} />
      <RunsSection live={live} now={now} />
    </div>
  );
}

function SpecView({ spec }: { spec: unknown }) {
  const text = useMemo(() => JSON.stringify(spec, null, 2), [spec]);
  const [copied, setCopied] = useState<"" | "copied" | "selected">("");
  const pre = useRef<HTMLPreElement>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied("copied");
    } catch {
      // No clipboard access (e.g. not a secure context): select it for Ctrl+C instead.
      const sel = window.getSelection();
      if (pre.current && sel) {
        sel.selectAllChildren(pre.current);
        setCopied("selected");
      }
    }
    setTimeout(() => setCopied(""), 2500);
  };
  return (
    <details className="spec card">
      <summary>Spec</summary>
      <div className="spec-actions">
        <button type="button" className="secondary small" onClick={copy}>
          {copied === "copied" ? "Copied" : copied === "selected" ? "Selected: press Ctrl+C" : "Copy"}
        </button>
      </div>
      <pre ref={pre} tabIndex={0} aria-label="Spec as JSON">
        {text}
      </pre>
    </details>
  );
}

function ScoresSection({ live }: { live: EvaluationLive }) {
  const version = useThrottled(live.runsVersion, live.runs.size > 2000 ? 500 : 0);
  const values = useMemo(() => {
    const m = new Map<string, number[]>();
    for (const r of live.runs.values()) {
      for (const [k, v] of Object.entries(r.scores ?? {})) {
        if (!m.has(k)) m.set(k, []);
        m.get(k)!.push(v);
      }
    }
    return m;
    // The map is updated in place; runsVersion says when.
  }, [version, live.runs]);
  return (
    <section aria-labelledby="scores-h">
      <h2 id="scores-h">Scores</h2>
      {live.scores.length === 0 ? (
        <Empty>No scores reported yet.</Empty>
      ) : (
        <div className="scores-grid">
          {live.scores.map((s) => (
            <div className="card score-card" key={s.name} data-testid="score-card" data-name={s.name}>
              <h3>{s.name}</h3>
              <table className="compact">
                <tbody>
                  <tr>
                    <th scope="row">count</th>
                    <td data-testid="score-count">{s.count}</td>
                  </tr>
                  <tr>
                    <th scope="row">mean</th>
                    <td data-testid="score-mean">{formatNumber(s.mean)}</td>
                  </tr>
                  <tr>
                    <th scope="row">stderr</th>
                    <td>{formatNumber(s.stderr)}</td>
                  </tr>
                  <tr>
                    <th scope="row">min</th>
                    <td>{formatNumber(s.min)}</td>
                  </tr>
                  <tr>
                    <th scope="row">max</th>
                    <td>{formatNumber(s.max)}</td>
                  </tr>
                </tbody>
              </table>
              <Histogram name={s.name} values={values.get(s.name) ?? []} />
            </div>
          ))}
        </div>
      )}
    </section>
  );
}

type SortKey = "order" | "duration_desc" | "duration_asc" | `score_desc:${string}` | `score_asc:${string}`;

function runDuration(r: RunSnapshot, now: number): number {
  return durationBetween(r.started_at, r.finished_at, now) ?? -1;
}

function RunsSection({ live, now }: { live: EvaluationLive; now: number }) {
  const [stateFilter, setStateFilter] = useState<RunState | "" | "waiting" | "problems">("");
  const [sort, setSort] = useState<SortKey>("order");
  const scoreNames = live.scores.map((s) => s.name);

  // Large evaluations re-sort at most a few times a second while runs change.
  const version = useThrottled(live.runsVersion, live.runs.size > 2000 ? 250 : 0);
  const all = useMemo(
    () => [...live.runs.values()],
    // The map is updated in place; runsVersion says when.
    [version, live.runs],
  );
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const r of all) c[r.state] = (c[r.state] ?? 0) + 1;
    return c;
  }, [all]);

  // Durations of running runs change every second; sorting uses the time of the last change.
  const sortNow = sort.startsWith("duration") ? now : 0;
  const rows = useMemo(() => {
    let rs = all;
    if (stateFilter === "waiting") rs = rs.filter((r) => r.state === "queued" || r.state === "scheduling");
    else if (stateFilter === "problems") rs = rs.filter((r) => r.state === "failed" || r.state === "error" || r.state === "timed_out");
    else if (stateFilter) rs = rs.filter((r) => r.state === stateFilter);
    const byOrder = (a: RunSnapshot, b: RunSnapshot) => (a.task_id === b.task_id ? a.epoch - b.epoch : a.task_id < b.task_id ? -1 : 1);
    const t = sortNow || Date.now();
    let cmp: (a: RunSnapshot, b: RunSnapshot) => number = byOrder;
    if (sort === "duration_desc") cmp = (a, b) => runDuration(b, t) - runDuration(a, t) || byOrder(a, b);
    else if (sort === "duration_asc") cmp = (a, b) => runDuration(a, t) - runDuration(b, t) || byOrder(a, b);
    else if (sort.startsWith("score_")) {
      const [dir, name] = sort.split(":");
      const sign = dir === "score_desc" ? -1 : 1;
      const val = (r: RunSnapshot) => r.scores?.[name];
      cmp = (a, b) => {
        const va = val(a);
        const vb = val(b);
        if (va === undefined && vb === undefined) return byOrder(a, b);
        if (va === undefined) return 1;
        if (vb === undefined) return -1;
        return sign * (va - vb) || byOrder(a, b);
      };
    }
    return [...rs].sort(cmp);
  }, [all, stateFilter, sort, sortNow]);

  const renderRow = (i: number) => {
    const r = rows[i];
    const d = durationBetween(r.started_at, r.finished_at, now);
    const reason = needsReason(r.state) ? runReason(r) : null;
    return (
      <div className="run-row" data-testid="run-row" data-state={r.state}>
        <span role="cell" className="c-task">
          <Link href={`/runs/${r.id}`}>{r.task_id}</Link>
        </span>
        <span role="cell" className="c-epoch">
          {r.epoch}
        </span>
        <span role="cell" className="c-state">
          <StatusBadge state={r.state} />
          {r.attempt > 1 && <span className="muted small"> attempt {r.attempt}</span>}
        </span>
        <span role="cell" className="c-dur">
          {d == null ? "—" : formatDuration(d)}
        </span>
        <span role="cell" className="c-scores">
          {Object.entries(r.scores ?? {})
            .map(([k, v]) => `${k} ${formatNumber(v)}`)
            .join(", ") || <span className="muted">—</span>}
        </span>
        <span role="cell" className="c-reason" title={reason ?? undefined}>
          {reason}
        </span>
      </div>
    );
  };

  return (
    <section aria-labelledby="runs-h">
      <div className="section-head">
        <h2 id="runs-h">Runs</h2>
        <Field id="runs-state" label="Show">
          <select id="runs-state" value={stateFilter} onChange={(e) => setStateFilter(e.target.value as typeof stateFilter)}>
            <option value="">All ({all.length})</option>
            <option value="waiting">Waiting ({(counts.queued ?? 0) + (counts.scheduling ?? 0)})</option>
            <option value="problems">Failed, error or timed out ({(counts.failed ?? 0) + (counts.error ?? 0) + (counts.timed_out ?? 0)})</option>
            {RUN_STATES.map((s) => (
              <option key={s} value={s}>
                {s.replace("_", " ")} ({counts[s] ?? 0})
              </option>
            ))}
          </select>
        </Field>
        <Field id="runs-sort" label="Sort by">
          <select id="runs-sort" value={sort} onChange={(e) => setSort(e.target.value as SortKey)}>
            <option value="order">Task, epoch</option>
            <option value="duration_desc">Duration, longest first</option>
            <option value="duration_asc">Duration, shortest first</option>
            {scoreNames.flatMap((n) => [
              <option key={`d${n}`} value={`score_desc:${n}`}>
                {n}, highest first
              </option>,
              <option key={`a${n}`} value={`score_asc:${n}`}>
                {n}, lowest first
              </option>,
            ])}
          </select>
        </Field>
        <span className="muted" role="status">
          {rows.length} shown
        </span>
      </div>
      {rows.length === 0 ? (
        <Empty>No run in this state.</Empty>
      ) : (
        <VirtualList
          role="table"
          ariaLabel="Runs"
          className="runs-table"
          count={rows.length}
          rowHeight={34}
          height={Math.min(560, rows.length * 34 + 36)}
          renderRow={renderRow}
          header={
            <div className="run-row run-head" role="row">
              <span role="columnheader" className="c-task">Task</span>
              <span role="columnheader" className="c-epoch">Epoch</span>
              <span role="columnheader" className="c-state">State</span>
              <span role="columnheader" className="c-dur">Duration</span>
              <span role="columnheader" className="c-scores">Scores</span>
              <span role="columnheader" className="c-reason">Why</span>
            </div>
          }
        />
      )}
    </section>
  );
}

