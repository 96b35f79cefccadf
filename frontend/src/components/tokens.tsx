// API tokens: a table (with revoke), the form that creates one, and its secret shown once.
// Used for a person's own tokens and for a service account's.
import { useState, type FormEvent } from "react";
import { api, ApiError } from "../api/client";
import type { TokenCreatedOut, TokenIn, TokenListOut, TokenOut } from "../api/types";
import { ConfirmButton, Empty, ErrorBox, Field, useAsync } from "./common";
import { formatTime } from "../lib/format";
import { expiryFromDate, identityErrorText, SCOPE_TEXT, scopeList, todayDate, tokenState } from "../lib/identity";
import type { Scope } from "../api/types";

/**
 * The tokens listed at `path` (the caller's own, or a service account's): the list, and
 * creating (at `path`) and revoking one, keeping the list current.
 */
export function useTokens(path: string) {
  const list = useAsync((signal) => api<TokenListOut>(path, { signal }), path);
  const [revokeError, setRevokeError] = useState<unknown>(null);

  const create = async (body: TokenIn) => {
    const out = await api<TokenCreatedOut>(path, {
      method: "POST",
      body: JSON.stringify(body),
      contentType: "application/json",
    });
    list.setData((d) => ({ tokens: [out.token, ...(d?.tokens ?? [])] }));
    return out;
  };

  const revoke = async (id: string) => {
    setRevokeError(null);
    try {
      await api<void>(`/api/v1/tokens/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (e) {
      setRevokeError(e);
    }
    list.reload();
  };

  return { list, create, revoke, revokeError };
}

export function TokenTable({
  tokens,
  onRevoke,
  label,
}: {
  tokens: TokenOut[];
  onRevoke: (t: TokenOut) => Promise<void>;
  label: string;
}) {
  if (tokens.length === 0) return <Empty>No tokens yet.</Empty>;
  return (
    <div className="table-wrap">
      <table aria-label={label} data-testid="token-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Prefix</th>
            <th>Scopes</th>
            <th>Created</th>
            <th>Expires</th>
            <th>Last used</th>
            <th>State</th>
            <th>
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {tokens.map((t) => {
            const state = tokenState(t);
            return (
              <tr key={t.id} data-testid={`token-${t.name}`}>
                <td className="name">{t.name}</td>
                <td>
                  <code>{t.prefix}…</code>
                </td>
                <td>{scopeList(t.scopes)}</td>
                <td>{formatTime(t.created_at)}</td>
                <td>{t.expires_at ? formatTime(t.expires_at) : "never"}</td>
                <td data-testid="token-last-used">{t.last_used_at ? formatTime(t.last_used_at) : "never"}</td>
                <td data-testid="token-state">
                  {state === "revoked" ? `revoked ${formatTime(t.revoked_at)}` : state}
                </td>
                <td>
                  {state !== "revoked" && (
                    <ConfirmButton
                      label="Revoke"
                      question={`Revoke ${t.name}? Programs using it stop working at once.`}
                      confirmLabel="Revoke token"
                      danger
                      onConfirm={() => onRevoke(t)}
                    />
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function fieldMessages(error: unknown): Record<string, string> {
  if (!(error instanceof ApiError)) return {};
  const out: Record<string, string> = {};
  for (const f of error.fieldErrors) {
    const key = f.path.replace(/\[\d+\]$/, "") || "name";
    out[key] = out[key] ? `${out[key]} ${identityErrorText(f.code, f.message)}` : identityErrorText(f.code, f.message);
  }
  return out;
}

export function CreateTokenForm({
  scopes,
  onCreate,
  idPrefix = "token",
}: {
  /** The scopes that may be offered (what the owner's role allows). */
  scopes: Scope[];
  onCreate: (body: TokenIn) => Promise<TokenCreatedOut>;
  idPrefix?: string;
}) {
  const [name, setName] = useState("");
  const [chosen, setChosen] = useState<Scope[]>(scopes.includes("evaluations:read") ? ["evaluations:read"] : []);
  const [expiry, setExpiry] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<TokenCreatedOut | null>(null);

  const toggle = (s: Scope, on: boolean) => setChosen((c) => (on ? [...c, s] : c.filter((x) => x !== s)));

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const out = await onCreate({
        name: name.trim(),
        scopes: scopes.filter((s) => chosen.includes(s)),
        expires_at: expiryFromDate(expiry),
      });
      setCreated(out);
      setName("");
      setExpiry("");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (created) return <SecretOnce created={created} onDone={() => setCreated(null)} />;

  const fields = fieldMessages(error);
  return (
    <form className="card token-form" onSubmit={submit} aria-label="Create a token">
      <h3>New token</h3>
      <Field id={`${idPrefix}-name`} label="Name">
        <input
          id={`${idPrefix}-name`}
          value={name}
          maxLength={100}
          onChange={(e) => setName(e.target.value)}
          placeholder="e.g. ci-nightly"
          required
          aria-invalid={fields.name ? true : undefined}
        />
      </Field>
      {fields.name && <p className="bad small">{fields.name}</p>}
      <fieldset>
        <legend>Scopes</legend>
        {scopes.map((s) => (
          <label key={s} className="check">
            <input type="checkbox" checked={chosen.includes(s)} onChange={(e) => toggle(s, e.target.checked)} />
            <span>
              <code>{s}</code> <span className="muted">— {SCOPE_TEXT[s]}</span>
            </span>
          </label>
        ))}
      </fieldset>
      {fields.scopes && <p className="bad small">{fields.scopes}</p>}
      <Field id={`${idPrefix}-expiry`} label="Expires (optional; end of that day)">
        <input id={`${idPrefix}-expiry`} type="date" min={todayDate()} value={expiry} onChange={(e) => setExpiry(e.target.value)} />
      </Field>
      {fields.expires_at && <p className="bad small">{fields.expires_at}</p>}
      <div className="actions">
        <button type="submit" disabled={busy || !name.trim() || chosen.length === 0}>
          {busy ? "Creating…" : "Create token"}
        </button>
      </div>
      {error !== null && Object.keys(fields).length === 0 && <ErrorBox error={error} />}
    </form>
  );
}

/** The secret of a new token: shown here once, with a copy button. */
export function SecretOnce({ created, onDone }: { created: TokenCreatedOut; onDone: () => void }) {
  const [copied, setCopied] = useState<"yes" | "no" | null>(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.secret);
      setCopied("yes");
    } catch {
      setCopied("no");
    }
  };
  return (
    <section className="card secret-once" aria-labelledby="secret-title" data-testid="secret-once">
      <h3 id="secret-title">Token “{created.token.name}” created</h3>
      <p>
        <strong>Copy it now: you will not see it again.</strong> Airlock keeps only a hash of it.
      </p>
      <div className="secret-row">
        <input
          aria-label="New token secret"
          data-testid="token-secret"
          readOnly
          value={created.secret}
          onFocus={(e) => e.currentTarget.select()}
        />
        <button type="button" onClick={copy}>
          Copy
        </button>
      </div>
      <p className="small" role="status">
        {copied === "yes" && "Copied to the clipboard."}
        {copied === "no" && "The browser did not allow copying: select the text and copy it by hand."}
      </p>
      <button type="button" className="secondary" onClick={onDone}>
        I have copied it
      </button>
    </section>
  );
}
