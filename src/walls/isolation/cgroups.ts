import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { rmdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * A cgroup for the box (root mode): one cap on the memory of all its processes together and on
 * their number, where rlimits only limit each process. The launcher moves itself in before it
 * execs bwrap, so every process of the box is inside from the start.
 * cgroup v2 when the memory and pids controllers are there; else v1 (hybrid hosts, like Debian's
 * default before systemd's unified mode).
 */
export interface BoxCgroup {
  /** Directories the launcher joins (one per v1 hierarchy, or the single v2 one). */
  dirs: string[];
  version: 1 | 2;
}

export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
}

const CGROUP_ROOT = "/sys/fs/cgroup";

/** This process's cgroup path per controller, from /proc/self/cgroup ("" key = v2). */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.trim().split("\n")) {
    const [, controllers, p] = line.split(":", 3) as [string, string, string];
    for (const c of controllers.split(",")) out.set(c, p);
  }
  return out;
}

/** Which cgroup files to write for the limits (pure). */
export function cgroupWrites(
  version: 1 | 2,
  limits: CgroupLimits,
): { controller: string; file: string; value: string }[] {
  if (version === 2) {
    return [
      { controller: "", file: "memory.max", value: String(limits.memoryBytes) },
      { controller: "", file: "memory.swap.max", value: "0" },
      { controller: "", file: "pids.max", value: String(limits.pids) },
    ];
  }
  return [
    { controller: "memory", file: "memory.limit_in_bytes", value: String(limits.memoryBytes) },
    { controller: "pids", file: "pids.max", value: String(limits.pids) },
  ];
}

function v2Usable(): boolean {
  try {
    const controllers = readFileSync(path.join(CGROUP_ROOT, "cgroup.controllers"), "utf8");
    return /\bmemory\b/.test(controllers) && /\bpids\b/.test(controllers);
  } catch {
    return false;
  }
}

/**
 * Makes the box's cgroup(s). Returns undefined when this host gives us none (not root, no
 * controllers, or a read-only cgroupfs); rlimits still apply then.
 */
export function createBoxCgroup(boxId: string, limits: CgroupLimits): BoxCgroup | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const own = parseProcCgroup(readFileSync("/proc/self/cgroup", "utf8"));
  const version: 1 | 2 = v2Usable() ? 2 : 1;
  const dirs: string[] = [];
  try {
    for (const { controller, file, value } of cgroupWrites(version, limits)) {
      const mount = version === 2 ? CGROUP_ROOT : path.join(CGROUP_ROOT, controller);
      const parent = own.get(controller);
      if (parent === undefined || !existsSync(mount)) throw new Error(`no ${controller || "v2"} hierarchy`);
      const dir = path.join(mount, parent, `fourwall-${boxId}`);
      if (!dirs.includes(dir)) {
        mkdirSync(dir);
        dirs.push(dir);
      }
      if (existsSync(path.join(dir, file))) writeFileSync(path.join(dir, file), value);
    }
    return { dirs, version };
  } catch {
    void removeBoxCgroup({ dirs, version }); // empty: nothing to wait for
    return undefined;
  }
}

/**
 * Removes the box's cgroup(s). The kernel may still be tearing down the box's last processes for
 * a few milliseconds after it exits (rmdir says EBUSY then), so it retries briefly.
 */
export async function removeBoxCgroup(cgroup: BoxCgroup | undefined): Promise<void> {
  // Off the event loop: a cgroup's rmdir waits on the kernel (and on EBUSY, for its last process to
  // be reaped), and the box daemon serves other boxes meanwhile.
  await Promise.all(
    (cgroup?.dirs ?? []).map(async (dir) => {
      for (let attempt = 0; attempt < 50; attempt++) {
        try {
          await rmdir(dir);
          return;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "EBUSY") return;
          await sleep(10);
        }
      }
    }),
  );
}
