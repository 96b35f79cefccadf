import { useEffect, useRef, useState } from "react";
import { EditorState } from "@codemirror/state";
import { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from "@codemirror/view";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, defaultHighlightStyle, indentOnInput, syntaxHighlighting } from "@codemirror/language";
import { yaml as yamlLanguage } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { stringify } from "yaml";
import { api, ApiError } from "../api/client";
import type { Evaluation, FieldError } from "../api/types";
import { navigate, useLocation, useTitle } from "../router";
import { ErrorBox } from "../components/common";
import { useSession } from "../auth/session";
import { TEMPLATES } from "../lib/templates";
import { locatePath, yamlSyntaxErrors } from "../lib/yamlPaths";

interface PlacedError extends FieldError {
  line: number;
  from: number;
  to: number;
  exact: boolean;
}

const DRAFT_KEY = "airlock.draft";

export default function NewEvaluationPage() {
  useTitle("New evaluation");
  const { search } = useLocation();
  const from = new URLSearchParams(search).get("from");
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const [errors, setErrors] = useState<PlacedError[]>([]);
  const [failure, setFailure] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [syntax, setSyntax] = useState<string | null>(null);
  const viewer = useSession().me?.role === "viewer";

  useEffect(() => {
    const initial = sessionStorage.getItem(DRAFT_KEY) ?? TEMPLATES[0].text;
    const v = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: from ? "# Loading the spec…\n" : initial,
        extensions: [
          lineNumbers(),
          highlightActiveLineGutter(),
          highlightActiveLine(),
          drawSelection(),
          history(),
          indentOnInput(),
          bracketMatching(),
          syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
          yamlLanguage(),
          lintGutter(),
          keymap.of([...defaultKeymap, ...historyKeymap, indentWithTab]),
          EditorView.lineWrapping,
          EditorView.contentAttributes.of({ "aria-label": "Evaluation spec (YAML)" }),
          EditorView.updateListener.of((u) => {
            if (!u.docChanged) return;
            const text = u.state.doc.toString();
            sessionStorage.setItem(DRAFT_KEY, text);
            const syn = yamlSyntaxErrors(text);
            setSyntax(syn.length ? syn[0].message : null);
          }),
        ],
      }),
    });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
  }, [from]);

  useEffect(() => {
    if (!from) return;
    const ctrl = new AbortController();
    api<Evaluation>(`/api/v1/evaluations/${encodeURIComponent(from)}`, { signal: ctrl.signal })
      .then((e) => {
        const text = `# Copied from evaluation ${e.name} (${e.id})\n${stringify(e.spec)}`;
        setText(text);
      })
      .catch((err) => {
        if (!ctrl.signal.aborted) setFailure(err);
      });
    return () => ctrl.abort();
  }, [from]);

  const setText = (text: string) => {
    const v = view.current;
    if (!v) return;
    v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: text } });
    v.dispatch(setDiagnostics(v.state, []));
    setErrors([]);
    setFailure(null);
  };

  const goTo = (e: PlacedError) => {
    const v = view.current;
    if (!v) return;
    v.dispatch({ selection: { anchor: e.from, head: e.to }, scrollIntoView: true });
    v.focus();
  };

  const submit = async () => {
    const v = view.current;
    if (!v) return;
    const text = v.state.doc.toString();
    setBusy(true);
    setFailure(null);
    setErrors([]);
    v.dispatch(setDiagnostics(v.state, []));
    try {
      const created = await api<Evaluation>("/api/v1/evaluations", {
        method: "POST",
        body: text,
        contentType: "application/yaml",
      });
      sessionStorage.removeItem(DRAFT_KEY);
      navigate(`/evaluations/${created.id}`);
    } catch (err) {
      setFailure(err);
      if (err instanceof ApiError && err.fieldErrors.length) {
        const placed = err.fieldErrors.map((fe) => ({ ...fe, ...locatePath(text, fe.path) }));
        placed.sort((a, b) => a.from - b.from);
        setErrors(placed);
        const diags: Diagnostic[] = placed.map((p) => ({
          from: p.from,
          to: p.to,
          severity: "error",
          message: `${p.path || "spec"}: ${p.message}`,
        }));
        v.dispatch(setDiagnostics(v.state, diags));
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="new-eval">
      <div className="page-head">
        <h1>New evaluation</h1>
        <label>
          Start from a template
          <select
            defaultValue=""
            onChange={(e) => {
              const t = TEMPLATES.find((x) => x.id === e.target.value);
              if (t) setText(t.text);
              e.target.value = "";
            }}
          >
            <option value="" disabled>
              Choose…
            </option>
            {TEMPLATES.map((t) => (
              <option key={t.id} value={t.id}>
                {t.label}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className="muted small">
        YAML or JSON. Programs report scores and progress by appending JSON lines to <code>$AIRLOCK_EVENTS</code>. Ctrl/⌘+Enter submits.
      </p>
      <div
        className="editor"
        ref={host}
        data-testid="editor"
        onKeyDown={(e) => {
          if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            void submit();
          }
        }}
      />
      {syntax && (
        <p className="warn small" role="status">
          YAML: {syntax}
        </p>
      )}
      {errors.length > 0 && (
        <div className="error-box" role="alert" data-testid="field-errors">
          <strong>The spec has {errors.length === 1 ? "a problem" : `${errors.length} problems`}:</strong>
          <ul>
            {errors.map((e, i) => (
              <li key={i} data-testid="field-error" data-line={e.line}>
                <button type="button" className="link" onClick={() => goTo(e)}>
                  Line {e.line}
                </button>{" "}
                <code>{e.path || "(spec)"}</code>: {e.message}
                {!e.exact && <span className="muted"> (field missing; shown at its parent)</span>}
              </li>
            ))}
          </ul>
        </div>
      )}
      {failure !== null && errors.length === 0 && <ErrorBox error={failure} />}
      {viewer && (
        <p className="notice" role="status">
          Your role is viewer: you can edit here, but only researchers and admins can submit.
        </p>
      )}
      <div className="actions">
        <button type="button" onClick={submit} disabled={busy}>
          {busy ? "Submitting…" : "Submit evaluation"}
        </button>
      </div>
    </div>
  );
}
