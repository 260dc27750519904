import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { Node, Parser as ParserType, Tree } from "web-tree-sitter";

export type { Node, Tree };

/**
 * The bash grammar (tree-sitter, compiled to wasm). Two wasm files are needed at run time: the
 * tree-sitter runtime and the bash grammar. From a source checkout they are in node_modules; the
 * esbuild bundle cannot inline them, so scripts/build.mjs copies both next to dist/fourwall.js and
 * this looks there first (the bundle's own directory), then in node_modules.
 */
const WASM = { runtime: "web-tree-sitter.wasm", bash: "tree-sitter-bash.wasm" } as const;

export function locateWasm(name: keyof typeof WASM): string {
  const file = WASM[name];
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.join(here, file), path.join(here, "wasm", file)];
  try {
    const require = createRequire(import.meta.url);
    candidates.push(
      require.resolve(
        name === "runtime"
          ? "web-tree-sitter/web-tree-sitter.wasm"
          : "tree-sitter-bash/tree-sitter-bash.wasm",
      ),
    );
  } catch {
    // not resolvable from here (a bundle installed without node_modules): the copies must exist
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new Error(`fourwall: ${file} not found (looked in ${candidates.join(", ")}); run npm run build`);
  return found;
}

let loading: Promise<ParserType> | undefined;

/** The parser, loaded once per process (about 25 ms, then parsing is synchronous and fast). */
export function loadShellParser(): Promise<ParserType> {
  loading ??= (async () => {
    const { Parser, Language } = await import("web-tree-sitter");
    const runtime = locateWasm("runtime");
    await Parser.init({ locateFile: () => runtime });
    const bash = await Language.load(locateWasm("bash"));
    const parser = new Parser();
    parser.setLanguage(bash);
    return parser;
  })();
  return loading;
}
