import { useCallback, useEffect, useRef } from "react";
import { flushSync } from "react-dom";
import type { Frame } from "./evaluationState";

/**
 * Collects frames and applies them once per animation frame, rendering inside that
 * frame: a burst of thousands of frames costs one render, and the render is not a task
 * of its own queued behind the stream's messages.
 */
export function useFrameBatch(apply: (frames: Frame[]) => void): (frames: Frame[]) => void {
  const pending = useRef<Frame[]>([]);
  const scheduled = useRef<{ raf: number | null; timer: ReturnType<typeof setTimeout> | null }>({ raf: null, timer: null });
  const applyRef = useRef(apply);
  applyRef.current = apply;

  useEffect(
    () => () => {
      const s = scheduled.current;
      if (s.raf !== null) cancelAnimationFrame(s.raf);
      if (s.timer !== null) clearTimeout(s.timer);
    },
    [],
  );

  return useCallback((frames: Frame[]) => {
    for (const f of frames) pending.current.push(f);
    const s = scheduled.current;
    if (s.raf !== null || s.timer !== null) return;
    const flush = () => {
      if (s.raf !== null) cancelAnimationFrame(s.raf);
      if (s.timer !== null) clearTimeout(s.timer);
      s.raf = null;
      s.timer = null;
      const batch = pending.current;
      pending.current = [];
      if (batch.length) flushSync(() => applyRef.current(batch));
    };
    // Hidden tabs get no animation frames; the timer keeps them current all the same.
    s.raf = requestAnimationFrame(flush);
    s.timer = setTimeout(flush, 250);
  }, []);
}
