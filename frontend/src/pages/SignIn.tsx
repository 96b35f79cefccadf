import { useState, type FormEvent } from "react";
import { signIn } from "../auth/session";
import { navigate, useTitle } from "../router";
import { ErrorBox } from "../components/common";

export function SignInPage({ next }: { next: string }) {
  useTitle("Sign in");
  const [token, setToken] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(token.trim());
      navigate(next || "/", { replace: true });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main className="signin" id="main">
      <h1>Airlock</h1>
      <form onSubmit={submit} className="card">
        <h2>Sign in</h2>
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
          autoFocus
        />
        <button type="submit" disabled={busy || !token.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error !== null && <ErrorBox error={error} />}
      </form>
    </main>
  );
}
