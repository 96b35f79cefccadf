// Fails when src/api/schema.d.ts differs from what openapi-typescript generates from
// the gateway's committed OpenAPI document (regenerate with `npm run gen:api`).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "airlock-api-types-"));
const out = join(dir, "schema.d.ts");
try {
  execFileSync(join(root, "node_modules/.bin/openapi-typescript"), ["../crates/gateway/openapi.json", "-o", out], {
    cwd: root,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const fresh = readFileSync(out, "utf8");
  const committed = readFileSync(join(root, "src/api/schema.d.ts"), "utf8");
  if (fresh !== committed) {
    console.error("src/api/schema.d.ts is out of date with crates/gateway/openapi.json: run `npm run gen:api`.");
    process.exit(1);
  }
  console.log("API types match crates/gateway/openapi.json");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
