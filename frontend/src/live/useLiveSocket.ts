import { useEffect, useRef, useState } from "react";
import { wsUrl } from "../api/client";
import { getToken } from "../auth/session";
import { LiveSocket, SeqTracker, type LiveStatus } from "./socket";
import type { Frame } from "./evaluationState";
import type { WorkerIn, WorkerOut } from "./streamProtocol";

/**
 * One WebSocket for the page while `path` is set (in a worker where the browser has
 * them); frames arrive in batches, events de-duplicated by (run, seq). With `resume`,
 * a reconnect resumes after the last seq seen per run. Returns the status for the
 * live indicator.
 */
export function useLiveSocket(
  path: string | null,
  onFrames: (frames: Frame[]) => void,
  opts: { resume?: boolean } = {},
): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const framesRef = useRef(onFrames);
  framesRef.current = onFrames;
  const resume = !!opts.resume;

  useEffect(() => {
    if (!path) return;
    setStatus("connecting");
    const url = wsUrl(path);
    const token = getToken();
    if (typeof Worker !== "undefined") {
      const w = new Worker(new URL("./streamWorker.ts", import.meta.url), { type: "module" });
      w.onmessage = (e: MessageEvent<WorkerOut>) => {
        if (e.data.type === "frames") framesRef.current(e.data.frames);
        else setStatus(e.data.status);
      };
      const start: WorkerIn = { type: "start", url, token, resume };
      w.postMessage(start);
      return () => {
        w.postMessage({ type: "stop" } satisfies WorkerIn);
        // The worker closes its socket and itself; terminate in case it cannot.
        setTimeout(() => w.terminate(), 1000);
      };
    }
    const seen = new SeqTracker();
    const s = new LiveSocket({
      url,
      token,
      resumeFrom: resume ? () => seen.toResume() : undefined,
      onFrame: (f) => {
        if (f.type === "event") {
          const ev = f.event as { run_id: string; seq: number };
          if (!seen.accept(ev.run_id, ev.seq)) return;
        }
        framesRef.current([f]);
      },
      onStatus: setStatus,
    });
    s.start();
    return () => s.stop();
  }, [path, resume]);

  return status;
}
