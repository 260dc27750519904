/**
 * After the probe program has ended, prove looks at the host itself: did anything the box tried to
 * write land, did a datagram arrive, what is the host's pid 1. The box's word is not enough: a
 * write "succeeds" inside a private tmpfs, and a sent datagram says nothing about its arrival.
 */
import { existsSync, lstatSync, readFileSync } from "node:fs";
import path from "node:path";
import type { Canaries } from "./canaries/index.js";
import { type ProveLayout, shownPath } from "./layout.js";
import type { HostEvidence } from "./types.js";

const readOr = (p: string): string | undefined => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return undefined;
  }
};

const modeOr = (p: string): number | undefined => {
  try {
    return lstatSync(p).mode & 0o7777;
  } catch {
    return undefined;
  }
};

function hostInit(): HostEvidence["hostInit"] {
  const stat = readOr("/proc/1/stat") ?? "";
  const close = stat.lastIndexOf(")");
  return {
    comm: stat.slice(stat.indexOf("(") + 1, close),
    start: stat.slice(close + 2).split(" ")[19] ?? "",
  };
}

export function gatherEvidence(layout: ProveLayout, canaries: Canaries | undefined): HostEvidence {
  const landed: Record<string, string[]> = {};
  for (const [id, check] of Object.entries(layout.hostChecks)) {
    const found = check.mustNotExist.filter((p) => existsSync(p)).map((p) => shownPath(layout, p));
    const changed = check.mustStay
      .filter((f) => readOr(f.path) !== f.content)
      .map((f) => `${shownPath(layout, f.path)} changed`);
    if (found.length + changed.length > 0) landed[id] = [...found, ...changed];
  }
  const outside = canaries && !("skip" in canaries.outside) ? canaries.outside.seen() : undefined;
  return {
    landed,
    workdirWrite: readOr(layout.workdirOk),
    udpReceived: canaries?.origins?.udpReceived() ?? 0,
    outside,
    hostInit: hostInit(),
    hostKernel: (readOr("/proc/version") ?? "").trim().slice(0, 100),
    gate: {
      name: path.basename(layout.precious),
      requests: (readOr(layout.approverLog) ?? "").split("\n").filter((line) => line.trim() !== ""),
      precious: readOr(layout.precious),
      historyChanged: [layout.history.ref, ...layout.history.reflogs]
        .filter((f) => readOr(f.path) !== f.content)
        .map((f) => shownPath(layout, f.path)),
      setuidMode: modeOr(layout.setuidFile),
    },
  };
}
