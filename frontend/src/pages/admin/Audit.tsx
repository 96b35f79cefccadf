import { useState } from "react";
import { api, query } from "../../api/client";
import type { AuditEntryOut, AuditListOut } from "../../api/types";
import { Empty, ErrorBox, Field, Loading, useAsync } from "../../components/common";
import { formatTime } from "../../lib/format";
import { AUDIT_ACTIONS, auditActionText } from "../../lib/identity";
import { navigate, useLocation, useTitle } from "../../router";

const PAGE = 50;

/** An entry's detail as `key: value` pairs (e.g. a role change's old and new role). */
function detailText(detail: Record<string, unknown> | null | undefined): string {
  if (!detail) return "";
  return Object.entries(detail)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" · ");
}

/** The team's audit log (admins only): newest first, filtered by action, "Load more" by cursor. */
export default function AuditPage() {
  useTitle("Audit log");
  const { search } = useLocation();
  const action = new URLSearchParams(search).get("action") ?? "";
  const first = useAsync(
    (signal) => api<AuditListOut>(`/api/v1/audit${query({ action, limit: PAGE })}`, { signal }),
    `audit:${action}`,
  );
  // Pages after the first, for this filter.
  const [more, setMore] = useState<{ key: string; entries: AuditEntryOut[]; next: string | null } | null>(null);
  const [moreError, setMoreError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const extra = more?.key === action ? more : null;
  const entries = [...(first.data?.entries ?? []), ...(extra?.entries ?? [])];
  const next = extra ? extra.next : (first.data?.next_cursor ?? null);

  const loadMore = async () => {
    if (!next) return;
    setBusy(true);
    setMoreError(null);
    try {
      const page = await api<AuditListOut>(`/api/v1/audit${query({ action, limit: PAGE, cursor: next })}`);
      setMore({ key: action, entries: [...(extra?.entries ?? []), ...page.entries], next: page.next_cursor ?? null });
    } catch (e) {
      setMoreError(e);
    } finally {
      setBusy(false);
    }
  };

  return (
    <div>
      <div className="page-head">
        <h1>Audit log</h1>
      </div>
      <div className="filters">
        <Field id="audit-action" label="Action">
          <select
            id="audit-action"
            value={action}
            onChange={(e) => navigate(`/admin/audit${query({ action: e.target.value })}`, { replace: true })}
          >
            <option value="">All actions</option>
            {AUDIT_ACTIONS.map((a) => (
              <option key={a.action} value={a.action}>
                {a.text}
              </option>
            ))}
          </select>
        </Field>
        <button type="button" className="secondary" onClick={() => { setMore(null); first.reload(); }}>
          Refresh
        </button>
      </div>
      {first.error !== null && <ErrorBox error={first.error} onRetry={first.reload} />}
      {!first.data && !first.error && <Loading what="Loading the audit log" />}
      {first.data && entries.length === 0 && <Empty>Nothing recorded{action ? " for this action" : ""}.</Empty>}
      {entries.length > 0 && (
        <div className="table-wrap">
          <table aria-label="Audit log" data-testid="audit-table">
            <thead>
              <tr>
                <th>Time</th>
                <th>Actor</th>
                <th>Action</th>
                <th>Object</th>
                <th>Source address</th>
                <th>Outcome</th>
              </tr>
            </thead>
            <tbody>
              {entries.map((e) => (
                <tr key={e.id} data-testid="audit-row">
                  <td>{formatTime(e.at)}</td>
                  <td>{e.actor?.name ?? <span className="muted">unknown</span>}</td>
                  <td title={e.action}>{auditActionText(e.action)}</td>
                  <td>
                    {e.object_type}
                    {e.object_id && (
                      <>
                        {" "}
                        <code className="small">{e.object_id}</code>
                      </>
                    )}
                    {detailText(e.detail) && <div className="muted small">{detailText(e.detail)}</div>}
                  </td>
                  <td>{e.source_address ?? "—"}</td>
                  <td className={e.outcome === "success" ? "ok" : "bad"}>{e.outcome}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {moreError !== null && <ErrorBox error={moreError} />}
      {next && (
        <div className="actions">
          <button type="button" className="secondary" disabled={busy} onClick={() => void loadMore()}>
            {busy ? "Loading…" : "Load more"}
          </button>
        </div>
      )}
    </div>
  );
}
