import { z } from "zod";
import { RUNTIME_NAMES } from "../../core/runtime-names.js";
import { sizeSchema } from "../../core/units.js";

export { RUNTIME_NAMES, type RuntimeName } from "../../core/runtime-names.js";

/** Resource limits applied to every process in the box (rlimits; a cgroup as well where fourwall can make one). */
export const limitsSchema = z
  .strictObject({
    memory: sizeSchema
      .prefault("4GiB")
      .describe(
        "the box's memory: its cgroup memory cap where one can be made (root mode); else each process's RLIMIT_DATA, set to 8x this (V8 reserves ~0.5 GiB of address space per isolate)",
      ),
    pids: z
      .number()
      .int()
      .min(8)
      .max(1_000_000)
      .default(1024)
      .describe("processes and threads in the box (RLIMIT_NPROC, counted per box)"),
    cpuSeconds: z
      .number()
      .int()
      .positive()
      .nullable()
      .default(null)
      .describe("CPU seconds per process (RLIMIT_CPU); null = unlimited"),
    fileSize: sizeSchema.prefault("16GiB").describe("largest file a process may write (RLIMIT_FSIZE)"),
    openFiles: z
      .number()
      .int()
      .min(64)
      .max(1_048_576)
      .default(8192)
      .describe("open files per process (RLIMIT_NOFILE)"),
  })
  .describe("resource limits, so a fork bomb or a runaway agent cannot take the host down");

export const isolationSchema = z
  .strictObject({
    runtime: z.enum(RUNTIME_NAMES).default("namespaces").describe("the isolation runtime"),
    limits: limitsSchema.prefault({}),
    rootModeUid: z
      .number()
      .int()
      .min(1000)
      .max(2 ** 31)
      .optional()
      .describe(
        "host uid (and gid) every box runs as when fourwall itself runs as root; never 0. Unset (the default): each box gets a uid of its own from 70000-70999",
      ),
  })
  .describe("the isolation wall: runtime, identity and resource limits");

export type IsolationPolicy = z.output<typeof isolationSchema>;
export type Limits = z.output<typeof limitsSchema>;
