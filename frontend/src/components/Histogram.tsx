import type { HistogramOut } from "../api/types";
import { formatNumber } from "../lib/format";

/** The distribution of one score's values (the server's bins) as SVG bars. */
export function Histogram({
  bins,
  count,
  name,
  width = 320,
  height = 120,
}: {
  bins: HistogramOut["bins"];
  count: number;
  name: string;
  width?: number;
  height?: number;
}) {
  if (bins.length === 0) return <p className="muted">No values yet.</p>;
  const pad = { l: 28, r: 6, t: 6, b: 20 };
  const w = width - pad.l - pad.r;
  const h = height - pad.t - pad.b;
  const maxCount = Math.max(...bins.map((b) => b.count));
  const bw = w / bins.length;
  const lo = bins[0].lo;
  const hi = bins[bins.length - 1].hi;
  return (
    <figure className="histogram">
      <svg
        width={width}
        height={height}
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`Distribution of ${name}: ${count} values from ${formatNumber(lo)} to ${formatNumber(hi)}`}
      >
        <line x1={pad.l} y1={pad.t + h} x2={pad.l + w} y2={pad.t + h} className="axis" />
        <line x1={pad.l} y1={pad.t} x2={pad.l} y2={pad.t + h} className="axis" />
        <text x={pad.l - 4} y={pad.t + 8} textAnchor="end" className="tick">
          {maxCount}
        </text>
        <text x={pad.l - 4} y={pad.t + h} textAnchor="end" className="tick">
          0
        </text>
        {bins.map((b, i) => {
          const bh = maxCount ? (b.count / maxCount) * h : 0;
          return (
            <rect key={i} x={pad.l + i * bw + 1} y={pad.t + h - bh} width={Math.max(1, bw - 2)} height={bh} className="bar">
              <title>
                {formatNumber(b.lo)} – {formatNumber(b.hi)}: {b.count}
              </title>
            </rect>
          );
        })}
        <text x={pad.l} y={height - 4} className="tick">
          {formatNumber(lo)}
        </text>
        <text x={pad.l + w} y={height - 4} textAnchor="end" className="tick">
          {formatNumber(hi)}
        </text>
      </svg>
    </figure>
  );
}
