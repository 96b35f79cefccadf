import { lazy, Suspense, useEffect } from "react";
import { Link, matchPath, navigate, useLocation } from "./router";
import { refreshIdentity, signOut, useSession } from "./auth/session";
import { SignInPage } from "./pages/SignIn";
import { EvaluationsPage } from "./pages/Evaluations";
import { EvaluationPage } from "./pages/Evaluation";
import { RunPage } from "./pages/Run";
import { ComparePage } from "./pages/Compare";
import { SystemPage } from "./pages/System";
import { Loading } from "./components/common";

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
  return (
    <div>
      <h1>Not found</h1>
      <p>
        Nothing lives at <code>{pathname}</code>. <Link href="/">Back to the evaluations</Link>.
      </p>
    </div>
  );
}

const NAV = [
  { href: "/", label: "Evaluations", active: (p: string) => p === "/" || (p.startsWith("/evaluations") && p !== "/evaluations/new") },
  { href: "/evaluations/new", label: "New evaluation", active: (p: string) => p === "/evaluations/new" },
  { href: "/compare", label: "Compare", active: (p: string) => p === "/compare" },
  { href: "/system", label: "System", active: (p: string) => p === "/system" },
];

export function App() {
  const session = useSession();
  const { pathname, search } = useLocation();

  useEffect(() => {
    if (session.token && !session.me) refreshIdentity().catch(() => undefined);
  }, [session.token, session.me]);

  if (!session.token) {
    return <SignInPage next={pathname === "/signin" ? "/" : pathname + search} />;
  }
  if (pathname === "/signin") {
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
          {NAV.map((n) => (
            <Link key={n.href} href={n.href} aria-current={n.active(pathname) ? "page" : undefined}>
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
          <button type="button" className="secondary small" onClick={() => signOut()}>
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
