import { TOOL_CONFIG } from "./lists.js";

/**
 * Whether a path is tool config that runs code on the host (lists.ts TOOL_CONFIG), and why: its
 * last components against each pattern (`*` within one name). Pure; the patterns are fourwall's
 * own constants, never a host path.
 */
const compiled = TOOL_CONFIG.map((entry) => ({
  parts: entry.pattern.split("/").map(
    (part) =>
      new RegExp(
        `^${part
          .split("*")
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
          .join("[^/]*")}$`,
      ),
  ),
  why: entry.why,
}));

/** Directories whose contents are installed dependencies, not the project's config. */
const DEPENDENCY_DIRS = new Set(["node_modules"]);

/** The reason `p` (absolute or relative, `/`-separated) is tool config, or undefined. */
export function toolConfigWhy(p: string): string | undefined {
  const parts = p.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.some((s) => DEPENDENCY_DIRS.has(s))) return undefined;
  for (const entry of compiled) {
    const n = entry.parts.length;
    if (parts.length < n) continue;
    const tail = parts.slice(-n);
    if (entry.parts.every((re, i) => re.test(tail[i]!))) return entry.why;
  }
  return undefined;
}

const literalNames = new Set(
  TOOL_CONFIG.map((e) => e.pattern.split("/").at(-1)!).filter((n) => !n.includes("*")),
);
const wildNames = [...new Set(compiled.map((e) => e.parts.at(-1)!).filter((re) => re.source.includes("*")))];

/** Names that can end a tool-config path (a cheap first test: walks call it for every entry). */
export const isToolConfigName = (name: string): boolean =>
  literalNames.has(name) || wildNames.some((re) => re.test(name));

/**
 * The reason a symlink at `p` would lead a tool to config: its last components are the directory
 * part of a pattern (`pkg/.cargo` → a `.cargo/config.toml` wherever the link points), or undefined.
 */
export function toolConfigDirWhy(p: string): string | undefined {
  const parts = p.split("/").filter((s) => s !== "" && s !== ".");
  if (parts.some((s) => DEPENDENCY_DIRS.has(s))) return undefined;
  for (const entry of compiled) {
    const dirs = entry.parts.slice(0, -1);
    for (let n = dirs.length; n >= 1; n--) {
      if (parts.length < n) continue;
      const tail = parts.slice(-n);
      if (dirs.slice(0, n).every((re, i) => re.test(tail[i]!))) return entry.why;
    }
  }
  return undefined;
}
