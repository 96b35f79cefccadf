import { describe, expect, it } from "vitest";
import { LiveSocket, SeqTracker, type WebSocketLike } from "../../src/live/socket";

class FakeSocket implements WebSocketLike {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  sent: string[] = [];
  closed = false;
  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {}
  send(d: string) {
    this.sent.push(d);
  }
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.({});
  }
  frame(f: object) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop() {
    this.onclose?.({});
  }
}

function harness(resume?: () => Record<string, number>) {
  const sockets: FakeSocket[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const frames: { type: string }[] = [];
  const statuses: string[] = [];
  const live = new LiveSocket({
    url: "ws://h/api/v1/evaluations/e1/stream?events=all",
    token: "alk_t",
    resumeFrom: resume,
    onFrame: (f) => frames.push(f),
    onStatus: (s) => statuses.push(s),
    createSocket: (u, p) => {
      const s = new FakeSocket(u, p);
      sockets.push(s);
      return s;
    },
    random: () => 1,
    setTimer: (fn, ms) => {
      timers.push({ fn, ms });
      return timers.length;
    },
    clearTimer: () => {},
  });
  return { live, sockets, timers, frames, statuses };
}

describe("LiveSocket", () => {
  it("authenticates with the subprotocols and does not resume on the first connection", () => {
    const h = harness(() => ({ r1: 5 }));
    h.live.start();
    expect(h.sockets[0].protocols).toEqual(["airlock.v1", "bearer.alk_t"]);
    expect(h.sockets[0].url).toBe("ws://h/api/v1/evaluations/e1/stream?events=all&resume=false");
    h.sockets[0].open();
    expect(h.sockets[0].sent).toEqual([]);
    expect(h.live.status).toBe("live");
  });

  it("reconnects with doubling backoff and resumes from the last seq per run", () => {
    let last: Record<string, number> = {};
    const h = harness(() => last);
    h.live.start();
    h.sockets[0].open();
    last = { r1: 7, r2: 3 };
    h.sockets[0].drop();
    expect(h.statuses).toContain("reconnecting");
    expect(h.timers.map((t) => t.ms)).toEqual([500]);
    h.timers[0].fn();
    // The second connection fails before opening: the delay doubles.
    h.sockets[1].drop();
    expect(h.timers.map((t) => t.ms)).toEqual([500, 1000]);
    h.timers[1].fn();
    const s = h.sockets[2];
    expect(s.url).toContain("resume=true");
    s.open();
    expect(JSON.parse(s.sent[0])).toEqual({ type: "resume", after_seq: { r1: 7, r2: 3 } });
    expect(h.live.status).toBe("live");
    // A completed backlog resets the backoff.
    s.frame({ type: "backlog_complete" });
    s.drop();
    expect(h.timers[2].ms).toBe(500);
  });

  it("leaves the resume parameter out for streams that do not resume", () => {
    const h = harness();
    h.live.start();
    h.sockets[0].open();
    h.sockets[0].drop();
    h.timers[0].fn();
    expect(h.sockets[1].url).toBe("ws://h/api/v1/evaluations/e1/stream?events=all");
    h.sockets[1].open();
    expect(h.sockets[1].sent).toEqual([]);
  });

  it("caps the backoff", () => {
    const h = harness();
    expect(h.live.backoffDelay(20)).toBe(15000);
  });

  it("passes frames on and stops for good on a fatal error", () => {
    const h = harness();
    h.live.start();
    h.sockets[0].open();
    h.sockets[0].frame({ type: "event", event: { run_id: "r", seq: 1 } });
    h.sockets[0].frame({ type: "error", code: "not_found", message: "no such evaluation" });
    expect(h.frames.map((f) => f.type)).toEqual(["event", "error"]);
    expect(h.live.status).toBe("closed");
    expect(h.timers).toHaveLength(0);
  });

  it("does not reconnect after stop", () => {
    const h = harness();
    h.live.start();
    h.sockets[0].open();
    h.live.stop();
    expect(h.sockets[0].closed).toBe(true);
    expect(h.timers).toHaveLength(0);
  });

  it("ignores frames that are not JSON", () => {
    const h = harness();
    h.live.start();
    h.sockets[0].onmessage?.({ data: "not json" });
    expect(h.frames).toHaveLength(0);
  });
});

describe("SeqTracker", () => {
  it("accepts each (run, seq) once and reports what to resume from", () => {
    const t = new SeqTracker();
    expect(t.accept("a", 1)).toBe(true);
    expect(t.accept("a", 2)).toBe(true);
    expect(t.accept("a", 2)).toBe(false);
    expect(t.accept("a", 1)).toBe(false);
    expect(t.accept("b", 1)).toBe(true);
    expect(t.toResume()).toEqual({ a: 2, b: 1 });
  });
});
