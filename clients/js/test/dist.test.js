// dist/ is committed so a fresh machine needs no build: it must be what
// src/ compiles to, and within the size budget stated in the README.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { HERE, ROOT } from "./helpers.js";
import { measure } from "../scripts/size.mjs";

/** socket.io-client's min+gzip size, the budget. */
const BUDGET = 12_500;

test("dist/ is what src/ compiles to (run `npm run build` and commit)", () => {
  const out = mkdtempSync(join(tmpdir(), "palisade-dist-"));
  try {
    const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
    const built = spawnSync(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.json"), "--outDir", out], {
      encoding: "utf8",
    });
    assert.equal(built.status, 0, built.stdout + built.stderr);
    const fresh = readdirSync(out).sort();
    assert.deepEqual(readdirSync(join(ROOT, "dist")).sort(), fresh, "the same files");
    for (const file of fresh) {
      assert.equal(readFileSync(join(ROOT, "dist", file), "utf8"), readFileSync(join(out, file), "utf8"), file);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("the API as issue 18 names it type-checks against dist/index.d.ts", () => {
  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const args = ["--noEmit", "--strict", "--target", "ES2022", "--module", "ES2022", "--moduleResolution", "bundler"];
  const checked = spawnSync(process.execPath, [tsc, ...args, "--lib", "ES2022,DOM", join(HERE, "types", "api.ts")], {
    encoding: "utf8",
  });
  assert.equal(checked.status, 0, checked.stdout + checked.stderr);
});

test(`the bundle is under ${BUDGET} bytes min+gzip, as the README says`, async () => {
  const { gzipped } = await measure();
  assert.ok(gzipped < BUDGET, `${gzipped} bytes`);
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const stated = /min\+gzip: ([\d,]+) bytes/.exec(readme);
  assert.ok(stated, "the README states the size");
  const said = Number(stated[1].replace(/,/g, ""));
  assert.ok(Math.abs(said - gzipped) <= 200, `README says ${said}, measured ${gzipped}: update it (npm run size)`);
});

test("without a global WebSocket (Node 20 without --experimental-websocket) the constructor says what to do", () => {
  const major = Number(process.versions.node.split(".")[0]);
  const flags = major >= 22 ? ["--no-experimental-websocket"] : [];
  const script = `import { PalisadeClient } from ${JSON.stringify(join(ROOT, "dist", "index.js"))};
    try { new PalisadeClient("ws://127.0.0.1:1/ws", { getToken: () => "t" }); console.log("constructed"); }
    catch (e) { console.log(e.message); }`;
  const run = spawnSync(process.execPath, [...flags, "--input-type=module", "-e", script], { encoding: "utf8", cwd: HERE });
  assert.match(run.stdout, /--experimental-websocket/, run.stdout + run.stderr);
});
