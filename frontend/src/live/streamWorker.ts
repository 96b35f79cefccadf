// Runs a page's WebSocket off the main thread: receives and parses every frame, drops
// events already seen (by run and seq, which also gives the resume point), and hands the
// page one batch about every 16 ms, so a stream of thousands of events per second costs
// the page a few messages per frame instead of thousands.
import { LiveSocket, SeqTracker } from "./socket";
import type { WorkerIn, WorkerOut } from "./streamProtocol";
import type { Frame } from "./evaluationState";

let socket: LiveSocket | null = null;
const seen = new SeqTracker();
let pending: Frame[] = [];
let timer: ReturnType<typeof setTimeout> | null = null;

const post = (m: WorkerOut) => (self as unknown as Worker).postMessage(m);

function flush() {
  timer = null;
  const frames = pending;
  pending = [];
  if (frames.length) post({ type: "frames", frames: frames as Frame[] });
}

self.onmessage = (e: MessageEvent<WorkerIn>) => {
  const m = e.data;
  if (m.type === "start") {
    socket = new LiveSocket({
      url: m.url,
      token: m.token,
      resumeFrom: m.resume ? () => seen.toResume() : undefined,
      onFrame: (f) => {
        if (f.type === "event") {
          const ev = f.event as { run_id: string; seq: number };
          if (!seen.accept(ev.run_id, ev.seq)) return;
        }
        pending.push(f);
        if (timer === null) timer = setTimeout(flush, 16);
      },
      onStatus: (status) => post({ type: "status", status }),
    });
    socket.start();
  } else if (m.type === "stop") {
    socket?.stop();
    socket = null;
    if (timer !== null) clearTimeout(timer);
    self.close();
  }
};
