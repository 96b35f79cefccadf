import { useEffect } from "react";
import { api } from "../api/client";
import type { SystemOut } from "../api/types";
import { useTitle } from "../router";
import { ErrorBox, Loading, useAsync } from "../components/common";
import { formatTime } from "../lib/format";
import { explain } from "../lib/system";
import { useSession } from "../auth/session";

const REFRESH_MS = 5000;

export function SystemPage() {
  useTitle("System");
  const me = useSession().me;
  const sys = useAsync((signal) => api<SystemOut>("/api/v1/system", { signal }), "system");
  const reload = sys.reload;
  useEffect(() => {
    const t = setInterval(reload, REFRESH_MS);
    return () => clearInterval(t);
  }, [reload]);

  const s = sys.data;
  const o = s?.orchestrator ?? null;
  const teamLimit = o ? (o.team_max_concurrent_runs ?? o.max_concurrent_runs) : null;
  return (
    <div>
      <div className="page-head">
        <h1>System</h1>
        <span className="muted small">refreshes every {REFRESH_MS / 1000} s</span>
      </div>
      {sys.error !== null && <ErrorBox error={sys.error} onRetry={sys.reload} />}
      {!s && !sys.error && <Loading what="Loading the system state" />}
      {s && (
        <>
          <div className="stat-grid">
            <Stat label="Waiting to start (all teams)" value={s.queued} testid="sys-queued" />
            <Stat label="Running (all teams)" value={s.running} testid="sys-running" />
            <Stat label={`Waiting (${me?.team ?? "your team"})`} value={s.team_queued} />
            <Stat label={`Running (${me?.team ?? "your team"})`} value={s.team_running} />
            <Stat label="Capacity (runs at once)" value={o ? o.max_concurrent_runs : "—"} testid="sys-capacity" />
            <Stat label="Team quota (runs at once)" value={teamLimit ?? "—"} />
          </div>
          <section className="card">
            <h2>Orchestrator</h2>
            {o ? (
              <p>
                <span className={o.online ? "ok" : "bad"}>{o.online ? "Online" : "Not reporting"}</span> · runtime{" "}
                <code>{o.runtime}</code> · last report {formatTime(o.seen_at)}
              </p>
            ) : (
              <p className="bad">No orchestrator has reported yet: runs stay queued until one does.</p>
            )}
          </section>
          <section className="card" aria-labelledby="why-h">
            <h2 id="why-h">Why is my run not starting?</h2>
            <p data-testid="sys-why">{explain(s, teamLimit)}</p>
          </section>
        </>
      )}
    </div>
  );
}

function Stat({ label, value, testid }: { label: string; value: number | string; testid?: string }) {
  return (
    <div className="stat card">
      <div className="stat-value" data-testid={testid}>
        {value}
      </div>
      <div className="stat-label">{label}</div>
    </div>
  );
}
