import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../../src/api/types";
import { ALL_KINDS, LogBuffer, type LineKind } from "../../src/live/logBuffer";

function log(seq: number, message: string, stream: "stdout" | "stderr" = "stdout"): StoredEvent {
  return { run_id: "r", seq, attempt: 1, ts: "2026-01-01T00:00:00Z", type: "log", stream, message } as StoredEvent;
}
function status(seq: number, state: string, reason?: string): StoredEvent {
  return { run_id: "r", seq, attempt: 1, ts: "2026-01-01T00:00:00Z", type: "status", state, reason } as StoredEvent;
}

const visible = (b: LogBuffer) => Array.from({ length: b.visibleCount }, (_, i) => b.visibleAt(i).text);

describe("LogBuffer", () => {
  it("keeps each seq once, in order", () => {
    const b = new LogBuffer();
    expect(b.append([status(1, "queued"), log(2, "a"), log(3, "b")])).toBe(3);
    expect(b.append([log(2, "a"), log(3, "b"), log(4, "c")])).toBe(1);
    expect(b.size).toBe(4);
    expect(b.lastSeqSeen).toBe(4);
    expect(visible(b)).toEqual(["status → queued", "a", "b", "c"]);
  });

  it("filters by kind and search, and keeps the filter while lines stream in", () => {
    const b = new LogBuffer();
    b.append([status(1, "queued"), log(2, "Hello"), log(3, "oops", "stderr"), log(4, "hello again")]);
    b.setFilter({ kinds: new Set<LineKind>(["stdout"]), search: "" });
    expect(visible(b)).toEqual(["Hello", "hello again"]);
    b.setFilter({ kinds: ALL_KINDS, search: "HELLO" });
    expect(visible(b)).toEqual(["Hello", "hello again"]);
    b.append([log(5, "hello from stderr", "stderr"), log(6, "bye")]);
    expect(visible(b)).toEqual(["Hello", "hello again", "hello from stderr"]);
    b.setFilter({ kinds: new Set<LineKind>(["event", "stderr"]), search: "" });
    expect(visible(b)).toEqual(["status → queued", "oops", "hello from stderr"]);
    expect(b.counts).toEqual({ stdout: 3, stderr: 2, event: 1 });
  });

  it("appends 100,000 lines quickly", () => {
    const b = new LogBuffer();
    b.setFilter({ kinds: ALL_KINDS, search: "line 9999" });
    const events: StoredEvent[] = [];
    for (let i = 1; i <= 100_000; i++) events.push(log(i, `line ${i}`));
    const t = performance.now();
    b.append(events);
    const ms = performance.now() - t;
    expect(b.size).toBe(100_000);
    expect(b.visibleCount).toBe(11); // 9999 and 99990..99999
    expect(ms).toBeLessThan(2000);
  });
});
