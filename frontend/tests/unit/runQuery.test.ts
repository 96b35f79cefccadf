import { describe, expect, it } from "vitest";
import { filterStates, matching, runsQuery } from "../../src/lib/runQuery";

describe("the runs table's requests", () => {
  it("send the filter as states and the sort as the API names it", () => {
    expect(runsQuery("", "order", null)).toBe("limit=200");
    expect(runsQuery("problems", "score_desc:acc", "abc", 50)).toBe(
      "limit=50&state=failed%2Cerror%2Ctimed_out&sort=score_desc%3Aacc&cursor=abc",
    );
    expect(filterStates("waiting")).toEqual(["queued", "scheduling"]);
    expect(filterStates("running")).toEqual(["running"]);
  });

  it("count what the filter matches from the evaluation's counts", () => {
    const counts = { queued: 3, scheduling: 2, failed: 1, timed_out: 4 };
    expect(matching("", counts, 99)).toBe(99);
    expect(matching("waiting", counts, 99)).toBe(5);
    expect(matching("problems", counts, 99)).toBe(5);
    expect(matching("cancelled", counts, 99)).toBe(0);
  });
});
