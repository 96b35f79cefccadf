import { useState, type FormEvent } from "react";
import { api } from "../../api/client";
import type { MemberOut, Role, ServiceAccountListOut } from "../../api/types";
import { Empty, ErrorBox, Field, Loading, useAsync } from "../../components/common";
import { CreateTokenForm, TokenTable, useTokens } from "../../components/tokens";
import { formatTime } from "../../lib/format";
import { ROLES, roleScopes } from "../../lib/identity";
import { useTitle } from "../../router";

/** Service accounts of the team (admins only): create them, and create and revoke their tokens. */
export default function ServiceAccountsPage() {
  useTitle("Service accounts");
  const list = useAsync((signal) => api<ServiceAccountListOut>("/api/v1/service-accounts", { signal }), "service-accounts");
  const [open, setOpen] = useState<string | null>(null);

  const accounts = list.data?.service_accounts ?? [];
  return (
    <div>
      <div className="page-head">
        <h1>Service accounts</h1>
      </div>
      <p className="muted">
        A service account is a member of the team that is not a person: programs (CI, schedulers) use its tokens.
      </p>
      <CreateAccountForm
        onCreated={(m) => {
          list.setData((d) => ({ service_accounts: [...(d?.service_accounts ?? []), m] }));
          setOpen(m.id);
        }}
      />
      {list.error !== null && <ErrorBox error={list.error} onRetry={list.reload} />}
      {!list.data && !list.error && <Loading what="Loading the service accounts" />}
      {list.data && accounts.length === 0 && <Empty>No service accounts yet.</Empty>}
      {accounts.map((a) => (
        <section key={a.id} className="card" aria-label={`Service account ${a.name}`} data-testid={`sa-${a.name}`}>
          <div className="section-head">
            <h2>{a.name}</h2>
            <span className="muted">
              role <strong>{a.role}</strong> · created {formatTime(a.created_at)}
            </span>
            <button type="button" className="secondary small" aria-expanded={open === a.id} onClick={() => setOpen(open === a.id ? null : a.id)}>
              {open === a.id ? "Hide tokens" : "Tokens"}
            </button>
          </div>
          {open === a.id && <AccountTokens account={a} />}
        </section>
      ))}
    </div>
  );
}

function CreateAccountForm({ onCreated }: { onCreated: (m: MemberOut) => void }) {
  const [name, setName] = useState("");
  const [role, setRole] = useState<Role>("researcher");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const m = await api<MemberOut>("/api/v1/service-accounts", {
        method: "POST",
        body: JSON.stringify({ name: name.trim(), role }),
        contentType: "application/json",
      });
      setName("");
      onCreated(m);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card filters" onSubmit={submit} aria-label="Create a service account">
      <Field id="sa-name" label="Name">
        <input id="sa-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="e.g. ci-bot" required />
      </Field>
      <Field id="sa-role" label="Role">
        <select id="sa-role" value={role} onChange={(e) => setRole(e.target.value as Role)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" disabled={busy || !name.trim()}>
        {busy ? "Creating…" : "Create service account"}
      </button>
      {error !== null && <ErrorBox error={error} />}
    </form>
  );
}

function AccountTokens({ account }: { account: MemberOut }) {
  const base = `/api/v1/service-accounts/${encodeURIComponent(account.id)}/tokens`;
  const { list, create, revoke, revokeError } = useTokens(base);

  return (
    <div>
      <CreateTokenForm scopes={roleScopes(account.role)} onCreate={create} idPrefix={`sa-${account.id}-token`} />
      {list.error !== null && <ErrorBox error={list.error} onRetry={list.reload} />}
      {revokeError !== null && <ErrorBox error={revokeError} />}
      {!list.data && !list.error && <Loading what="Loading its tokens" />}
      {list.data && <TokenTable label={`Tokens of ${account.name}`} tokens={list.data.tokens} onRevoke={(t) => revoke(t.id)} />}
    </div>
  );
}
