import type { ScoreSummary, StateCounts } from "../api/types";

export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  const s = Math.floor(ms / 1000);
  if (s < 1) return `${Math.max(0, Math.round(ms))} ms`;
  if (s < 60) return `${(ms / 1000).toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m % 60} min`;
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

export function durationBetween(start?: string | null, end?: string | null, now = Date.now()): number | null {
  if (!start) return null;
  const a = Date.parse(start);
  const b = end ? Date.parse(end) : Math.max(now, Date.now());
  return Math.max(0, b - a);
}

export function formatAge(iso: string, now = Date.now()): string {
  const ms = now - Date.parse(iso);
  if (ms < 60_000) return "just now";
  return `${formatDuration(ms).replace(/ \d+ (s|min)$/, "")} ago`;
}

export function formatTime(iso?: string | null): string {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function formatNumber(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return "—";
  if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
  const abs = Math.abs(v);
  if (abs !== 0 && (abs < 1e-3 || abs >= 1e6)) return v.toExponential(2);
  return v.toFixed(digits);
}

/** "0.812 ± 0.013" (mean ± standard error). */
export function formatMeanStderr(s: Pick<ScoreSummary, "mean" | "stderr">): string {
  return s.stderr == null ? formatNumber(s.mean) : `${formatNumber(s.mean)} ± ${formatNumber(s.stderr)}`;
}

export function headlineScore(scores: ScoreSummary[] | undefined): ScoreSummary | null {
  if (!scores || scores.length === 0) return null;
  return [...scores].sort((a, b) => a.name.localeCompare(b.name))[0];
}

const DONE = ["succeeded", "failed", "error", "timed_out", "cancelled"] as const;

export function runsDone(c: StateCounts): number {
  return DONE.reduce((n, k) => n + (c[k] ?? 0), 0);
}
