import { existsSync, readFileSync } from "node:fs";
import pc from "picocolors";
import { allRuntimes } from "../runtimes/index.js";
import type { RuntimeCheck } from "../runtimes/runtime.js";

interface HostFact {
  name: string;
  ok: boolean;
  detail: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

function hostFacts(): HostFact[] {
  const userns = read("/proc/sys/user/max_user_namespaces");
  const seccomp = read("/proc/self/status")?.match(/^Seccomp:\s*(\d)/m);
  const root = process.getuid?.() === 0;
  const v2 = /\bmemory\b/.test(read("/sys/fs/cgroup/cgroup.controllers") ?? "");
  const v1 =
    existsSync("/sys/fs/cgroup/memory/cgroup.procs") && existsSync("/sys/fs/cgroup/pids/cgroup.procs");
  const cgroupDetail = !root
    ? "not as an ordinary user on this host: per-process rlimits only (run as root, or delegate a cgroup)"
    : v2
      ? "cgroup v2: memory and pids capped for the whole box"
      : v1
        ? "cgroup v1 (hybrid host): memory and pids capped for the whole box"
        : "no memory/pids controllers: per-process rlimits only";
  return [
    {
      name: "user namespaces",
      ok: userns !== undefined && userns !== "0",
      detail: `user.max_user_namespaces = ${userns ?? "?"}`,
    },
    {
      name: "seccomp",
      ok: seccomp !== null && seccomp !== undefined,
      detail: seccomp ? "available" : "no Seccomp line in /proc/self/status",
    },
    {
      name: "running as",
      ok: true,
      detail:
        process.getuid?.() === 0 ? "root (the box runs as an unprivileged uid)" : `uid ${process.getuid?.()}`,
    },
    { name: "box-wide limits", ok: root && (v1 || v2), detail: cgroupDetail },
  ];
}

export async function doctorCommand(options: { json?: true }): Promise<number> {
  const runtimes: RuntimeCheck[] = allRuntimes().map((r) => r.check());
  const facts = hostFacts();
  if (options.json) {
    process.stdout.write(`${JSON.stringify({ runtimes, host: facts }, null, 2)}\n`);
  } else {
    process.stdout.write(`${pc.bold("runtimes")}\n`);
    for (const r of runtimes) {
      const mark = r.available ? pc.green("ok  ") : pc.yellow("no  ");
      process.stdout.write(`  ${mark}${r.runtime.padEnd(11)} ${r.detail}\n`);
      if (!r.available && r.fix) process.stdout.write(`      ${pc.dim(`fix: ${r.fix}`)}\n`);
    }
    process.stdout.write(`${pc.bold("host")}\n`);
    for (const f of facts)
      process.stdout.write(
        `  ${f.ok ? pc.green("ok  ") : pc.yellow("no  ")}${f.name.padEnd(16)} ${f.detail}\n`,
      );
  }
  return runtimes.some((r) => r.runtime === "namespaces" && r.available) ? 0 : 1;
}
