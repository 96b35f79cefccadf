// The evaluations list's filters, kept in the URL so a view can be shared.
import type { EvaluationStatus, SortOrder } from "../api/types";

export type SortKey = SortOrder;
export const SORTS: { key: SortKey; label: string }[] = [
  { key: "newest", label: "Newest first" },
  { key: "oldest", label: "Oldest first" },
  { key: "name_asc", label: "Name A–Z" },
  { key: "name_desc", label: "Name Z–A" },
];

export interface ListFilters {
  status: EvaluationStatus | "";
  /** `k=v,k2=v2` */
  label: string;
  name: string;
  owner: string;
  sort: SortKey;
  cursor: string;
}

export const EMPTY_FILTERS: ListFilters = {
  status: "",
  label: "",
  name: "",
  owner: "",
  sort: "newest",
  cursor: "",
};

const STATUSES = new Set(["queued", "running", "succeeded", "failed", "cancelled"]);
const SORT_KEYS = new Set(SORTS.map((s) => s.key));

export function filtersFromSearch(search: string): ListFilters {
  const q = new URLSearchParams(search);
  const status = q.get("status") ?? "";
  const sort = q.get("sort") ?? "newest";
  return {
    status: (STATUSES.has(status) ? status : "") as ListFilters["status"],
    label: q.get("label") ?? "",
    name: q.get("name") ?? "",
    owner: q.get("owner") ?? "",
    sort: (SORT_KEYS.has(sort as SortKey) ? sort : "newest") as SortKey,
    cursor: q.get("cursor") ?? "",
  };
}

/**
 * A view's filters as query parameters, in a stable order: only what differs from the
 * defaults, but the sort order always when `withSort`.
 */
function filterParams(f: ListFilters, withSort: boolean): URLSearchParams {
  const q = new URLSearchParams();
  if (f.status) q.set("status", f.status);
  const label = normaliseLabels(f.label);
  if (label) q.set("label", label);
  if (f.name.trim()) q.set("name", f.name.trim());
  if (f.owner.trim()) q.set("owner", f.owner.trim());
  if (withSort || f.sort !== "newest") q.set("sort", f.sort);
  if (f.cursor) q.set("cursor", f.cursor);
  return q;
}

/** The URL query of a view. */
export function filtersToSearch(f: ListFilters): string {
  const s = filterParams(f, false).toString();
  return s ? `?${s}` : "";
}

/** The API query for a view: its filters, the sort order always, and the page size. */
export function filtersToApiQuery(f: ListFilters, limit: number): string {
  const q = filterParams(f, true);
  q.set("limit", String(limit));
  return `?${q.toString()}`;
}

/** `a = 1, b=2 ,` → `a=1,b=2`; pieces without `=` are kept as typed so the server can say why. */
export function normaliseLabels(label: string): string {
  return label
    .split(",")
    .map((p) => p.trim())
    .filter(Boolean)
    .map((p) => {
      const i = p.indexOf("=");
      return i < 0 ? p : `${p.slice(0, i).trim()}=${p.slice(i + 1).trim()}`;
    })
    .join(",");
}

/** A change of filter starts again from the first page. */
export function withFilter(f: ListFilters, change: Partial<ListFilters>): ListFilters {
  return { ...f, ...change, cursor: "cursor" in change ? change.cursor ?? "" : "" };
}

export function isFirstPage(f: ListFilters): boolean {
  return !f.cursor;
}
