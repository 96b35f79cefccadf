import { describe, expect, it } from "vitest";
import {
  EMPTY_FILTERS,
  filtersFromSearch,
  filtersToApiQuery,
  filtersToSearch,
  normaliseLabels,
  withFilter,
} from "../../src/lib/filters";

describe("list filters", () => {
  it("round-trip through the URL", () => {
    const f = { ...EMPTY_FILTERS, status: "running" as const, label: "suite=a,team=b", name: "hel", owner: "ann", sort: "name_asc" as const };
    const s = filtersToSearch(f);
    expect(s).toBe("?status=running&label=suite%3Da%2Cteam%3Db&name=hel&owner=ann&sort=name_asc");
    expect(filtersFromSearch(s)).toEqual(f);
  });

  it("leave defaults out of the URL and ignore unknown values", () => {
    expect(filtersToSearch(EMPTY_FILTERS)).toBe("");
    expect(filtersFromSearch("?status=bogus&sort=sideways")).toEqual(EMPTY_FILTERS);
  });

  it("build the API query with sort and limit", () => {
    expect(filtersToApiQuery({ ...EMPTY_FILTERS, label: " a = 1 , b=2,", cursor: "c1" }, 50)).toBe(
      "?label=a%3D1%2Cb%3D2&sort=newest&cursor=c1&limit=50",
    );
  });

  it("go back to the first page when a filter changes", () => {
    const f = { ...EMPTY_FILTERS, cursor: "abc" };
    expect(withFilter(f, { name: "x" }).cursor).toBe("");
    expect(withFilter(f, { cursor: "def" }).cursor).toBe("def");
  });

  it("normalise labels", () => {
    expect(normaliseLabels("a=1, b = 2 ,,c")).toBe("a=1,b=2,c");
  });
});
