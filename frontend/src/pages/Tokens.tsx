import { useSession } from "../auth/session";
import { ErrorBox, Loading } from "../components/common";
import { CreateTokenForm, TokenTable, useTokens } from "../components/tokens";
import { grantableScopes } from "../lib/identity";
import { useTitle } from "../router";

/** The signed-in person's own API tokens: list, create (secret shown once), revoke. */
export default function TokensPage() {
  useTitle("API tokens");
  const me = useSession().me;
  const { list, create, revoke, revokeError } = useTokens("/api/v1/tokens");
  const scopes = grantableScopes(me);

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
