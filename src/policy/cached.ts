import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { LoadedPolicy, LoadOptions } from "./load.js";
import { PRESETS } from "./presets.js";

/** A new build (schema, defaults, presets) never reuses an entry made by another one. */
function buildStamp(): string {
  try {
    return String(statSync(fileURLToPath(import.meta.url)).mtimeMs);
  } catch {
    return "unknown";
  }
}

/**
 * Where validated policies are cached: ~/.cache/fourwall/policy, private to the user. The box
 * never sees it (it is on the built-in hide list), so a hijacked agent cannot plant a policy.
 */
export const policyCacheDir = () => path.join(os.homedir(), ".cache", "fourwall", "policy");

function cacheKey(options: LoadOptions): string {
  const file =
    options.file ?? (existsSync(path.join(options.cwd, "fourwall.yaml")) ? "fourwall.yaml" : undefined);
  let text = "";
  if (file !== undefined) {
    try {
      text = readFileSync(path.resolve(options.cwd, file), "utf8");
    } catch {
      text = "\0unreadable"; // the slow path reports the error
    }
  }
  return createHash("sha256")
    .update(
      JSON.stringify([
        buildStamp(),
        PRESETS,
        file ?? null,
        file ? path.resolve(options.cwd, file) : null,
        text,
        options.flags ?? {},
        options.presets ?? [],
      ]),
    )
    .digest("hex");
}

/**
 * Loads the policy, skipping YAML parsing and schema validation (zod and yaml cost ~170 ms to
 * load) when this exact input was validated before. Users run many short commands in the box.
 */
export async function loadPolicyCached(options: LoadOptions): Promise<LoadedPolicy> {
  const key = cacheKey(options);
  const entry = path.join(policyCacheDir(), `${key}.json`);
  try {
    return JSON.parse(readFileSync(entry, "utf8")) as LoadedPolicy;
  } catch {
    // not cached yet (or unreadable): validate for real
  }
  const { loadPolicy } = await import("./load.js");
  const loaded = loadPolicy(options);
  try {
    mkdirSync(path.dirname(entry), { recursive: true, mode: 0o700 });
    const tmp = `${entry}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(loaded), { mode: 0o600, flag: "wx" }); // never through a planted link
    renameSync(tmp, entry);
  } catch {
    // a read-only or missing home: run without the cache
  }
  return loaded;
}
