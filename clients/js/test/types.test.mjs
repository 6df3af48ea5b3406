// chorus.d.ts checked by TypeScript's compiler: types/usage.ts uses the whole API and must
// compile under --strict, and every misuse it marks with @ts-expect-error must be an error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));

test("chorus.d.ts type-checks an application's use of the API with tsc --noEmit --strict", () => {
  const args = ["--noEmit", "--strict", "--target", "es2022", "--module", "es2022", "--moduleResolution", "node",
    "--lib", "es2022,dom", here("./types/usage.ts"), here("../chorus.d.ts")];
  const result = spawnSync("tsc", args, { encoding: "utf8" });
  assert.ok(!result.error, `tsc not found: install TypeScript (Debian: apt-get install node-typescript) (${result.error?.message})`);
  assert.equal(result.status, 0, `tsc reported:\n${result.stdout}${result.stderr}`);
});
