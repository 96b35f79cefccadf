import { describe, expect, it } from "vitest";
import type { SystemOut } from "../../src/api/types";
import { explain } from "../../src/lib/system";

const orchestrator = {
  runtime: "local",
  max_concurrent_runs: 4,
  team_max_concurrent_runs: 2,
  started_at: "2026-01-01T00:00:00Z",
  seen_at: "2026-01-01T00:00:00Z",
  online: true,
};
const sys = (o: Partial<SystemOut>): SystemOut => ({ orchestrator, queued: 0, running: 0, team_queued: 0, team_running: 0, ...o }) as SystemOut;

describe("why a run is not starting", () => {
  it("names the missing or silent orchestrator", () => {
    expect(explain(sys({ orchestrator: null, team_queued: 1 }), null)).toMatch(/No orchestrator/);
    expect(explain(sys({ orchestrator: { ...orchestrator, online: false }, team_queued: 1 }), 2)).toMatch(/stopped reporting/);
  });
  it("tells a full capacity from a full team quota", () => {
    expect(explain(sys({ queued: 3, running: 4, team_queued: 1, team_running: 2 }), 2)).toBe(
      "Capacity is full (4 of 4 running); waiting runs start in priority order, then first come.",
    );
    expect(explain(sys({ queued: 1, running: 2, team_queued: 1, team_running: 2 }), 2)).toMatch(/^Your team's quota is full \(2 of 2/);
    expect(explain(sys({ queued: 1, running: 1, team_queued: 1, team_running: 1 }), 2)).toMatch(/There is room/);
    expect(explain(sys({}), 2)).toBe("Nothing of your team is waiting.");
  });
});
