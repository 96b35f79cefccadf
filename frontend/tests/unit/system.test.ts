import { describe, expect, it } from "vitest";
import type { ReplicaOut, SystemOut } from "../../src/api/types";
import { explain, partitionList, replicaStateText, replicasOf } from "../../src/lib/system";

const T = "2026-01-01T00:00:00Z";
const orchestrator = (o: Partial<ReplicaOut> = {}): ReplicaOut => ({
  id: "orchestrator-7c9d-host1-4f2a",
  service: "orchestrator",
  host: "host1",
  runtime: "local",
  capacity: 4,
  running: 0,
  partitions: [],
  roles: ["reaper"],
  state: "live",
  started_at: T,
  heartbeat_at: T,
  lease_expires_at: T,
  ended_at: null,
  ...o,
});
const resultProcessor = (o: Partial<ReplicaOut> = {}): ReplicaOut => ({
  id: "result-processor-1b2c-host2-9e0f",
  service: "result-processor",
  host: "host2",
  runtime: null,
  capacity: null,
  running: 0,
  partitions: [5, 0, 3],
  roles: ["housekeeping"],
  state: "live",
  started_at: T,
  heartbeat_at: T,
  lease_expires_at: T,
  ended_at: null,
  ...o,
});
const sys = (o: Partial<SystemOut>): SystemOut => ({
  capacity: 4,
  team_max_concurrent_runs: 2,
  platform_max_concurrent_runs: null,
  queued: 0,
  running: 0,
  team_queued: 0,
  team_running: 0,
  replicas: [orchestrator(), resultProcessor()],
  ...o,
});

describe("why a run is not starting", () => {
  it("says when no orchestrator is running at all", () => {
    expect(explain(sys({ capacity: 0, team_queued: 1, replicas: [] }))).toBe("No orchestrator is running, so nothing can start.");
    // A result-processor is not an orchestrator.
    expect(explain(sys({ capacity: 0, team_queued: 1, replicas: [resultProcessor()] }))).toMatch(/^No orchestrator is running/);
  });

  it("says when every orchestrator has stopped reporting (lost or stopped)", () => {
    const gone = [
      orchestrator({ state: "lost", ended_at: T }),
      orchestrator({ id: "orchestrator-2", state: "stopped", ended_at: T }),
      resultProcessor(),
    ];
    expect(explain(sys({ capacity: 0, queued: 2, team_queued: 1, replicas: gone }))).toBe(
      "Every orchestrator has stopped reporting; runs wait until one is back.",
    );
  });

  it("says when capacity is full, with the numbers", () => {
    expect(explain(sys({ queued: 3, running: 4, team_queued: 1, team_running: 2 }))).toBe(
      "Capacity is full (4 of 4 running); waiting runs start in priority order, then first come.",
    );
    // Capacity is the sum over live orchestrators, whatever replicas were lost.
    const two = [orchestrator({ capacity: 1 }), orchestrator({ id: "o2", capacity: 1 }), orchestrator({ id: "o3", state: "lost", ended_at: T })];
    expect(explain(sys({ capacity: 2, running: 2, team_queued: 1, team_max_concurrent_runs: null, replicas: two }))).toMatch(
      /^Capacity is full \(2 of 2 running\)/,
    );
  });

  it("says when the platform's limit over all teams is reached", () => {
    expect(explain(sys({ capacity: 8, platform_max_concurrent_runs: 3, running: 3, team_queued: 1, team_running: 1 }))).toBe(
      "The platform's limit is reached (3 of 3 running over all teams); waiting runs start in priority order, then first come.",
    );
    // No limit set: not the reason.
    expect(explain(sys({ capacity: 8, platform_max_concurrent_runs: null, running: 3, team_queued: 1, team_running: 1 }))).toMatch(
      /There is room/,
    );
  });

  it("says when the team's quota is full", () => {
    expect(explain(sys({ queued: 1, running: 2, team_queued: 1, team_running: 2 }))).toBe(
      "Your team's quota is full (2 of 2 running); your waiting runs start as these finish.",
    );
    // No quota: only capacity limits a team.
    expect(explain(sys({ queued: 1, running: 2, team_queued: 1, team_running: 2, team_max_concurrent_runs: null }))).toMatch(/There is room/);
  });

  it("says when nothing of the team is waiting", () => {
    expect(explain(sys({}))).toBe("Nothing of your team is waiting.");
    expect(explain(sys({ queued: 2, running: 1, team_running: 1 }))).toBe("Nothing of your team is waiting.");
  });

  it("says there is room otherwise", () => {
    expect(explain(sys({ queued: 1, running: 1, team_queued: 1, team_running: 1 }))).toBe(
      "There is room: waiting runs should start within moments.",
    );
  });
});

describe("replicas", () => {
  it("groups by service in the API's order, and says states and partitions in words", () => {
    const s = sys({ replicas: [orchestrator(), resultProcessor(), orchestrator({ id: "o-old", state: "stopped", ended_at: T })] });
    expect(replicasOf(s, "orchestrator").map((r) => r.id)).toEqual(["orchestrator-7c9d-host1-4f2a", "o-old"]);
    expect(replicasOf(s, "result-processor")).toHaveLength(1);
    expect(partitionList([5, 0, 3])).toBe("0, 3, 5");
    expect(partitionList([])).toBe("—");
    expect(["live", "lost", "stopped", "draining"].map(replicaStateText)).toEqual(["Live", "Lost", "Stopped", "draining"]);
  });
});
