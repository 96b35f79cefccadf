// One WebSocket per page: reconnects with exponential backoff and resumes from the last
// seq seen per run, so nothing is missed and (with de-duplication) nothing is shown twice.

export type LiveStatus = "connecting" | "live" | "reconnecting" | "closed";

export interface WebSocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface LiveSocketOptions {
  /** Absolute ws(s):// URL of the stream, with its query, without `resume`. */
  url: string;
  /** A pasted API token; null for a cookie session. */
  token: string | null;
  /** Last seq seen per run; on a reconnect the stream resumes after these. */
  resumeFrom?: () => Record<string, number>;
  onFrame: (frame: { type: string } & Record<string, unknown>) => void;
  onStatus?: (status: LiveStatus) => void;
  createSocket?: (url: string, protocols: string[]) => WebSocketLike;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  random?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

/** Error codes after which reconnecting cannot help. */
const FATAL_CODES = new Set(["unauthorized", "forbidden", "not_found"]);

export class LiveSocket {
  private ws: WebSocketLike | null = null;
  private attempt = 0;
  private connectedOnce = false;
  private stopped = false;
  private timer: unknown = null;
  private statusValue: LiveStatus = "connecting";
  private readonly o: Required<Omit<LiveSocketOptions, "resumeFrom" | "onStatus">> &
    Pick<LiveSocketOptions, "resumeFrom" | "onStatus">;

  constructor(opts: LiveSocketOptions) {
    this.o = {
      createSocket: (url, protocols) => new WebSocket(url, protocols) as unknown as WebSocketLike,
      initialBackoffMs: 500,
      maxBackoffMs: 15000,
      random: Math.random,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      ...opts,
    };
  }

  get status(): LiveStatus {
    return this.statusValue;
  }

  /** How many reconnects have been tried since the last good connection. */
  get attempts(): number {
    return this.attempt;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) this.o.clearTimer(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try {
        ws.close(1000, "page closed");
      } catch {
        /* already closed */
      }
    }
    this.setStatus("closed");
  }

  /** The delay before reconnect number `attempt` (0-based): doubling, capped, jittered. */
  backoffDelay(attempt: number): number {
    const base = Math.min(this.o.maxBackoffMs, this.o.initialBackoffMs * 2 ** attempt);
    return Math.round(base * (0.5 + 0.5 * this.o.random()));
  }

  private setStatus(s: LiveStatus) {
    if (s === this.statusValue) return;
    this.statusValue = s;
    this.o.onStatus?.(s);
  }

  private connect() {
    const resume = this.connectedOnce && this.o.resumeFrom ? this.o.resumeFrom() : null;
    const sep = this.o.url.includes("?") ? "&" : "?";
    // Streams without per-run resume (the team stream) get no resume parameter at all.
    const url = this.o.resumeFrom ? `${this.o.url}${sep}resume=${resume ? "true" : "false"}` : this.o.url;
    // A pasted token goes as a subprotocol; a cookie session needs nothing here: the
    // browser sends same-origin cookies with the upgrade request.
    const protocols = ["airlock.v1"];
    if (this.o.token) protocols.push(`bearer.${this.o.token}`);
    let ws: WebSocketLike;
    try {
      ws = this.o.createSocket(url, protocols);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (resume) ws.send(JSON.stringify({ type: "resume", after_seq: resume }));
      this.connectedOnce = true;
      this.setStatus("live");
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      let frame: { type: string } & Record<string, unknown>;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame.type === "backlog_complete") this.attempt = 0;
      if (frame.type === "error" && FATAL_CODES.has(String(frame.code))) {
        this.o.onFrame(frame);
        this.stop();
        return;
      }
      this.o.onFrame(frame);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect() {
    if (this.stopped) return;
    this.setStatus("reconnecting");
    const delay = this.backoffDelay(this.attempt);
    this.attempt += 1;
    this.timer = this.o.setTimer(() => {
      this.timer = null;
      if (!this.stopped) this.connect();
    }, delay);
  }
}

/** Remembers the last seq per run; accepts each (run_id, seq) once. */
export class SeqTracker {
  private last = new Map<string, number>();

  /** True when the event is new (its seq is past the last one accepted for its run). */
  accept(runId: string, seq: number): boolean {
    const prev = this.last.get(runId) ?? 0;
    if (seq <= prev) return false;
    this.last.set(runId, seq);
    return true;
  }

  lastSeq(runId: string): number {
    return this.last.get(runId) ?? 0;
  }

  toResume(): Record<string, number> {
    return Object.fromEntries(this.last);
  }

  clear() {
    this.last.clear();
  }
}
