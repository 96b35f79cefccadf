import { useEffect } from "react";
import { api } from "../api/client";
import type { ReplicaOut, SystemOut } from "../api/types";
import { useTitle } from "../router";
import { Empty, ErrorBox, Loading, useAsync } from "../components/common";
import { formatAge, formatTime } from "../lib/format";
import { explain, isReplicaState, partitionList, replicaStateText, replicasOf, type ReplicaService } from "../lib/system";
import { useSession } from "../auth/session";

const REFRESH_MS = 5000;

/** The services shown, in this order; a service the page does not know gets a plain table after them. */
const SERVICES: { service: ReplicaService; title: string; none: string }[] = [
  {
    service: "orchestrator",
    title: "Orchestrators",
    none: "No orchestrator has reported in the last hour: runs stay queued until one does.",
  },
  {
    service: "result-processor",
    title: "Result processors",
    none: "No result processor has reported in the last hour.",
  },
];

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
  const known = new Set<string>(SERVICES.map((x) => x.service));
  const others = s ? [...new Set(s.replicas.map((r) => r.service).filter((x) => !known.has(x)))] : [];
  const now = Date.now();
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
            <Stat label="Capacity (runs at once)" value={s.capacity} testid="sys-capacity" />
            <Stat label="Team quota (runs at once)" value={s.team_max_concurrent_runs ?? "none"} testid="sys-team-quota" />
            {s.platform_max_concurrent_runs != null && (
              <Stat label="Platform limit (runs at once)" value={s.platform_max_concurrent_runs} testid="sys-platform-limit" />
            )}
          </div>
          <section className="card" aria-labelledby="why-h">
            <h2 id="why-h">Why is my run not starting?</h2>
            <p data-testid="sys-why">{explain(s)}</p>
          </section>
          <section aria-labelledby="replicas-h" data-testid="sys-replicas">
            <h2 id="replicas-h">Replicas</h2>
            <p className="muted small">
              Capacity is the sum over live orchestrators. Replicas lost (their lease expired) or stopped in the last
              hour are listed after the live ones.
            </p>
            {SERVICES.map(({ service, title, none }) => (
              <ReplicaTable key={service} service={service} title={title} none={none} replicas={replicasOf(s, service)} now={now} />
            ))}
            {others.map((service) => (
              <ReplicaTable key={service} service={service} title={service} none="" replicas={replicasOf(s, service)} now={now} />
            ))}
          </section>
        </>
      )}
    </div>
  );
}

function ReplicaTable({
  service,
  title,
  none,
  replicas,
  now,
}: {
  service: string;
  title: string;
  none: string;
  replicas: ReplicaOut[];
  now: number;
}) {
  const headingId = `replicas-${service}-h`;
  const live = replicas.filter((r) => r.state === "live").length;
  const isOrchestrator = service === "orchestrator";
  const isResultProcessor = service === "result-processor";
  return (
    <div className="replica-group">
      <div className="section-head">
        <h3 id={headingId}>{title}</h3>
        <span className="muted small">{live} live</span>
      </div>
      {replicas.length === 0 ? (
        <Empty>{none}</Empty>
      ) : (
        <div className="table-wrap">
          <table aria-labelledby={headingId} data-testid={`replicas-${service}`}>
            <thead>
              <tr>
                <th scope="col">Replica</th>
                <th scope="col">Host</th>
                {isOrchestrator && <th scope="col">Runtime</th>}
                {isOrchestrator && <th scope="col">Running / capacity</th>}
                {isResultProcessor && <th scope="col">Partitions</th>}
                <th scope="col">Last heartbeat</th>
                <th scope="col">Lease expires</th>
                <th scope="col">Roles</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {replicas.map((r) => (
                <tr
                  key={r.id}
                  data-testid={`replica-${r.id}`}
                  data-state={r.state}
                  className={r.state === "live" ? undefined : "replica-gone"}
                >
                  <th scope="row">
                    <code>{r.id}</code>
                  </th>
                  <td>{r.host}</td>
                  {isOrchestrator && <td>{r.runtime ? <code>{r.runtime}</code> : "—"}</td>}
                  {isOrchestrator && (
                    <td data-testid="replica-load">
                      {r.running} / {r.capacity ?? "—"}
                    </td>
                  )}
                  {isResultProcessor && <td data-testid="replica-partitions">{partitionList(r.partitions)}</td>}
                  <td>
                    <time dateTime={r.heartbeat_at} title={formatTime(r.heartbeat_at)}>
                      {formatAge(r.heartbeat_at, now)}
                    </time>
                  </td>
                  <td>
                    <time dateTime={r.lease_expires_at}>{formatTime(r.lease_expires_at)}</time>
                  </td>
                  <td data-testid="replica-roles">
                    {r.roles.length === 0 ? (
                      <span className="muted">—</span>
                    ) : (
                      r.roles.map((role) => (
                        <span key={role} className="badge role-badge">
                          {role}
                        </span>
                      ))
                    )}
                  </td>
                  <td data-testid="replica-state">
                    <ReplicaState replica={r} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function ReplicaState({ replica: r }: { replica: ReplicaOut }) {
  const cls = r.state === "live" ? "ok" : r.state === "lost" ? "bad" : isReplicaState(r.state) ? "muted" : "warn";
  return (
    <>
      <span className={cls}>{replicaStateText(r.state)}</span>
      {r.ended_at && (
        <span className="small">
          {" "}
          {r.state === "lost" ? "since" : "at"} <time dateTime={r.ended_at}>{formatTime(r.ended_at)}</time>
        </span>
      )}
    </>
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
