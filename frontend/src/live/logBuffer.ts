// A run's log: every event once, in seq order, with a filtered view that is updated
// incrementally as lines arrive, so 100,000 lines stay cheap to append, filter and search.
import type { StoredEvent } from "../api/types";

export type LineKind = "stdout" | "stderr" | "event";

export interface LogLine {
  seq: number;
  ts: string;
  kind: LineKind;
  text: string;
}

export interface LogFilter {
  kinds: ReadonlySet<LineKind>;
  /** Case-insensitive substring; empty matches everything. */
  search: string;
}

export const ALL_KINDS: ReadonlySet<LineKind> = new Set<LineKind>(["stdout", "stderr", "event"]);

/** The text a line shows for an event. */
export function describeEvent(e: StoredEvent): { kind: LineKind; text: string } {
  const ev = e as StoredEvent & Record<string, unknown>;
  switch (ev.type) {
    case "log":
      return {
        kind: ev.stream === "stderr" ? "stderr" : "stdout",
        text: String(ev.message ?? "") + (ev.truncated ? " …[truncated]" : ""),
      };
    case "progress": {
      const pct = Math.round(Number(ev.fraction ?? 0) * 100);
      return { kind: "event", text: `progress ${pct}%${ev.message ? ` — ${ev.message}` : ""}` };
    }
    case "score":
      return { kind: "event", text: `score ${ev.name} = ${ev.value}` };
    case "warning":
      return {
        kind: "event",
        text: `warning: ${ev.message}${ev.count != null ? ` (${ev.count} lines)` : ""}`,
      };
    case "status": {
      const parts = [`status → ${ev.state}`];
      if (ev.reason) parts.push(`(${ev.reason})`);
      if (ev.exit_code != null) parts.push(`exit code ${ev.exit_code}`);
      return { kind: "event", text: parts.join(" ") };
    }
    case "exit":
      return { kind: "event", text: `exited${ev.code != null ? ` with code ${ev.code}` : ""}${ev.signal ? ` (signal ${ev.signal})` : ""}` };
    case "timed_out":
      return { kind: "event", text: `time limit reached (${ev.limit_secs}s)` };
    default:
      return { kind: "event", text: JSON.stringify(e) };
  }
}

export class LogBuffer {
  readonly lines: LogLine[] = [];
  private lastSeq = 0;
  private filter: LogFilter = { kinds: ALL_KINDS, search: "" };
  private needle = "";
  /** Indices into `lines` of the lines the filter shows. */
  private view: number[] = [];
  private allShown = true;
  counts: Record<LineKind, number> = { stdout: 0, stderr: 0, event: 0 };

  /** Appends events in seq order; duplicates and older seqs are ignored. Returns how many were new. */
  append(events: StoredEvent[]): number {
    let added = 0;
    for (const e of events) {
      if (e.seq <= this.lastSeq) continue;
      this.lastSeq = e.seq;
      const { kind, text } = describeEvent(e);
      const line: LogLine = { seq: e.seq, ts: e.ts, kind, text };
      const idx = this.lines.length;
      this.lines.push(line);
      this.counts[kind] += 1;
      if (!this.allShown && this.matches(line)) this.view.push(idx);
      added++;
    }
    return added;
  }

  get size(): number {
    return this.lines.length;
  }

  get lastSeqSeen(): number {
    return this.lastSeq;
  }

  setFilter(f: LogFilter): void {
    this.filter = f;
    this.needle = f.search.trim().toLowerCase();
    this.allShown = this.needle === "" && f.kinds.size === ALL_KINDS.size;
    this.view = [];
    if (!this.allShown) {
      for (let i = 0; i < this.lines.length; i++) if (this.matches(this.lines[i])) this.view.push(i);
    }
  }

  getFilter(): LogFilter {
    return this.filter;
  }

  /** Number of lines the filter shows. */
  get visibleCount(): number {
    return this.allShown ? this.lines.length : this.view.length;
  }

  /** The i-th line the filter shows. */
  visibleAt(i: number): LogLine {
    return this.allShown ? this.lines[i] : this.lines[this.view[i]];
  }

  private matches(l: LogLine): boolean {
    if (!this.filter.kinds.has(l.kind)) return false;
    return this.needle === "" || l.text.toLowerCase().includes(this.needle);
  }
}
