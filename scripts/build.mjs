// Bundles the CLI into one ESM file (fewer module loads = faster cold start).
import { rmSync } from "node:fs";
import { build } from "esbuild";

rmSync("dist", { recursive: true, force: true }); // no stale chunks from earlier builds

await build({
  entryPoints: { fourwall: "src/cli/main.ts" },
  outdir: "dist",
  bundle: true,
  platform: "node",
  target: "node20",
  format: "esm",
  splitting: true, // commands are imported lazily: each one loads only what it needs
  minifyWhitespace: false,
  sourcemap: "linked",
  logLevel: "warning",
  // CommonJS dependencies inside an ESM bundle need a require of their own.
  banner: { js: 'import { createRequire as __fwCreateRequire } from "node:module"; const require = __fwCreateRequire(import.meta.url);' },
});
