import { useEffect, useRef, useState } from "react";
import { wsUrl } from "../api/client";
import { getToken } from "../auth/session";
import { LiveSocket, type LiveStatus } from "./socket";
import type { Frame } from "./evaluationState";

/** One WebSocket for the page while `path` is set; returns its status for the indicator. */
export function useLiveSocket(
  path: string | null,
  onFrame: (frame: Frame) => void,
  resumeFrom?: () => Record<string, number>,
): LiveStatus {
  const [status, setStatus] = useState<LiveStatus>("connecting");
  const frameRef = useRef(onFrame);
  frameRef.current = onFrame;
  const resumeRef = useRef(resumeFrom);
  resumeRef.current = resumeFrom;

  useEffect(() => {
    if (!path) return;
    setStatus("connecting");
    const s = new LiveSocket({
      url: wsUrl(path),
      token: getToken(),
      resumeFrom: resumeRef.current ? () => resumeRef.current?.() ?? {} : undefined,
      onFrame: (f) => frameRef.current(f),
      onStatus: setStatus,
    });
    s.start();
    return () => s.stop();
  }, [path]);

  return status;
}
