// A fixed-row-height virtualised list: only the rows in view (plus a margin) are in the DOM.
import { useCallback, useEffect, useLayoutEffect, useRef, useState, type ReactNode, type UIEvent } from "react";

export interface VirtualListProps {
  count: number;
  rowHeight: number;
  renderRow: (index: number) => ReactNode;
  /** Height of the scrolling box (CSS). */
  height: number | string;
  overscan?: number;
  /** Keep the view pinned to the last row while this is true. */
  followTail?: boolean;
  /** Called with true when the user is at the bottom, false when they scrolled up. */
  onAtBottomChange?: (atBottom: boolean) => void;
  className?: string;
  ariaLabel?: string;
  role?: string;
  /** Changes whenever the rows' content changes without the count changing. */
  version?: unknown;
  header?: ReactNode;
}

export function VirtualList({
  count,
  rowHeight,
  renderRow,
  height,
  overscan = 8,
  followTail = false,
  onAtBottomChange,
  className,
  ariaLabel,
  role = "list",
  header,
}: VirtualListProps) {
  const ref = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewport, setViewport] = useState(600);
  const atBottom = useRef(true);
  const programmatic = useRef(false);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el) return;
    setViewport(el.clientHeight);
    const ro = new ResizeObserver(() => setViewport(el.clientHeight));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  useLayoutEffect(() => {
    const el = ref.current;
    if (!el || !followTail) return;
    const target = el.scrollHeight - el.clientHeight;
    if (Math.abs(el.scrollTop - target) > 1) {
      programmatic.current = true;
      el.scrollTop = target;
      setScrollTop(el.scrollTop);
    }
  }, [count, followTail]);

  const onScroll = useCallback(
    (e: UIEvent<HTMLDivElement>) => {
      const el = e.currentTarget;
      setScrollTop(el.scrollTop);
      if (programmatic.current) {
        programmatic.current = false;
        return;
      }
      // Reading the heights forces a layout: only lists that care about the bottom pay it.
      if (!onAtBottomChange) return;
      const bottom = el.scrollTop + el.clientHeight >= el.scrollHeight - rowHeight;
      if (bottom !== atBottom.current) {
        atBottom.current = bottom;
        onAtBottomChange?.(bottom);
      }
    },
    [onAtBottomChange, rowHeight],
  );

  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    // Wheel or keys moving up while following: the user wants to read, so stop following.
    const up = (ev: WheelEvent) => {
      if (ev.deltaY < 0 && atBottom.current) {
        atBottom.current = false;
        onAtBottomChange?.(false);
      }
    };
    el.addEventListener("wheel", up, { passive: true });
    return () => el.removeEventListener("wheel", up);
  }, [onAtBottomChange]);

  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewport) / rowHeight) + overscan);
  // Rows are keyed by slot, not index: scrolling reuses the same elements with new
  // content instead of creating and removing them.
  const slots = Math.ceil(viewport / rowHeight) + 2 * overscan + 2;
  const rows: ReactNode[] = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <div
        key={i % slots}
        className="vrow"
        role={role === "list" ? "listitem" : "row"}
        aria-rowindex={role === "list" ? undefined : i + 2}
        style={{ position: "absolute", top: i * rowHeight, height: rowHeight, left: 0, right: 0 }}
      >
        {renderRow(i)}
      </div>,
    );
  }
  return (
    <div
      ref={ref}
      className={`vlist ${className ?? ""}`}
      style={{ height, overflowY: "auto", position: "relative" }}
      onScroll={onScroll}
      tabIndex={0}
      role={role}
      aria-label={ariaLabel}
      aria-rowcount={role === "list" ? undefined : count + 1}
    >
      {header}
      <div style={{ height: count * rowHeight, position: "relative" }}>{rows}</div>
    </div>
  );
}
