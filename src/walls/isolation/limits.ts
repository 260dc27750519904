import type { Limits } from "./schema.js";

/** One resource limit, as prlimit(1) spells it, with soft = hard so the box cannot raise it. */
export interface Rlimit {
  name: "nproc" | "data" | "cpu" | "fsize" | "nofile" | "core";
  value: number;
}

/**
 * The rlimits every process in the box starts with. They are applied inside the box's user
 * namespace, where the kernel counts RLIMIT_NPROC per namespace: the limit is the box's own
 * process count, not the user's across the host.
 */
export function planRlimits(limits: Limits): Rlimit[] {
  const out: Rlimit[] = [
    { name: "nproc", value: limits.pids },
    { name: "data", value: limits.memory },
    { name: "fsize", value: limits.fileSize },
    { name: "nofile", value: limits.openFiles },
    { name: "core", value: 0 },
  ];
  if (limits.cpuSeconds !== null) out.push({ name: "cpu", value: limits.cpuSeconds });
  return out;
}

/** prlimit(1) arguments for the plan: `--nproc=1024:1024 ...`. */
export function prlimitArgs(rlimits: Rlimit[]): string[] {
  return rlimits.map((r) => `--${r.name}=${r.value}:${r.value}`);
}
