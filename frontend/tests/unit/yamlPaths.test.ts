import { describe, expect, it } from "vitest";
import { locatePath, parsePath, yamlSyntaxErrors } from "../../src/lib/yamlPaths";

const SPEC = `name: demo
image: alpine
command: [sh, -c, "true"]
tasks:
  - id: a
    input: 1
  - id: a
    input: 2
resources:
  cpu: 500m
  memory: lots
`;

describe("yaml paths", () => {
  it("parse field paths", () => {
    expect(parsePath("tasks[3].id")).toEqual(["tasks", 3, "id"]);
    expect(parsePath("resources.memory")).toEqual(["resources", "memory"]);
    expect(parsePath("")).toEqual([]);
  });

  it("place a path at its line", () => {
    expect(locatePath(SPEC, "tasks[1].id")).toMatchObject({ line: 7, exact: true });
    const mem = locatePath(SPEC, "resources.memory");
    expect(mem).toMatchObject({ line: 11, exact: true });
    expect(SPEC.slice(mem.from, mem.to)).toBe("memory: lots");
    expect(locatePath(SPEC, "tasks[1]")).toMatchObject({ line: 7 });
    expect(locatePath(SPEC, "name").line).toBe(1);
  });

  it("fall back to the nearest ancestor for a missing field, and to line 1 for the root", () => {
    expect(locatePath(SPEC, "resources.gpu")).toMatchObject({ line: 9, exact: false });
    expect(locatePath(SPEC, "")).toMatchObject({ line: 1, exact: true });
    expect(locatePath(SPEC, "tasks[9].id")).toMatchObject({ line: 4, exact: false });
  });

  it("work on flow-style JSON too", () => {
    const json = '{\n  "name": "x",\n  "tasks": [\n    {"id": "a"},\n    {"id": "a"}\n  ]\n}\n';
    expect(locatePath(json, "tasks[1].id").line).toBe(5);
  });

  it("report YAML syntax errors", () => {
    expect(yamlSyntaxErrors("a: [1, 2\n")).not.toHaveLength(0);
    expect(yamlSyntaxErrors(SPEC)).toHaveLength(0);
  });
});
