/**
 * The probe program's input: what to attack and where the canaries are. One JSON file, written
 * into the workdir beside the probe, so every wrapper that shares the workdir can read it.
 */
import { writeFileSync } from "node:fs";
import { type Arch, SYSCALLS, type SyscallName, syscallNumber } from "../walls/isolation/index.js";
import type { Canaries } from "./canaries/index.js";
import { CREDENTIAL_ENV, credentialMarker } from "./canaries/names.js";
import type { ProveLayout } from "./layout.js";
import type { ProbeSpec } from "./types.js";

/** The raw syscalls the probe makes, numbered from fourwall's own table (the one the filter uses). */
const PROBED_SYSCALLS: SyscallName[] = ["bpf", "perf_event_open", "finit_module"];
/** io_uring_setup has the same number on both architectures fourwall supports. */
const IO_URING_SETUP = 425;

function syscallTable(): Record<string, number | null> {
  const arch: Arch | undefined =
    process.arch === "x64" ? "x64" : process.arch === "arm64" ? "arm64" : undefined;
  const table: Record<string, number | null> = {};
  for (const name of PROBED_SYSCALLS) table[name] = arch ? syscallNumber(name, arch) : null;
  table.io_uring_setup = arch && SYSCALLS.io_uring_setup[arch] === IO_URING_SETUP ? IO_URING_SETUP : null;
  return table;
}

export interface ProbeConfig {
  token: string;
  probes: string[];
  /** Where to write the JSON lines; null: stdout. */
  out: string | null;
  home: string;
  workdir: string;
  proveDir: string;
  isolation: { hostProcessMarker: string | null; syscalls: Record<string, number | null> };
  filesystem: {
    secretFiles: string[];
    dotenv: string;
    writes: ProveLayout["writes"];
    symlinks: ProveLayout["symlinks"];
    plantedEnv: string[];
    socketPath: string | null;
    abstractName: string | null;
  };
  egress: {
    listedHost: string;
    unlistedHost: string;
    guardHost: string | { skip: string };
    httpPort: number;
    httpsPort: number | null;
    loopbackPort: number;
    loopback6Port: number | null;
    udpPort: number;
    ca: string | null;
    /** The credential canary: the box's variable (a sentinel in a fourwall box) and the secret's marker. */
    credential: { env: string; marker: string };
  } | null;
  outside: { ip: string; tcpPort: number; dnsPort: number } | { skip: string };
  gate: { precious: string; setuid: string; history: { ref: string; reflogs: string[]; first: string } };
  /** Multiplies the probes' timeouts: a box under emulation answers slowly, which is not a refusal. */
  timeScale: number;
}

export function probeConfig(
  layout: ProveLayout,
  canaries: Canaries,
  specs: ProbeSpec[],
  out: string | null,
  timeScale = 1,
): ProbeConfig {
  const { origins, names, outside } = canaries;
  return {
    token: layout.token,
    probes: specs.filter((s) => !s.skipAlways).map((s) => s.id),
    out,
    home: layout.home,
    workdir: layout.workdir,
    proveDir: layout.proveDir,
    isolation: { hostProcessMarker: canaries.hostProcessMarker ?? null, syscalls: syscallTable() },
    filesystem: {
      secretFiles: layout.secretFiles,
      dotenv: layout.dotenv,
      writes: layout.writes,
      symlinks: layout.symlinks,
      plantedEnv: Object.keys(canaries.plantedEnv),
      socketPath: canaries.socketPath ?? null,
      abstractName: canaries.abstractName ?? null,
    },
    egress: origins
      ? {
          listedHost: names.listed,
          unlistedHost: names.unlisted,
          guardHost: names.guard,
          httpPort: origins.httpPort,
          httpsPort: canaries.caPath ? (origins.httpsPort ?? null) : null,
          loopbackPort: origins.loopbackPort,
          loopback6Port: origins.loopback6Port ?? null,
          udpPort: origins.udpPort,
          ca: canaries.caPath ?? null,
          credential: { env: CREDENTIAL_ENV, marker: credentialMarker(layout.token) },
        }
      : null,
    outside:
      "skip" in outside ? outside : { ip: outside.ip, tcpPort: outside.tcpPort, dnsPort: outside.dnsPort },
    gate: {
      precious: layout.precious,
      setuid: layout.setuidFile,
      history: {
        ref: layout.history.ref.path,
        reflogs: layout.history.reflogs.map((r) => r.path),
        first: layout.history.first,
      },
    },
    timeScale,
  };
}

export function writeProbeConfig(layout: ProveLayout, config: ProbeConfig): void {
  // Readable by the box's uid (root mode runs the box as another uid than the files' owner).
  writeFileSync(layout.config, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o644 });
}
