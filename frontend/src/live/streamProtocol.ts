import type { LiveStatus } from "./socket";
import type { Frame } from "./evaluationState";

/** Page → stream worker. */
export type WorkerIn = { type: "start"; url: string; token: string | null; resume: boolean } | { type: "stop" };

/** Stream worker → page. */
export type WorkerOut = { type: "frames"; frames: Frame[] } | { type: "status"; status: LiveStatus };
