import path from "node:path";
import type { HostView } from "./host-view.js";

const hasMagic = (segment: string) => /[*?[]/.test(segment);

function segmentRegex(segment: string): RegExp {
  let source = "";
  for (const ch of segment) {
    if (ch === "*") source += "[^/]*";
    else if (ch === "?") source += "[^/]";
    else source += ch.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}

/**
 * Expands an absolute path whose segments may hold * ? [..] into the existing host paths it
 * matches (a path without magic comes back as is, whether or not it exists). `**` is refused by
 * the caller: a pattern we cannot enforce must be an error, not a silent no-op.
 */
export function expandGlob(pattern: string, host: HostView): string[] {
  const segments = pattern.split("/").filter(Boolean);
  let found = ["/"];
  for (const segment of segments) {
    const next: string[] = [];
    for (const dir of found) {
      if (!hasMagic(segment)) {
        next.push(path.join(dir, segment));
        continue;
      }
      const regex = segmentRegex(segment);
      // A leading * does not match dot-files unless the pattern starts with a dot, as in shells.
      for (const name of host.readdir(dir)) {
        if (name.startsWith(".") && !segment.startsWith(".")) continue;
        if (regex.test(name)) next.push(path.join(dir, name));
      }
    }
    found = next;
  }
  return hasMagic(pattern) ? found.filter((p) => host.kind(p) !== "missing") : found;
}
