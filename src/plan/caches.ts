import { createHash } from "node:crypto";
import path from "node:path";

/**
 * Package manager caches for boxes: one directory per user and egress allowlist (boxes that can
 * reach the same registries share one, so `npx` starts warm the second time), under fourwall's own
 * cache directory, never the tools' own (~/.npm, ~/.cache/pip): a box could poison the host's cache,
 * and the host's would hand the box whatever the user fetched without it. Bound writable into the
 * box and pointed at by each tool's variable. Pure; the caller makes the directory.
 */

/** The key: the egress allow rules as written, in order-free form. */
export function cacheKey(allow: string[]): string {
  return createHash("sha256")
    .update(JSON.stringify([...new Set(allow)].sort()))
    .digest("hex")
    .slice(0, 16);
}

/**
 * Where a user's box caches live: $XDG_CACHE_HOME/fourwall/boxes when it lies in HOME, else
 * ~/.cache/fourwall/boxes. Always inside HOME: in root mode HOME is what the box uid reaches
 * through its idmapped mount; a cache elsewhere could sit under a directory it cannot search.
 */
export function cacheRoot(home: string, env: Record<string, string | undefined>): string {
  const xdg = env.XDG_CACHE_HOME;
  const inHome = xdg !== undefined && path.isAbsolute(xdg) && path.normalize(xdg).startsWith(`${home}/`);
  return path.join(inHome ? path.normalize(xdg) : path.join(home, ".cache"), "fourwall", "boxes");
}

/** Each tool's cache variable, pointed into the box's cache directory. */
export function cacheEnvironment(dir: string): Record<string, string> {
  return {
    npm_config_cache: path.join(dir, "npm"),
    PIP_CACHE_DIR: path.join(dir, "pip"),
    UV_CACHE_DIR: path.join(dir, "uv"),
    YARN_CACHE_FOLDER: path.join(dir, "yarn"),
  };
}
