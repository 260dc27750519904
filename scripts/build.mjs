// Bundles the CLI into one ESM file (fewer module loads = faster cold start).
import { copyFileSync, readdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";
import { build } from "esbuild";

const result = await build({
  metafile: true,
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
  banner: {
    js: 'import { createRequire as __fwCreateRequire } from "node:module"; const require = __fwCreateRequire(import.meta.url);',
  },
});

// The approval gate's shell parser is wasm (tree-sitter): esbuild cannot inline it, so both wasm
// files sit next to the bundle, where src/walls/gate/shell/parser.ts looks first.
copyFileSync("node_modules/web-tree-sitter/web-tree-sitter.wasm", "dist/web-tree-sitter.wasm");
copyFileSync("node_modules/tree-sitter-bash/tree-sitter-bash.wasm", "dist/tree-sitter-bash.wasm");

// Chunks of earlier builds: removed once they are old, not at once, because a fourwall started
// from the previous build may still import its lazily loaded chunks.
const current = new Set(Object.keys(result.metafile.outputs).map((f) => path.basename(f)));
for (const name of readdirSync("dist")) {
  const file = path.join("dist", name);
  if (!current.has(name) && !name.endsWith(".wasm") && Date.now() - statSync(file).mtimeMs > 10 * 60_000)
    rmSync(file);
}
