import { useMemo, useState } from "react";
import { api } from "../api/client";
import { evaluationWithRuns } from "../api/runs";
import type { EvaluationList } from "../api/types";
import { Link, navigate, useLocation, useTitle } from "../router";
import { Empty, ErrorBox, Field, Loading, StatusBadge, useAsync } from "../components/common";
import { formatMeanStderr, formatNumber } from "../lib/format";
import { perTaskDiffs, scoreDeltas } from "../lib/stats";

export function ComparePage() {
  useTitle("Compare");
  const { search } = useLocation();
  const q = new URLSearchParams(search);
  const a = q.get("a") ?? "";
  const b = q.get("b") ?? "";
  const recent = useAsync((signal) => api<EvaluationList>("/api/v1/evaluations?limit=100&sort=newest", { signal }), "recent");

  const set = (k: "a" | "b", v: string) => {
    const n = new URLSearchParams(search);
    if (v) n.set(k, v);
    else n.delete(k);
    navigate(`/compare?${n.toString()}`, { replace: true });
  };

  const options = recent.data?.items ?? [];
  const picker = (k: "a" | "b", value: string, label: string) => (
    <label>
      {label}
      <select value={value} onChange={(e) => set(k, e.target.value)} aria-label={label}>
        <option value="">Choose an evaluation…</option>
        {value && !options.some((o) => o.id === value) && <option value={value}>{value}</option>}
        {options.map((o) => (
          <option key={o.id} value={o.id}>
            {o.name} · {o.status} · {new Date(o.created_at).toLocaleString()} · {o.id.slice(-8)}
          </option>
        ))}
      </select>
    </label>
  );

  return (
    <div>
      <div className="page-head">
        <h1>Compare evaluations</h1>
      </div>
      {recent.error !== null && <ErrorBox error={recent.error} onRetry={recent.reload} />}
      <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Evaluations to compare">
        {picker("a", a, "Baseline (A)")}
        {picker("b", b, "Candidate (B)")}
        <button type="button" className="secondary" disabled={!a || !b} onClick={() => navigate(`/compare?a=${b}&b=${a}`, { replace: true })}>
          Swap
        </button>
      </form>
      {a && b ? <Comparison a={a} b={b} /> : <Empty>Pick two evaluations to see per-score deltas and per-task differences.</Empty>}
    </div>
  );
}

function Comparison({ a, b }: { a: string; b: string }) {
  const data = useAsync(
    (signal) =>
      Promise.all([
        evaluationWithRuns(a, signal),
        evaluationWithRuns(b, signal),
      ]),
    `${a}|${b}`,
  );
  const [score, setScore] = useState("");
  const deltas = useMemo(() => (data.data ? scoreDeltas(data.data[0].scores ?? [], data.data[1].scores ?? []) : []), [data.data]);
  const chosen = score || deltas[0]?.name || "";
  const tasks = useMemo(
    () => (data.data && chosen ? perTaskDiffs(data.data[0].runs, data.data[1].runs, chosen) : []),
    [data.data, chosen],
  );
  if (data.error !== null) return <ErrorBox error={data.error} onRetry={data.reload} />;
  if (!data.data) return <Loading what="Loading both evaluations" />;
  const [ea, eb] = data.data;
  return (
    <div>
      <div className="compare-heads">
        {[ea, eb].map((e, i) => (
          <div key={e.id} className="card">
            <span className="muted">{i === 0 ? "A" : "B"}</span>{" "}
            <Link href={`/evaluations/${e.id}`}>{e.name}</Link> <StatusBadge state={e.status} />{" "}
            <span className="muted small">{e.run_count} runs</span>
          </div>
        ))}
      </div>
      <section aria-labelledby="deltas-h">
        <h2 id="deltas-h">Scores</h2>
        {deltas.length === 0 ? (
          <Empty>Neither evaluation has scores yet.</Empty>
        ) : (
          <table className="data" data-testid="score-deltas">
            <thead>
              <tr>
                <th scope="col">Score</th>
                <th scope="col">A mean ± stderr</th>
                <th scope="col">B mean ± stderr</th>
                <th scope="col">Δ (B − A) ± stderr</th>
                <th scope="col">Δ / stderr</th>
              </tr>
            </thead>
            <tbody>
              {deltas.map((d) => (
                <tr key={d.name} data-testid="delta-row" data-name={d.name}>
                  <th scope="row">{d.name}</th>
                  <td>{d.a ? `${formatMeanStderr(d.a)} (n=${d.a.count})` : "—"}</td>
                  <td>{d.b ? `${formatMeanStderr(d.b)} (n=${d.b.count})` : "—"}</td>
                  <td data-testid="delta" className={d.delta == null ? "" : d.delta > 0 ? "pos" : d.delta < 0 ? "neg" : ""}>
                    {d.delta == null ? "—" : `${d.delta > 0 ? "+" : ""}${formatNumber(d.delta)}${d.stderr != null ? ` ± ${formatNumber(d.stderr)}` : ""}`}
                  </td>
                  <td>{d.delta != null && d.stderr ? formatNumber(d.delta / d.stderr, 2) : "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section aria-labelledby="tasks-h">
        <div className="section-head">
          <h2 id="tasks-h">Per task</h2>
          {deltas.length > 1 && (
            <Field id="task-score" label="Score">
              <select id="task-score" value={chosen} onChange={(e) => setScore(e.target.value)}>
                {deltas.map((d) => (
                  <option key={d.name}>{d.name}</option>
                ))}
              </select>
            </Field>
          )}
        </div>
        {tasks.length === 0 ? (
          <Empty>No per-task values to compare.</Empty>
        ) : (
          <div className="table-wrap tall">
            <table className="data" data-testid="task-diffs">
              <thead>
                <tr>
                  <th scope="col">Task</th>
                  <th scope="col">A mean (runs)</th>
                  <th scope="col">B mean (runs)</th>
                  <th scope="col">Δ (B − A)</th>
                </tr>
              </thead>
              <tbody>
                {tasks.map((t) => (
                  <tr key={t.task}>
                    <th scope="row">{t.task}</th>
                    <td>{t.a ? `${formatNumber(t.a.mean)} (${t.a.count})` : "—"}</td>
                    <td>{t.b ? `${formatNumber(t.b.mean)} (${t.b.count})` : "—"}</td>
                    <td className={t.delta == null ? "" : t.delta > 0 ? "pos" : t.delta < 0 ? "neg" : ""}>
                      {t.delta == null ? "—" : `${t.delta > 0 ? "+" : ""}${formatNumber(t.delta)}`}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </div>
  );
}
