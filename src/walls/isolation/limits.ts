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
export function planRlimits(limits: Limits, options: { cgroupCapsMemory?: boolean } = {}): Rlimit[] {
  const out: Rlimit[] = [
    { name: "nproc", value: limits.pids },
    // Where a cgroup caps the box's memory, no RLIMIT_DATA: it counts address space V8 only
    // reserves (Node 24's CodeRange, worker isolates), and such a process dies at start with
    // "Failed to reserve virtual memory for CodeRange" (exit 133) long before it uses the memory.
    ...(options.cgroupCapsMemory ? [] : [dataLimit(limits.memory)]),
    { name: "fsize", value: limits.fileSize },
    { name: "nofile", value: limits.openFiles },
    { name: "core", value: 0 },
  ];
  if (limits.cpuSeconds !== null) out.push({ name: "cpu", value: limits.cpuSeconds });
  return out;
}

/**
 * Without a cgroup, RLIMIT_DATA is the only memory cap, set well above `memory`: V8 reserves about
 * 0.5 GiB of address space per isolate. Measured (Node 24.22, this host): 4 worker threads die
 * (exit 133) at 2 GiB, 8 at 4 GiB, 16 at 8 GiB; 32 run at 32 GiB. 8x memory (32 GiB by default)
 * still stops a runaway allocation.
 */
export const DATA_LIMIT_FACTOR = 8;

/** The RLIMIT_DATA for a memory cap where no cgroup enforces it (see DATA_LIMIT_FACTOR). */
export const dataLimit = (memory: number): Rlimit => ({ name: "data", value: memory * DATA_LIMIT_FACTOR });

/** prlimit(1) arguments for the plan: `--nproc=1024:1024 ...`. */
export function prlimitArgs(rlimits: Rlimit[]): string[] {
  return rlimits.map((r) => `--${r.name}=${r.value}:${r.value}`);
}

/**
 * A hint for an exit that looks like an address-space limit: V8 dies with SIGTRAP (exit 133)
 * when it cannot reserve its code range, other programs with ENOMEM. Undefined otherwise.
 */
export function addressSpaceHint(code: number | null, rlimits: readonly Rlimit[]): string | undefined {
  const data = rlimits.find((r) => r.name === "data");
  if (code !== 133 || !data) return undefined;
  return `fourwall: the command died of SIGTRAP (exit 133), as V8 does when it cannot reserve address space under RLIMIT_DATA (${data.value} bytes here, ${DATA_LIMIT_FACTOR}x isolation.limits.memory); raise isolation.limits.memory, or run fourwall as root, where a cgroup caps memory instead\n`;
}
