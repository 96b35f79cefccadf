import { useState } from "react";
import { api } from "../api/client";
import type { TokenCreatedOut, TokenIn, TokenListOut } from "../api/types";
import { useSession } from "../auth/session";
import { ErrorBox, Loading, useAsync } from "../components/common";
import { CreateTokenForm, TokenTable } from "../components/tokens";
import { grantableScopes } from "../lib/identity";
import { useTitle } from "../router";

/** The signed-in person's own API tokens: list, create (secret shown once), revoke. */
export default function TokensPage() {
  useTitle("API tokens");
  const me = useSession().me;
  const list = useAsync((signal) => api<TokenListOut>("/api/v1/tokens", { signal }), "tokens");
  const scopes = grantableScopes(me);
  const [revokeError, setRevokeError] = useState<unknown>(null);

  const create = async (body: TokenIn) => {
    const out = await api<TokenCreatedOut>("/api/v1/tokens", {
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

  return (
    <div>
      <div className="page-head">
        <h1>API tokens</h1>
      </div>
      <p className="muted">
        A token lets a program act as you, within the scopes you give it (and never beyond your role,{" "}
        <strong>{me?.role ?? "…"}</strong>). Send it as <code>Authorization: Bearer alk_…</code>.
      </p>
      <CreateTokenForm scopes={scopes} onCreate={create} />
      <h2>Your tokens</h2>
      {list.error !== null && <ErrorBox error={list.error} onRetry={list.reload} />}
      {revokeError !== null && <ErrorBox error={revokeError} />}
      {!list.data && !list.error && <Loading what="Loading your tokens" />}
      {list.data && <TokenTable label="Your tokens" tokens={list.data.tokens} onRevoke={(t) => revoke(t.id)} />}
    </div>
  );
}
