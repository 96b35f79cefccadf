import { useEffect, useRef, useState } from "react";
import { api } from "../api/client";
import type { EvaluationSummary, RunSnapshot, StoredEvent } from "../api/types";
import { TERMINAL_STATES } from "../api/types";
import { Link, useTitle } from "../router";
import { ErrorBox, Field, LiveIndicator, Loading, StatusBadge, useAsync, useNow } from "../components/common";
import { VirtualList } from "../components/VirtualList";
import { isNewerRun, type Frame } from "../live/evaluationState";
import { ALL_KINDS, LogBuffer, type LineKind } from "../live/logBuffer";
import { useFrameBatch } from "../live/useFrameBatch";
import { useLiveSocket } from "../live/useLiveSocket";
import { durationBetween, formatDuration, formatNumber, formatTime } from "../lib/format";
import { runReason } from "../lib/reasons";

export function RunPage({ id }: { id: string }) {
  const loaded = useAsync((signal) => api<RunSnapshot>(`/api/v1/runs/${encodeURIComponent(id)}`, { signal }), id);
  if (loaded.error !== null && !loaded.data) {
    return (
      <div>
        <h1>Run</h1>
        <ErrorBox error={loaded.error} onRetry={loaded.reload} />
      </div>
    );
  }
  if (!loaded.data) return <Loading what="Loading the run" />;
  return <RunView initial={loaded.data} />;
}

interface StatusMark {
  state: string;
  ts: string;
  reason?: string | null;
  attempt: number;
}

const STAGES = ["queued", "scheduling", "starting", "running"] as const;

function RunView({ initial }: { initial: RunSnapshot }) {
  const [run, setRun] = useState<RunSnapshot>(initial);
  const [evaluation, setEvaluation] = useState<EvaluationSummary | null>(null);
  const buffer = useRef(new LogBuffer()).current;
  const [version, setVersion] = useState(0);
  const statuses = useRef<StatusMark[]>([]);
  const scores = useRef(new Map<string, number>());
  const [progress, setProgress] = useState<{ fraction: number; message?: string | null } | null>(null);
  const [following, setFollowing] = useState(true);
  const [backlogDone, setBacklogDone] = useState(false);
  const [streamError, setStreamError] = useState<string | null>(null);
  useTitle(`${initial.task_id} #${initial.epoch}`);

  const onFrame = useFrameBatch((frames: Frame[]) => {
    const events: StoredEvent[] = [];
    let nextRun: RunSnapshot | null = null;
    for (const f of frames) {
      if (f.type === "event") {
        const e = f.event as StoredEvent;
        if (e.run_id === initial.id) events.push(e);
      } else if (f.type === "run") {
        const r = f.run as RunSnapshot;
        if (r.id === initial.id) nextRun = r;
      } else if (f.type === "snapshot") {
        setEvaluation(f.evaluation as EvaluationSummary);
      } else if (f.type === "backlog_complete") {
        setBacklogDone(true);
      } else if (f.type === "error") {
        setStreamError(String(f.message ?? f.code));
      }
    }
    if (events.length) {
      const before = buffer.lastSeqSeen;
      buffer.append(events);
      let prog: { fraction: number; message?: string | null } | null = null;
      for (const e of events) {
        if (e.seq <= before) continue;
        const ev = e as StoredEvent & Record<string, unknown>;
        if (ev.type === "status") statuses.current.push({ state: String(ev.state), ts: e.ts, reason: ev.reason as string | null, attempt: e.attempt });
        else if (ev.type === "score") scores.current.set(String(ev.name), Number(ev.value));
        else if (ev.type === "progress") prog = { fraction: Number(ev.fraction), message: ev.message as string | null };
      }
      if (prog) setProgress(prog);
      setVersion((v) => v + 1);
    }
    if (nextRun) {
      const nr: RunSnapshot = nextRun;
      setRun((cur) => (isNewerRun(nr, cur) ? nr : cur));
    }
  });
  const status = useLiveSocket(
    `/api/v1/evaluations/${initial.evaluation_id}/stream?events=${initial.id}&runs=false`,
    onFrame,
    { resume: true },
  );

  // The latest state may come from the stream's status events before a run frame does.
  const lastStatus = statuses.current[statuses.current.length - 1];
  const state = lastStatus && (run.seq === undefined || buffer.lastSeqSeen > run.seq) ? lastStatus.state : run.state;
  const terminal = TERMINAL_STATES.has(state);
  const now = useNow(1000);
  const dur = durationBetween(run.started_at, run.finished_at, now);
  const reason = runReason({ ...run, state: state as RunSnapshot["state"], reason: lastStatus?.state === state ? lastStatus.reason ?? run.reason : run.reason });

  return (
    <div>
      <nav className="crumbs" aria-label="Breadcrumb">
        <Link href="/">Evaluations</Link> ›{" "}
        <Link href={`/evaluations/${initial.evaluation_id}`}>{evaluation?.name ?? "Evaluation"}</Link> › Run
      </nav>
      <div className="page-head">
        <h1>
          Task {run.task_id} · epoch {run.epoch}
        </h1>
        <StatusBadge state={state} />
        <LiveIndicator status={status} />
      </div>
      {streamError && <ErrorBox error={new Error(streamError)} />}
      {reason && (state !== "succeeded") && <p className="reason" data-testid="run-reason">{reason}</p>}
      <Timeline marks={statuses.current} state={state} version={version} />
      <dl className="facts">
        <div>
          <dt>Attempt</dt>
          <dd>{run.attempt}</dd>
        </div>
        <div>
          <dt>Duration</dt>
          <dd>{dur == null ? "not started" : formatDuration(dur)}</dd>
        </div>
        {run.exit_code != null && (
          <div>
            <dt>Exit code</dt>
            <dd>{run.exit_code}</dd>
          </div>
        )}
        <div>
          <dt>Progress</dt>
          <dd data-testid="run-progress">
            {progress ? (
              <>
                <progress max={1} value={Math.max(0, Math.min(1, progress.fraction))} aria-label="Progress" />{" "}
                {Math.round(progress.fraction * 100)}%{progress.message ? ` — ${progress.message}` : ""}
              </>
            ) : terminal ? (
              "—"
            ) : (
              <span className="muted">none reported</span>
            )}
          </dd>
        </div>
        <div>
          <dt>Scores</dt>
          <dd data-testid="run-scores">
            {scores.current.size === 0 ? (
              <span className="muted">none yet</span>
            ) : (
              [...scores.current.entries()].map(([k, v]) => (
                <span key={k} className="score-pill">
                  {k} = {formatNumber(v)}
                </span>
              ))
            )}
          </dd>
        </div>
      </dl>
      <LogViewer
        buffer={buffer}
        version={version}
        following={following}
        setFollowing={setFollowing}
        loading={!backlogDone && buffer.size === 0}
      />
    </div>
  );
}

function Timeline({ marks, state }: { marks: StatusMark[]; state: string; version: number }) {
  const first = (s: string) => {
    for (let i = marks.length - 1; i >= 0; i--) if (marks[i].state === s) return marks[i];
    return undefined;
  };
  const terminal = marks.find((m) => TERMINAL_STATES.has(m.state));
  const stages: { label: string; mark?: StatusMark }[] = STAGES.map((s) => ({ label: s, mark: first(s) }));
  stages.push({ label: terminal ? terminal.state.replace("_", " ") : "finished", mark: terminal });
  const reached = new Set(marks.map((m) => m.state));
  return (
    <ol className="timeline" aria-label="State timeline">
      {stages.map((s, i) => {
        const next = stages.slice(i + 1).find((x) => x.mark)?.mark;
        const took = s.mark && next ? Date.parse(next.ts) - Date.parse(s.mark.ts) : null;
        const current = s.mark && (s.label === state || (i === 4 && TERMINAL_STATES.has(state)));
        return (
          <li key={s.label} className={`${s.mark ? "reached" : ""} ${current ? "current" : ""}`} data-testid={`timeline-${i}`}>
            <span className="t-state">{s.label}</span>
            <span className="t-time">{s.mark ? formatTime(s.mark.ts) : reached.size ? "—" : "…"}</span>
            {took != null && <span className="t-took muted">{formatDuration(took)}</span>}
          </li>
        );
      })}
    </ol>
  );
}

const KIND_LABEL: Record<LineKind, string> = { stdout: "stdout", stderr: "stderr", event: "events" };

function LogViewer({
  buffer,
  version,
  following,
  setFollowing,
  loading,
}: {
  buffer: LogBuffer;
  version: number;
  following: boolean;
  setFollowing: (f: boolean) => void;
  loading: boolean;
}) {
  const [kinds, setKinds] = useState<Set<LineKind>>(() => new Set(ALL_KINDS));
  const [search, setSearch] = useState("");
  const [, setFilterVersion] = useState(0);
  useEffect(() => {
    const t = setTimeout(() => {
      buffer.setFilter({ kinds, search });
      setFilterVersion((v) => v + 1);
    }, search ? 120 : 0);
    return () => clearTimeout(t);
  }, [buffer, kinds, search]);

  const toggle = (k: LineKind) =>
    setKinds((cur) => {
      const n = new Set(cur);
      if (n.has(k)) n.delete(k);
      else n.add(k);
      return n;
    });

  const count = buffer.visibleCount;
  const renderRow = (i: number) => {
    const l = buffer.visibleAt(i);
    return (
      <div className={`log-line k-${l.kind}`}>
        <span className="l-seq" aria-hidden="true">
          {l.seq}
        </span>
        <span className="l-kind">{l.kind === "event" ? "•" : l.kind === "stderr" ? "err" : ""}</span>
        <span className="l-text">{l.text}</span>
      </div>
    );
  };

  return (
    <section aria-labelledby="log-h" className="log">
      <div className="section-head">
        <h2 id="log-h">Log</h2>
        <Field id="log-search" label="Search" className="search">
          <input id="log-search" type="search" value={search} onChange={(e) => setSearch(e.target.value)} placeholder="text in the log" />
        </Field>
        <fieldset className="kinds">
          <legend className="sr-only">Show</legend>
          {(["stdout", "stderr", "event"] as LineKind[]).map((k) => (
            <label key={k}>
              <input type="checkbox" checked={kinds.has(k)} onChange={() => toggle(k)} /> {KIND_LABEL[k]} ({buffer.counts[k]})
            </label>
          ))}
        </fieldset>
        <span className="muted" role="status" data-testid="log-count">
          {count === buffer.size ? `${buffer.size} lines` : `${count} of ${buffer.size} lines`}
        </span>
        {following ? (
          <button type="button" className="secondary small" onClick={() => setFollowing(false)}>
            Pause following
          </button>
        ) : (
          <button type="button" className="small" onClick={() => setFollowing(true)}>
            Follow the tail ↓
          </button>
        )}
      </div>
      {loading ? (
        <Loading what="Loading the log" />
      ) : count === 0 ? (
        <div className="empty">{buffer.size === 0 ? "No output yet." : "No line matches."}</div>
      ) : (
        <VirtualList
          ariaLabel="Log lines"
          className="log-list"
          count={count}
          rowHeight={20}
          height="min(65vh, 640px)"
          overscan={20}
          renderRow={renderRow}
          followTail={following}
          onAtBottomChange={setFollowing}
          version={version}
        />
      )}
      {!following && <p className="muted small" role="status">Following paused. New lines keep arriving below.</p>}
    </section>
  );
}
