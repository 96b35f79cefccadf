import { useCallback, useEffect, useRef } from "react";
import { flushSync } from "react-dom";
import type { Frame } from "./evaluationState";

/**
 * Collects frames and hands them over once per animation frame, so a burst of thousands
 * of frames costs one render instead of thousands.
 */
export function useFrameBatch(apply: (frames: Frame[]) => void): (f: Frame) => void {
  const pending = useRef<Frame[]>([]);
  const scheduled = useRef<number | null>(null);
  const applyRef = useRef(apply);
  applyRef.current = apply;

  useEffect(
    () => () => {
      if (scheduled.current !== null) cancelAnimationFrame(scheduled.current);
    },
    [],
  );

  return useCallback((f: Frame) => {
    pending.current.push(f);
    if (scheduled.current !== null) return;
    const flush = () => {
      scheduled.current = null;
      const frames = pending.current;
      pending.current = [];
      // Render inside this animation frame: a render scheduled as a task of its own would
      // queue behind the stream's message tasks and show late.
      if (frames.length) flushSync(() => applyRef.current(frames));
    };
    // Hidden tabs get no animation frames; a timer keeps them current.
    scheduled.current = document.hidden ? (setTimeout(flush, 250) as unknown as number) : requestAnimationFrame(flush);
  }, []);
}
