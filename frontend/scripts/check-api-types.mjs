// Fails when src/api/schema.d.ts differs from what the gateway's committed OpenAPI
// document generates (regenerate with `npm run gen:api`).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { generate } from "./gen-api.mjs";

const root = resolve(new URL("..", import.meta.url).pathname);
const dir = mkdtempSync(join(tmpdir(), "airlock-api-types-"));
try {
  const out = join(dir, "schema.d.ts");
  generate(out);
  const fresh = readFileSync(out, "utf8");
  const committed = readFileSync(join(root, "src/api/schema.d.ts"), "utf8");
  if (fresh !== committed) {
    console.error("src/api/schema.d.ts is out of date with crates/gateway/openapi.json: run `npm run gen:api` and commit it.");
    process.exit(1);
  }
  console.log("API types match crates/gateway/openapi.json");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
