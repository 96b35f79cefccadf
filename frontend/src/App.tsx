import { lazy, Suspense, useEffect } from "react";
import { Link, matchPath, navigate, useLocation } from "./router";
import { checkSession, refreshIdentity, signOut, useSession } from "./auth/session";
import { SignInPage } from "./pages/SignIn";
import { EvaluationsPage } from "./pages/Evaluations";
import { EvaluationPage } from "./pages/Evaluation";
import { RunPage } from "./pages/Run";
import { ComparePage } from "./pages/Compare";
import { SystemPage } from "./pages/System";
import { Loading } from "./components/common";
import { navEntries } from "./lib/identity";

// Pages only some people open load on demand.
const TokensPage = lazy(() => import("./pages/Tokens"));
const TeamPage = lazy(() => import("./pages/admin/Team"));
const ServiceAccountsPage = lazy(() => import("./pages/admin/ServiceAccounts"));
const AuditPage = lazy(() => import("./pages/admin/Audit"));

const SIGN_IN_PATHS = new Set(["/sign-in", "/signin"]);

// The editor (CodeMirror and the YAML parser) loads only when a researcher opens it.
const NewEvaluationPage = lazy(() => import("./pages/NewEvaluation"));

function Route() {
  const { pathname } = useLocation();
  let m: Record<string, string> | null;
  if (pathname === "/" || pathname === "/evaluations") return <EvaluationsPage />;
  if (pathname === "/evaluations/new")
    return (
      <Suspense fallback={<Loading what="Loading the editor" />}>
        <NewEvaluationPage />
      </Suspense>
    );
  if ((m = matchPath("/evaluations/:id", pathname))) return <EvaluationPage key={m.id} id={m.id} />;
  if ((m = matchPath("/runs/:id", pathname))) return <RunPage key={m.id} id={m.id} />;
  if (pathname === "/compare") return <ComparePage />;
  if (pathname === "/system") return <SystemPage />;
  const lazyPage =
    pathname === "/tokens" ? (
      <TokensPage />
    ) : pathname === "/admin/team" ? (
      <TeamPage />
    ) : pathname === "/admin/service-accounts" ? (
      <ServiceAccountsPage />
    ) : pathname === "/admin/audit" ? (
      <AuditPage />
    ) : null;
  if (lazyPage) return <Suspense fallback={<Loading />}>{lazyPage}</Suspense>;
  return (
    <div>
      <h1>Not found</h1>
      <p>
        Nothing lives at <code>{pathname}</code>. <Link href="/">Back to the evaluations</Link>.
      </p>
    </div>
  );
}

function isActive(href: string, p: string): boolean {
  if (href === "/") return p === "/" || (p.startsWith("/evaluations") && p !== "/evaluations/new");
  return p === href;
}

export function App() {
  const session = useSession();
  const { pathname, search } = useLocation();

  useEffect(() => {
    if (session.status === "checking") checkSession().catch(() => undefined);
    else if (session.status === "signed_in" && !session.me) refreshIdentity().catch(() => undefined);
  }, [session.status, session.me]);

  if (session.status === "checking") {
    return (
      <main className="signin" id="main">
        <Loading what="Checking who is signed in" />
      </main>
    );
  }
  if (session.status === "signed_out") {
    return <SignInPage next={SIGN_IN_PATHS.has(pathname) ? "/" : pathname + search} />;
  }
  if (SIGN_IN_PATHS.has(pathname)) {
    navigate("/", { replace: true });
    return null;
  }
  return (
    <div className="app">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link href="/" className="brand">
          Airlock
        </Link>
        <nav aria-label="Main">
          {navEntries(session.me).map((n) => (
            <Link key={n.href} href={n.href} aria-current={isActive(n.href, pathname) ? "page" : undefined}>
              {n.label}
            </Link>
          ))}
        </nav>
        <div className="who" data-testid="identity">
          {session.me ? (
            <>
              Signed in as <strong>{session.me.user}</strong> · team <strong>{session.me.team}</strong>{" "}
              <span className="muted">({session.me.role})</span>
            </>
          ) : (
            <span className="muted">Signed in</span>
          )}
          <button type="button" className="secondary small" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main">
        <Route />
      </main>
    </div>
  );
}
