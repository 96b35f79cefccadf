import { useEffect, useState, type FormEvent } from "react";
import type { AuthConfig } from "../api/types";
import { devSignIn, getAuthConfig, signIn, ssoLoginUrl, useSession } from "../auth/session";
import { navigate, useLocation, useTitle } from "../router";
import { ErrorBox, Field, Loading } from "../components/common";
import { ROLES, signInErrorText } from "../lib/identity";

export function SignInPage({ next }: { next: string }) {
  useTitle("Sign in");
  const { search } = useLocation();
  const session = useSession();
  const [config, setConfig] = useState<AuthConfig | null>(null);

  useEffect(() => {
    const ctrl = new AbortController();
    // An older gateway has no such endpoint: then only the token form is offered.
    getAuthConfig(ctrl.signal)
      .then(setConfig)
      .catch(() => {
        if (!ctrl.signal.aborted) setConfig({ oidc: false, dev_login: false });
      });
    return () => ctrl.abort();
  }, []);

  const errorCode = new URLSearchParams(search).get("error") ?? session.ended;
  const done = () => navigate(next || "/", { replace: true });

  return (
    <main className="signin" id="main">
      <h1>Airlock</h1>
      {errorCode && (
        <div className="error-box" role="alert" data-testid="sign-in-error">
          {signInErrorText(errorCode)}
        </div>
      )}
      {config?.oidc && (
        <section className="card" aria-labelledby="sso-title">
          <h2 id="sso-title">Sign in</h2>
          <p className="muted">With your organisation's account.</p>
          {/* A full page navigation: the gateway redirects to the identity provider. */}
          <a className="button" href={ssoLoginUrl(next || "/")}>
            Sign in with single sign-on
          </a>
        </section>
      )}
      {config?.dev_login && <DevSignIn onDone={done} />}
      {/* Once the ways in are known, so that focus goes to the right one. */}
      {config ? <TokenSignIn onDone={done} primary={!config.oidc} /> : <Loading what="Loading the ways to sign in" />}
    </main>
  );
}

function TokenSignIn({ onDone, primary }: { onDone: () => void; primary: boolean }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(token.trim());
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    // No accessible name on the form: "API token" names its one field.
    <form onSubmit={submit} className="card">
      <h2>{primary ? "Sign in" : "Or use an API token"}</h2>
      <p className="muted">Paste an API token. It is kept for this browser session only.</p>
      <label htmlFor="token">API token</label>
      <input
        id="token"
        type="password"
        autoComplete="off"
        spellCheck={false}
        placeholder="alk_…"
        value={token}
        onChange={(e) => setToken(e.target.value)}
        required
        autoFocus={primary}
      />
      <button type="submit" className={primary ? "" : "secondary"} disabled={busy || !token.trim()}>
        {busy ? "Signing in…" : "Sign in"}
      </button>
      {error !== null && <ErrorBox error={error} />}
    </form>
  );
}

function DevSignIn({ onDone }: { onDone: () => void }) {
  const [user, setUser] = useState("");
  const [team, setTeam] = useState("");
  const [role, setRole] = useState("researcher");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await devSignIn(user.trim(), team.trim(), role);
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} className="card" aria-labelledby="dev-title">
      <h2 id="dev-title">Development sign-in</h2>
      <p className="muted">This gateway lets anyone in under the name, team and role typed here. For development only.</p>
      <Field id="dev-user" label="User">
        <input id="dev-user" value={user} onChange={(e) => setUser(e.target.value)} required autoComplete="off" />
      </Field>
      <Field id="dev-team" label="Team">
        <input id="dev-team" value={team} onChange={(e) => setTeam(e.target.value)} required autoComplete="off" />
      </Field>
      <Field id="dev-role" label="Role">
        <select id="dev-role" value={role} onChange={(e) => setRole(e.target.value)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </Field>
      <button type="submit" className="secondary" disabled={busy || !user.trim() || !team.trim()}>
        {busy ? "Signing in…" : "Enter as this user"}
      </button>
      {error !== null && <ErrorBox error={error} />}
    </form>
  );
}
