/**
 * The house's floors, read from the import lines of src/: every import points down (or sideways on
 * the same floor); a wall is entered only through its public entry (walls/<wall>/index.ts), except
 * that code outside the walls may import() a wing lazily (the proxy server, squid); no module takes
 * part in a cycle. docs/ARCHITECTURE.md draws the same floors.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";

const SRC = path.resolve(import.meta.dirname, "../../src");

/** Top floor first. A file's floor is the first folder under src/. */
export const FLOORS = [
  "cli",
  "mcp",
  "prove",
  "k8s",
  "box",
  "runtimes",
  "plan",
  "policy",
  "walls",
  "audit",
  "core",
] as const;

/** Module → its imports. A dynamic import() is marked: it may open a wall's wing loaded on demand. */
type Graph = Map<string, Import[]>;
interface Import {
  to: string;
  lazy: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => path.relative(SRC, path.join(e.parentPath, e.name)));
}

/** Relative imports of one file (static, re-exports and dynamic), as src-relative .ts paths. */
function importsOf(file: string, text: string): Import[] {
  const found: Import[] = [];
  for (const m of text.matchAll(/(\bfrom\s*|\bimport\s*\(\s*|^\s*import\s+)["'](\.{1,2}\/[^"']+)["']/gm)) {
    const to = path.normalize(path.join(path.dirname(file), m[2]!)).replace(/\.js$/, ".ts");
    found.push({ to, lazy: m[1]!.includes("(") });
  }
  return found;
}

export function readGraph(): Graph {
  const graph: Graph = new Map();
  for (const file of sourceFiles(SRC))
    graph.set(file, importsOf(file, readFileSync(path.join(SRC, file), "utf8")));
  return graph;
}

const floorOf = (file: string): number => FLOORS.indexOf(file.split("/")[0] as (typeof FLOORS)[number]);
const wallOf = (file: string): string | undefined =>
  file.startsWith("walls/") ? file.split("/")[1] : undefined;

/** Every import that breaks a rule, as "from → to: why". */
export function violations(graph: Graph): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    if (floorOf(from) < 0) found.push(`${from}: not on any floor (${FLOORS.join(", ")})`);
    for (const { to, lazy } of targets) {
      if (!graph.has(to)) {
        found.push(`${from} → ${to}: no such module`);
        continue;
      }
      if (floorOf(to) < floorOf(from))
        found.push(
          `${from} → ${to}: runs back up (${FLOORS[floorOf(to)]} is above ${FLOORS[floorOf(from)]})`,
        );
      const a = wallOf(from);
      const b = wallOf(to);
      const door = `walls/${b}/index.ts`;
      if (b && a !== b && to !== door && !(lazy && !a))
        found.push(`${from} → ${to}: into a wall, not through ${door}`);
    }
  }
  return found;
}

/** Each cycle once, as the list of its modules. */
export function cycles(graph: Graph): string[][] {
  const found: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    stack.push(file);
    for (const { to } of graph.get(file) ?? []) {
      if (state.get(to) === "open") found.push(stack.slice(stack.indexOf(to)));
      else if (!state.has(to) && graph.has(to)) visit(to);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  return found;
}

describe("floors", () => {
  const graph = readGraph();

  test("every import points down the floors, and walls meet only at their public entries", () => {
    assert.deepEqual(violations(graph), []);
  });

  test("no import cycles", () => {
    assert.deepEqual(
      cycles(graph).map((c) => c.join(" → ")),
      [],
    );
  });

  test("every wall has a public entry that something imports", () => {
    for (const wall of ["isolation", "filesystem", "egress", "gate"]) {
      const entry = `walls/${wall}/index.ts`;
      assert.ok(graph.has(entry), `${entry} exists`);
      const importers = [...graph]
        .filter(([, targets]) => targets.some((i) => i.to === entry))
        .map(([f]) => f);
      assert.ok(importers.length > 0, `${entry} is imported by something`);
    }
  });

  test("the checker catches a back-up import, a side door into a wall and a cycle", () => {
    const broken: Graph = new Map(graph);
    const add = (from: string, to: string) =>
      broken.set(from, [...(graph.get(from) ?? []), { to, lazy: false }]);
    add("core/errors.ts", "cli/run.ts");
    add("walls/gate/rules.ts", "walls/filesystem/plan.ts");
    add("box/supervisor.ts", "walls/egress/proxy/proxy.ts");
    const found = violations(broken);
    assert.ok(
      found.some((v) => v.startsWith("core/errors.ts → cli/run.ts: runs back up")),
      found.join("\n"),
    );
    assert.ok(found.some((v) => v.startsWith("walls/gate/rules.ts → walls/filesystem/plan.ts: into a wall")));
    assert.ok(
      found.some((v) => v.startsWith("box/supervisor.ts → walls/egress/proxy/proxy.ts: into a wall")),
    );
    assert.ok(cycles(broken).length > 0, "core → cli → … → core is a cycle");
  });
});
