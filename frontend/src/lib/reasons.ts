// Why a run waits or did not succeed, in plain words.
import type { RunSnapshot } from "../api/types";

export function runReason(r: Pick<RunSnapshot, "state" | "reason" | "exit_code">): string | null {
  const reason = r.reason?.trim();
  switch (r.state) {
    case "queued":
      return reason || "Waiting for the scheduler to pick it up.";
    case "scheduling":
      return reason ? `Waiting: ${reason}.` : "Waiting for a free slot.";
    case "starting":
      return reason || null;
    case "failed":
      return r.exit_code != null
        ? `The program exited with code ${r.exit_code}.${reason ? ` ${reason}` : ""}`
        : reason || "The program failed.";
    case "timed_out":
      return reason || "The program ran past its time limit and was stopped.";
    case "error":
      return reason ? `Platform error: ${reason}.` : "The platform or the sandbox broke.";
    case "cancelled":
      return reason || "Cancelled before it finished.";
    default:
      return null;
  }
}

/** Whether a run's reason deserves a column (it waits or did not succeed). */
export function needsReason(state: string): boolean {
  return state !== "running" && state !== "succeeded" && state !== "starting";
}
