// Generates TypeScript types from the gateway's committed OpenAPI document with
// openapi-typescript. `node scripts/gen-api.mjs OUT` writes OUT (default src/api/schema.d.ts).
// A schema the document refers to but does not define stops openapi-typescript; such a
// reference is reported on stderr and typed `unknown`, so one missing definition does not
// block every other type.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const root = resolve(new URL("..", import.meta.url).pathname);
export const DOCUMENT = resolve(root, "../crates/gateway/openapi.json");

export function generate(out) {
  const doc = JSON.parse(readFileSync(DOCUMENT, "utf8"));
  const schemas = (doc.components ??= {}).schemas ??= {};
  const missing = new Set();
  const walk = (v) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === "object") {
      const ref = v.$ref;
      if (typeof ref === "string" && ref.startsWith("#/components/schemas/")) {
        const name = ref.slice("#/components/schemas/".length);
        if (!(name in schemas)) missing.add(name);
      }
      Object.values(v).forEach(walk);
    }
  };
  walk(doc);
  for (const name of missing) {
    console.error(`warning: crates/gateway/openapi.json refers to #/components/schemas/${name} but does not define it; typed as unknown`);
    schemas[name] = { description: "Referred to but not defined by the gateway's OpenAPI document." };
  }
  const dir = mkdtempSync(join(tmpdir(), "airlock-openapi-"));
  try {
    const input = join(dir, "openapi.json");
    writeFileSync(input, JSON.stringify(doc));
    execFileSync(join(root, "node_modules/.bin/openapi-typescript"), [input, "-o", out], {
      cwd: root,
      stdio: ["ignore", "ignore", "inherit"],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = resolve(process.argv[2] ?? join(root, "src/api/schema.d.ts"));
  generate(out);
  console.log(`wrote ${out}`);
}
