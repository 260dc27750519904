/**
 * Golden files: a value checked in as JSON under test/unit/runtimes/golden/, compared on every run.
 * Regenerate after an intended change (then read the diff in git before committing):
 *   npm run golden (FOURWALL_GOLDEN=update node --import tsx --test test/unit/runtimes/golden.test.ts)
 * A mismatch fails with assert's line diff of the two values. Paths that depend on where fourwall
 * is installed are written as <package>, so the files are the same on every checkout.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../../src/core/paths.js";

const DIR = path.join(import.meta.dirname, "..", "unit", "runtimes", "golden");
const UPDATE = process.env.FOURWALL_GOLDEN === "update";

/** The value with fourwall's installation path replaced by <package> (in every string). */
function portable(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value).replaceAll(packageRoot(), "<package>"));
}

export function assertGolden(name: string, value: unknown): void {
  const file = path.join(DIR, `${name}.json`);
  const actual = portable(value);
  if (UPDATE) {
    mkdirSync(DIR, { recursive: true });
    writeFileSync(file, `${JSON.stringify(actual, null, 1)}\n`);
    return;
  }
  assert.ok(existsSync(file), `no golden file ${path.relative(process.cwd(), file)}: npm run golden`);
  const expected = JSON.parse(readFileSync(file, "utf8"));
  assert.deepEqual(
    actual,
    expected,
    `${name} differs from ${path.relative(process.cwd(), file)} (if intended: npm run golden, then review the diff in git)`,
  );
}
