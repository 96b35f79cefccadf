// "Why is my run not starting?", answered from the system view; and the replicas of the
// services that run and record runs (orchestrators, result-processors).
import type { ReplicaOut, SystemOut } from "../api/types";

/** The services that report replicas (the schema says `string`; these are the ones the page knows). */
export type ReplicaService = "orchestrator" | "result-processor";
/** live: holds its lease; lost: its lease expired (it died); stopped: it shut down cleanly. */
export type ReplicaState = "live" | "lost" | "stopped";

export const REPLICA_STATE_TEXT: Record<ReplicaState, string> = {
  live: "Live",
  lost: "Lost",
  stopped: "Stopped",
};

export function isReplicaState(s: string): s is ReplicaState {
  return s === "live" || s === "lost" || s === "stopped";
}

/** A replica's state in words ("Live", "Lost", "Stopped"); an unknown state as sent. */
export function replicaStateText(state: string): string {
  return isReplicaState(state) ? REPLICA_STATE_TEXT[state] : state;
}

/** The replicas of one service, in the order the API gave them (live first). */
export function replicasOf(s: Pick<SystemOut, "replicas">, service: ReplicaService | string): ReplicaOut[] {
  return s.replicas.filter((r) => r.service === service);
}

/** Partitions in words: "0, 3, 5"; "—" when none. */
export function partitionList(partitions: number[]): string {
  return partitions.length === 0 ? "—" : [...partitions].sort((a, b) => a - b).join(", ");
}

export function explain(s: SystemOut): string {
  const orchestrators = replicasOf(s, "orchestrator");
  if (orchestrators.length === 0) return "No orchestrator is running, so nothing can start.";
  if (!orchestrators.some((r) => r.state === "live"))
    return "Every orchestrator has stopped reporting; runs wait until one is back.";
  if (s.running >= s.capacity)
    return `Capacity is full (${s.running} of ${s.capacity} running); waiting runs start in priority order, then first come.`;
  const platform = s.platform_max_concurrent_runs;
  if (platform != null && s.running >= platform)
    return `The platform's limit is reached (${s.running} of ${platform} running over all teams); waiting runs start in priority order, then first come.`;
  const quota = s.team_max_concurrent_runs;
  if (quota != null && s.team_running >= quota)
    return `Your team's quota is full (${s.team_running} of ${quota} running); your waiting runs start as these finish.`;
  if (s.team_queued === 0) return "Nothing of your team is waiting.";
  return "There is room: waiting runs should start within moments.";
}
