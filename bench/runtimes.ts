/**
 * Cold start per isolation runtime: `fourwall run -r <runtime> -- true`, spawn to exit, beside the
 * bare runtime it wraps, measured in the same rounds: gVisor beside bare `runsc do true`, Docker
 * beside bare `docker run --runtime=runsc`, the microVM beside a bare boot of its guest, and the
 * namespaces runtime. Targets (issue 16): gvisor within 1.5 × bare `runsc do`; docker within 1.3 ×
 * bare docker run --runtime=runsc. The microVM has no target: its boot time is reported.
 */

import { writeFileSync } from "node:fs";
import path from "node:path";
import { which } from "../src/core/paths.js";
import { runscFlags } from "../src/runtimes/gvisor.js";
import { minimalSpec } from "../src/runtimes/oci.js";
import { VmRuntime, vmImage } from "../src/runtimes/vm.js";
import { type DockerBoxes, startDockerBoxes } from "../test/helpers/docker-box.js";
import { fourwallRun, USER_ID } from "./lib/fourwall.js";
import type { BenchContext, BenchGroup, ExtraTable, GroupResult, Row } from "./lib/group.js";
import { measureRows, ratio, target } from "./lib/group.js";
import type { Subject } from "./lib/measure.js";

const node = process.execPath;

function minimalBundle(dir: string): void {
  writeFileSync(path.join(dir, "config.json"), JSON.stringify(minimalSpec()));
}

/** A bare boot of fourwall's guest: QEMU (TCG), its kernel and initramfs, no device: init finds no control port and powers off. */
function bareBoot(): string[] {
  const image = vmImage();
  return [
    "qemu-system-x86_64",
    ...["-accel", "tcg,thread=single", "-machine", "q35", "-cpu", "max", "-m", "1024M", "-smp", "1"],
    ...["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"],
    ...(image.firmware ? ["-bios", image.firmware] : []),
    ...[
      "-kernel",
      image.kernel,
      "-initrd",
      image.initrd,
      "-append",
      "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init",
    ],
  ];
}

/** fourwall run -r vm and -r docker, and their bare baselines. */
function vmAndDockerSubjects(ctx: BenchContext, docker: DockerBoxes | string): Subject[] {
  const vmCheck = new VmRuntime().check();
  const noVm = vmCheck.available ? undefined : `${vmCheck.detail} (${vmCheck.fix})`;
  const noDocker =
    typeof docker === "string" ? docker : ctx.isRoot ? undefined : "the docker runtime is root only";
  const dockerEnv = typeof docker === "string" ? process.env : { ...process.env, ...docker.env };
  const image = typeof docker === "string" ? "<image>" : docker.image;
  return [
    {
      id: "qemu-boot",
      label: "bare QEMU boot of the guest to init and power-off (TCG)",
      command: bareBoot(),
      shown: "qemu-system-x86_64 -accel tcg -machine q35 -kernel <guest> -initrd <initramfs> (no devices)",
      skip: noVm,
    },
    fourwallRun(ctx, { id: "vm-root", as: "root", flags: ["-r", "vm"], ...(noVm ? { skip: noVm } : {}) }),
    {
      id: "docker-bare",
      label: "bare docker run --runtime=runsc --network none (fourwall's tools image)",
      command: ["/usr/bin/docker", "run", "--rm", "--runtime=runsc", "--network", "none", image, "true"],
      shown: "docker run --rm --runtime=runsc --network none <tools image> true",
      env: dockerEnv,
      skip: noDocker,
    },
    // Docker runs the box as the owner of every writable path: a workdir and a HOME (its cache
    // dirs are writable) of uid 65534's, fourwall itself as root
    fourwallRun(ctx, {
      id: "docker-root",
      as: "root",
      // the same image as the bare baseline (the tools image), passed as a user would
      flags: ["-r", "docker", "--image", image],
      workdir: ctx.tempDir({ uid: USER_ID, gid: USER_ID }),
      env: { ...dockerEnv, HOME: ctx.tempDir({ uid: USER_ID, gid: USER_ID }) },
      ...(noDocker ? { skip: noDocker } : {}),
    }),
  ];
}

function subjects(ctx: BenchContext): Subject[] {
  const fourwall = path.join(ctx.repoRoot, "bin", "fourwall.js");
  const runsc = which("runsc", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  const noRunsc = runsc ? undefined : "runsc is not installed (apt-get install runsc)";
  const rootWork = ctx.tempDir();
  const doState = ctx.tempDir();
  const runState = ctx.tempDir();
  const bundle = ctx.tempDir();
  minimalBundle(bundle);
  // runsc run needs a fresh container id each time: the shell's pid is one.
  const runOnce = `exec ${runsc} ${runscFlags(runState).join(" ")} run --bundle ${bundle} "bench-$$"`;
  return [
    {
      id: "runsc-do",
      label: "bare runsc do true (rootless, no network)",
      command: [runsc ?? "runsc", "--root", doState, "--rootless", "--network=none", "do", "true"],
      shown: "runsc --root <tmp> --rootless --network=none do true",
      skip: noRunsc,
    },
    {
      id: "runsc-run",
      label: "bare runsc run, fourwall's flags, minimal bundle",
      command: ["/bin/sh", "-c", runOnce],
      shown: `runsc ${runscFlags("<tmp>").join(" ")} run --bundle <minimal: / read-only, /proc, true> <id>`,
      skip: noRunsc,
    },
    fourwallRun(ctx, {
      id: "gvisor-root",
      as: "root",
      flags: ["-r", "gvisor"],
      workdir: rootWork,
      ...(noRunsc ? { skip: noRunsc } : {}),
    }),
    fourwallRun(ctx, {
      id: "gvisor-user",
      as: "user",
      flags: ["-r", "gvisor"],
      ...(noRunsc ? { skip: noRunsc } : {}),
    }),
    fourwallRun(ctx, {
      id: "namespaces-root",
      as: "root",
      label: "fourwall run -- true (namespaces, as root)",
      workdir: rootWork,
    }),
    {
      id: "dry-run",
      label: "fourwall run -r gvisor --dry-run -- true (plan only)",
      command: [node, fourwall, "run", "-r", "gvisor", "--dry-run", "-w", rootWork, "--", "true"],
      shown: "node bin/fourwall.js run -r gvisor --dry-run -w <tmp workdir> -- true",
      cwd: rootWork,
    },
  ];
}

const ROLES: Record<string, Row["role"]> = {
  "runsc-do": "baseline",
  "runsc-run": "informative",
  "gvisor-root": "subject",
  "gvisor-user": "subject",
  "namespaces-root": "informative",
  "dry-run": "informative",
  "qemu-boot": "baseline",
  "vm-root": "subject",
  "docker-bare": "baseline",
  "docker-root": "subject",
};

/** Where `fourwall run -r gvisor` spends its time, from differences of medians (root mode). */
function phases(rows: Row[]): ExtraTable | undefined {
  const m = (id: string) => {
    const row = rows.find((r) => r.id === id);
    return row?.result.ok ? row.result.stats.median : undefined;
  };
  const [plan, run, bare, total] = ["dry-run", "runsc-run", "runsc-do", "gvisor-root"].map(m);
  if ([plan, run, bare, total].some((v) => v === undefined)) return undefined;
  const line = (what: string, how: string, v: number) => [
    what,
    how,
    v.toFixed(1),
    `${((v / total!) * 100).toFixed(0)} %`,
  ];
  return {
    title: "Where `fourwall run -r gvisor` goes (root mode, derived)",
    header: ["phase", "computed as", "ms", "share"],
    rows: [
      line("Node, CLI, policy, plan", "--dry-run", plan!),
      line("runsc itself (sandbox, gofer, /bin/true)", "bare runsc run", run!),
      line(
        "the rest: proxy, run dir, bundle, bridge in the box (native), teardown",
        "run − --dry-run − bare runsc run",
        total! - plan! - run!,
      ),
    ],
    note: "Differences of medians measured in this run; approximate.",
  };
}

export const runtimes: BenchGroup = {
  id: "runtimes",
  title: "Cold start per runtime (whole process, spawn to exit)",
  async run(ctx): Promise<GroupResult> {
    // A private docker daemon when none runs (the same helper the tests use), stopped at the end.
    let docker: DockerBoxes | string;
    if (!ctx.isRoot) docker = "the docker runtime is root only";
    else if (!which("dockerd", "/usr/bin:/usr/sbin")) docker = "docker.io is not installed";
    else {
      ctx.log("runtimes: starting a docker daemon and fourwall's image");
      docker = await startDockerBoxes().catch((error: Error) => `no docker daemon: ${error.message}`);
    }
    let rows: Row[];
    try {
      rows = await measureRows(
        ctx,
        "runtimes",
        [...subjects(ctx), ...vmAndDockerSubjects(ctx, docker)],
        (id) => ROLES[id] ?? "informative",
      );
    } finally {
      if (typeof docker !== "string") await docker.stop();
    }
    const subjectsIds = ["gvisor-root", "gvisor-user"];
    const label = (id: string) => rows.find((r) => r.id === id)!.label;
    const breakdown = phases(rows);
    return {
      id: this.id,
      title: this.title,
      method:
        `Each command is spawned by the bench's own (warm) Node process; the time runs from spawn() to the exit event. ` +
        `${ctx.warmup} warm-up round(s), then ${ctx.runs} measured round(s), round-robin with a rotating start. ` +
        "runsc is Debian 12's (2022-12-19), platform ptrace (kvm does not work under this host's nested KVM).",
      rows,
      ratios: [
        ...subjectsIds.map((s) => ratio(rows, s, "runsc-do")),
        ratio(rows, "gvisor-root", "namespaces-root"),
        ratio(rows, "docker-root", "docker-bare"),
        ratio(rows, "vm-root", "qemu-boot"),
        ratio(rows, "vm-root", "namespaces-root"),
      ],
      targets: [
        ...subjectsIds.map((s) =>
          target(rows, `${label(s)} ≤ 1.5 × bare runsc do true (issue 16)`, s, "runsc-do", "<=", 1.5),
        ),
        target(
          rows,
          `${label("docker-root")} ≤ 1.3 × bare docker run --runtime=runsc (issue 16)`,
          "docker-root",
          "docker-bare",
          "<=",
          1.3,
        ),
      ],
      extraTables: breakdown ? [breakdown] : [],
      notes: [
        "The microVM runs under TCG emulation here (nested KVM refuses stock kernels): its row is mostly the guest kernel's boot, the 9p root and bwrap inside the guest, all emulated. No target; the ratio to a bare boot of the same guest is what fourwall adds.",
        "Docker: fourwall's docker box writes a seccomp profile, checks the daemon's runsc registration, starts the proxy and the in-box bridge, and Node runs first; the bare row is the daemon's own start of the same image under runsc.",
        "fourwall's box does more than `runsc do`: its own mounts (secrets hidden, HOME rebuilt), the seccomp profile, the egress proxy and the in-box bridge (native/fourwall-bridge.c, one static exec; sh + socat cost 100-250 ms under ptrace), and Node itself (~60-100 ms before any of it).",
      ],
    };
  },
};
