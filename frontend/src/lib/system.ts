// "Why is my run not starting?", answered from the system view.
import type { SystemOut } from "../api/types";

export function explain(s: SystemOut, teamLimit: number | null): string {
  const o = s.orchestrator;
  if (!o) return "No orchestrator is connected, so nothing can start.";
  if (!o.online) return "The orchestrator has stopped reporting; runs wait until it is back.";
  if (s.team_queued === 0) return "Nothing of your team is waiting.";
  if (s.running >= o.max_concurrent_runs)
    return `Capacity is full (${s.running} of ${o.max_concurrent_runs} running); waiting runs start in priority order, then first come.`;
  if (o.team_max_concurrent_runs != null && teamLimit != null && s.team_running >= teamLimit)
    return `Your team's quota is full (${s.team_running} of ${teamLimit} running); your waiting runs start as these finish.`;
  return "There is room: waiting runs should start within moments.";
}
