import { useEffect, useMemo, useRef, useState } from "react";
import { api } from "../api/client";
import type { Evaluation, HistogramOut, RunSnapshot, ScoreSummary } from "../api/types";
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
import { applyFrame, fromEvaluation, mergeRuns, type EvaluationLive, type Frame } from "../live/evaluationState";
import { usePagedRuns } from "../live/usePagedRuns";
import { matching, RUN_PAGE, type RunFilter, type RunSort } from "../lib/runQuery";
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
  // Runs come from the paged runs endpoint; the stream carries their changes.
  const status = useLiveSocket(`/api/v1/evaluations/${initial.id}/stream?events=none`, onFrame);
  const onRuns = (runs: RunSnapshot[]) => setLive((s) => mergeRuns(s, runs));
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
      <ScoresSection evaluationId={e.id} scores={live.scores} />
      <RunsSection live={live} now={now} onRuns={onRuns} />
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

function ScoresSection({ evaluationId, scores }: { evaluationId: string; scores: ScoreSummary[] }) {
  return (
    <section aria-labelledby="scores-h">
      <h2 id="scores-h">Scores</h2>
      {scores.length === 0 ? (
        <Empty>No scores reported yet.</Empty>
      ) : (
        <div className="scores-grid">
          {scores.map((s) => (
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
              <ScoreHistogram evaluationId={evaluationId} score={s} />
            </div>
          ))}
        </div>
      )}
    </section>
  );
}

/** The server's histogram of one score, read again (at most once a second) as its count grows. */
function ScoreHistogram({ evaluationId, score }: { evaluationId: string; score: ScoreSummary }) {
  const count = useThrottled(score.count, 1000);
  const [histogram, setHistogram] = useState<HistogramOut | null>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    api<HistogramOut>(`/api/v1/evaluations/${encodeURIComponent(evaluationId)}/scores/${encodeURIComponent(score.name)}/histogram`, {
      signal: ctrl.signal,
    })
      .then(setHistogram)
      .catch(() => {
        // Keep the last histogram; the next count change reads it again.
      });
    return () => ctrl.abort();
  }, [evaluationId, score.name, count]);
  return <Histogram name={score.name} bins={histogram?.bins ?? []} count={histogram?.count ?? 0} />;
}

function RunsSection({ live, now, onRuns }: { live: EvaluationLive; now: number; onRuns: (runs: RunSnapshot[]) => void }) {
  const [stateFilter, setStateFilter] = useState<RunFilter>("");
  const [sort, setSort] = useState<RunSort>("order");
  const scoreNames = live.scores.map((s) => s.name);
  const e = live.summary;
  const counts = e.counts as Record<string, number | undefined>;
  const paged = usePagedRuns(e.id, stateFilter, sort, live.snapshots, onRuns);

  // Rows are the pages read, in the server's order, each shown as its newest snapshot.
  // A run that changes state stays in place until the filter or sort is chosen again.
  const version = useThrottled(live.runsVersion, paged.ids.length > 2000 ? 250 : 0);
  const rows = useMemo(
    () => paged.ids.map((id) => live.runs.get(id)).filter((r): r is RunSnapshot => !!r),
    // The map is updated in place; runsVersion says when.
    [paged.ids, version, live.runs],
  );
  const total = matching(stateFilter, e.counts, e.run_count);

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
          <select id="runs-state" value={stateFilter} onChange={(ev) => setStateFilter(ev.target.value as RunFilter)}>
            <option value="">All ({e.run_count})</option>
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
          <select id="runs-sort" value={sort} onChange={(ev) => setSort(ev.target.value as RunSort)}>
            <option value="order">Task, epoch</option>
            <option value="duration_desc">Duration, longest finished first</option>
            <option value="duration_asc">Duration, shortest finished first</option>
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
        <span className="muted" role="status" data-testid="runs-shown">
          {rows.length === total ? `${total} shown` : `${rows.length} of ${total} shown`}
        </span>
      </div>
      {paged.error !== null && <ErrorBox error={paged.error} onRetry={paged.loadMore} />}
      {rows.length === 0 ? (
        paged.loading || live.snapshots === 0 ? <Loading what="Loading the runs" /> : <Empty>No run in this state.</Empty>
      ) : (
        <VirtualList
          role="table"
          ariaLabel="Runs"
          className="runs-table"
          count={rows.length}
          rowHeight={34}
          height={Math.min(560, rows.length * 34 + 36)}
          renderRow={renderRow}
          onAtBottomChange={(atBottom) => atBottom && paged.more && paged.loadMore()}
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
      {paged.more && (
        <p>
          <button type="button" className="secondary" onClick={paged.loadMore} disabled={paged.loading}>
            {paged.loading ? "Loading…" : `Show ${Math.min(RUN_PAGE, total - rows.length)} more`}
          </button>
        </p>
      )}
    </section>
  );
}

