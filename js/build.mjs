// Bundles the page (src/index.ts) into the one ES module anywidget loads:
// decart_nb/widgets/static/camera.js (generated, not edited by hand).
// `node build.mjs --tests` instead compiles test/*.test.ts to .test-out/ for `node --test`;
// `node build.mjs --internals OUT` bundles test/internals.ts (the page's parts on globalThis, for
// the Python tests that drive them in node) into the script OUT.
import * as esbuild from "esbuild";
import { readdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
// Chromium in Debian and every browser JupyterLab supports run ES2022.
const target = "es2022";

async function buildPage() {
  await esbuild.build({
    entryPoints: [join(here, "src", "index.ts")],
    outfile: join(here, "..", "decart_nb", "widgets", "static", "camera.js"),
    bundle: true,
    format: "esm",
    target,
    // Minified: the first display sends the script in the widget's comm_open (issue 24: 16.8 KB
    // gzipped against 25.3 KB unminified). Issue 22 had shipped it unminified after one minified
    // A/B gave fewer fps at 1 Mbit/s; the later A/B overlapped, with the page's rate control
    // reading a latency of about 0 in runs of both bundles, which the start-up rules of issue 24
    // fixed (bench/README.md).
    minify: true,
    legalComments: "none",
    logLevel: "warning",
  });
}

async function buildTests() {
  const out = join(here, ".test-out");
  rmSync(out, { recursive: true, force: true });
  const tests = readdirSync(join(here, "test")).filter((f) => f.endsWith(".test.ts"));
  await esbuild.build({
    entryPoints: tests.map((f) => join(here, "test", f)),
    outdir: out,
    outExtension: { ".js": ".mjs" },
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    logLevel: "warning",
  });
}

async function buildInternals(outfile) {
  if (!outfile) throw new Error("usage: node build.mjs --internals OUTFILE");
  await esbuild.build({
    entryPoints: [join(here, "test", "internals.ts")],
    outfile,
    bundle: true,
    format: "iife", // its own scope: no top-level name can clash with the test's stubs
    platform: "neutral",
    target,
    logLevel: "warning",
  });
}

const args = process.argv.slice(2);
if (args[0] === "--tests") await buildTests();
else if (args[0] === "--internals") await buildInternals(args[1]);
else await buildPage();
