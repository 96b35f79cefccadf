import { useState } from "react";
import { api, ApiError } from "../../api/client";
import type { MemberListOut, MemberOut, Role } from "../../api/types";
import { refreshIdentity, useSession } from "../../auth/session";
import { Empty, ErrorBox, Loading, useAsync } from "../../components/common";
import { formatTime } from "../../lib/format";
import { identityErrorText, ROLES } from "../../lib/identity";
import { useTitle } from "../../router";

/** The team's members and their roles (admins only; the API refuses everyone else). */
export default function TeamPage() {
  useTitle("Team");
  const me = useSession().me;
  const list = useAsync((signal) => api<MemberListOut>("/api/v1/team/members", { signal }), "members");
  const [problem, setProblem] = useState<{ id: string; text: string } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const changeRole = async (m: MemberOut, role: Role) => {
    setProblem(null);
    setBusy(m.id);
    try {
      const updated = await api<MemberOut>(`/api/v1/team/members/${encodeURIComponent(m.id)}`, {
        method: "PATCH",
        body: JSON.stringify({ role }),
        contentType: "application/json",
      });
      list.setData((d) => d && { members: d.members.map((x) => (x.id === updated.id ? updated : x)) });
      // Changing one's own role changes what this page may do.
      if (updated.id === me?.user_id || (updated.kind === "user" && updated.name === me?.user)) await refreshIdentity();
    } catch (e) {
      const text = e instanceof ApiError ? identityErrorText(e.code, e.message) : String(e);
      setProblem({ id: m.id, text });
    } finally {
      setBusy(null);
    }
  };

  const members = list.data?.members ?? [];
  return (
    <div>
      <div className="page-head">
        <h1>Team {me?.team}</h1>
      </div>
      {list.error !== null && <ErrorBox error={list.error} onRetry={list.reload} />}
      {!list.data && !list.error && <Loading what="Loading the members" />}
      {list.data && members.length === 0 && <Empty>No members.</Empty>}
      {members.length > 0 && (
        <div className="table-wrap">
          <table aria-label="Members">
            <thead>
              <tr>
                <th>Name</th>
                <th>Email</th>
                <th>Kind</th>
                <th>Role</th>
                <th>Member since</th>
                <th>Last sign-in</th>
              </tr>
            </thead>
            <tbody>
              {members.map((m) => (
                <tr key={m.id} data-testid={`member-${m.name}`}>
                  <td className="name">{m.name}</td>
                  <td>{m.email ?? "—"}</td>
                  <td>{m.kind === "service" ? "service account" : "person"}</td>
                  <td>
                    <select
                      aria-label={`Role of ${m.name}`}
                      value={m.role}
                      disabled={busy === m.id}
                      onChange={(e) => void changeRole(m, e.target.value as Role)}
                    >
                      {ROLES.map((r) => (
                        <option key={r} value={r}>
                          {r}
                        </option>
                      ))}
                    </select>
                    {problem?.id === m.id && (
                      <div className="bad small" role="alert">
                        {problem.text}
                      </div>
                    )}
                  </td>
                  <td>{formatTime(m.created_at)}</td>
                  <td>{m.kind === "service" ? "—" : m.last_login_at ? formatTime(m.last_login_at) : "never"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
