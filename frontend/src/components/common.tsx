import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError } from "../api/client";
import type { LiveStatus } from "../live/socket";
import type { RunState, StateCounts } from "../api/types";
import { RUN_STATES } from "../api/types";

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="muted" role="status" aria-live="polite">
      {what}…
    </p>
  );
}

export function ErrorBox({ error, onRetry }: { error: unknown; onRetry?: () => void }) {
  const e = error as Partial<ApiError> & { message?: string };
  const title = e instanceof ApiError && e.status ? `Error ${e.status} (${e.code})` : "Error";
  return (
    <div className="error-box" role="alert">
      <strong>{title}: </strong>
      <span>{e?.message ?? String(error)}</span>
      {onRetry && (
        <button type="button" className="secondary" onClick={onRetry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

const LIVE_TEXT: Record<LiveStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};

export function LiveIndicator({ status }: { status: LiveStatus }) {
  return (
    <span className={`live live-${status}`} role="status" aria-live="polite" data-testid="live-indicator">
      <span className="dot" aria-hidden="true" />
      {LIVE_TEXT[status]}
    </span>
  );
}

export function StatusBadge({ state }: { state: string }) {
  return <span className={`badge state-${state}`}>{state.replace("_", " ")}</span>;
}

/** A bar with one segment per run state, and the counts in words for screen readers. */
export function CountsBar({ counts, total }: { counts: StateCounts; total: number }) {
  const parts = RUN_STATES.filter((s) => (counts[s] ?? 0) > 0);
  const label = parts.map((s) => `${counts[s]} ${s.replace("_", " ")}`).join(", ") || "no runs";
  return (
    <div className="counts-bar" role="img" aria-label={label} title={label}>
      {parts.map((s) => (
        <span key={s} className={`seg state-${s}`} style={{ flexGrow: counts[s] ?? 0 }} />
      ))}
      {total === 0 && <span className="seg" style={{ flexGrow: 1 }} />}
    </div>
  );
}

export function CountsText({ counts }: { counts: StateCounts }) {
  const parts = (RUN_STATES as RunState[]).filter((s) => (counts[s] ?? 0) > 0);
  return (
    <span className="counts-text">
      {parts.map((s) => (
        <span key={s} className={`count state-text-${s}`}>
          {counts[s]} {s.replace("_", " ")}
        </span>
      ))}
    </span>
  );
}

export interface AsyncState<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: (update: (d: T | null) => T | null) => void;
}

/** Runs `load` when `key` changes; aborts the previous request. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, key: string): AsyncState<T> {
  const [data, setDataState] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [nonce, setNonce] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  useEffect(() => {
    const ctrl = new AbortController();
    setLoading(true);
    setError(null);
    loadRef
      .current(ctrl.signal)
      .then((d) => {
        if (!ctrl.signal.aborted) {
          setDataState(d);
          setLoading(false);
        }
      })
      .catch((e) => {
        if (!ctrl.signal.aborted) {
          setError(e);
          setLoading(false);
        }
      });
    return () => ctrl.abort();
  }, [key, nonce]);

  const reload = useCallback(() => setNonce((n) => n + 1), []);
  const setData = useCallback((u: (d: T | null) => T | null) => setDataState(u), []);
  return { data, error, loading, reload, setData };
}

/** A button that asks for confirmation in place before acting. */
export function ConfirmButton({
  label,
  question,
  confirmLabel,
  onConfirm,
  disabled,
  danger,
}: {
  label: string;
  question: string;
  confirmLabel: string;
  onConfirm: () => Promise<void> | void;
  disabled?: boolean;
  danger?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const confirmRef = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (asking) confirmRef.current?.focus();
  }, [asking]);
  if (!asking) {
    return (
      <button type="button" className={danger ? "danger" : ""} disabled={disabled} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  }
  return (
    <span
      className="confirm"
      role="alertdialog"
      aria-label={question}
      onKeyDown={(e) => {
        if (e.key === "Escape") setAsking(false);
      }}
    >
      <span>{question}</span>
      <button
        ref={confirmRef}
        type="button"
        className={danger ? "danger" : ""}
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        {confirmLabel}
      </button>
      <button type="button" className="secondary" onClick={() => setAsking(false)}>
        Keep it
      </button>
    </span>
  );
}

/** Re-renders every `ms` (for ages and running durations). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

/** A labelled form control: the label names the control alone (not its options). */
export function Field({ id, label, children, className }: { id: string; label: string; children: ReactNode; className?: string }) {
  return (
    <div className={`field ${className ?? ""}`}>
      <label htmlFor={id}>{label}</label>
      {children}
    </div>
  );
}

/** `value`, but changing at most once per `ms` (the latest value is always delivered). */
export function useThrottled<T>(value: T, ms: number): T {
  const [out, setOut] = useState(value);
  const last = useRef(0);
  useEffect(() => {
    if (ms <= 0) {
      setOut(value);
      return;
    }
    const wait = last.current + ms - Date.now();
    if (wait <= 0) {
      last.current = Date.now();
      setOut(value);
      return;
    }
    const t = setTimeout(() => {
      last.current = Date.now();
      setOut(value);
    }, wait);
    return () => clearTimeout(t);
  }, [value, ms]);
  return ms <= 0 ? value : out;
}
