import { execFile } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import path from "node:path";
import { nativeHelperPath } from "../../../core/paths.js";
import type { BoxNetworkPlan } from "./network.js";

// The impure half of transparent mode, for runtimes: the files bound into the box, and the one
// setting made in the box's network namespace from outside before its command starts.

/** native/fourwall-netns.c, compiled by scripts/setup.sh. */
export const netnsHelperPath = () => nativeHelperPath("netns");

/** The bind mounts transparent mode adds (source in the run dir, read-only target in the box). */
export function transparentMounts(
  net: BoxNetworkPlan,
  runDir: string,
): Array<{ source: string; target: string }> {
  const t = net.transparent;
  if (!t) return [];
  return [
    { source: path.join(runDir, "hosts"), target: t.hostsTarget },
    // empty: no nameserver, so no resolver; glibc tries 127.0.0.1:53 in the box, where nothing listens
    { source: path.join(runDir, "resolv.conf"), target: t.resolvTarget },
  ];
}

/** Writes the files transparentMounts names (readable by the box's uid, owned by fourwall). */
export function writeTransparentFiles(net: BoxNetworkPlan, runDir: string): void {
  if (!net.transparent) return;
  writeFileSync(path.join(runDir, "hosts"), net.transparent.hosts, { mode: 0o444 });
  writeFileSync(path.join(runDir, "resolv.conf"), "# fourwall transparent mode: no resolver in this box\n", {
    mode: 0o444,
  });
}

/** Whether the box's command must wait until prepareBoxNetns has run (bwrap --block-fd). */
export const needsNetnsPreparation = (net: BoxNetworkPlan) => net.transparent?.lowPorts === true;

/** Lets unprivileged binds below 1024 happen in the box's network namespace (only there). Rejects with the helper's reason. */
export function prepareBoxNetns(boxPid: number): Promise<void> {
  const helper = netnsHelperPath();
  if (!existsSync(helper))
    return Promise.reject(
      new Error(`${helper} is not built (npm run setup compiles native/fourwall-netns.c)`),
    );
  return new Promise((resolve, reject) => {
    execFile(helper, [String(boxPid)], { timeout: 5000 }, (error, _stdout, stderr) => {
      if (error) reject(new Error(stderr.trim() || error.message));
      else resolve();
    });
  });
}
