/**
 * The microVM runtime: the box gets a kernel of its own. QEMU runs a small Debian guest (kernel
 * and busybox initramfs built by scripts/build-vm.sh), and the command runs inside that guest.
 *
 * How the walls are carried over:
 *   - isolation: two layers. Outside, QEMU itself runs inside a namespaces-runtime box built from
 *     the same plan (bwrap, no capability, fourwall's seccomp filter, the box uid in root mode,
 *     QEMU's own -sandbox): an escape from the emulator lands in that box, not on the host.
 *     Inside, the guest runs the plan's command through the very same bwrap arguments and seccomp
 *     program as the namespaces runtime, as an unprivileged guest uid: `prove` sees the same walls,
 *     and the guest kernel is a second one to get through.
 *   - filesystem: the guest's root is QEMU's 9p export of "/" *as the outer box sees it*: already
 *     read-only, HOME rebuilt, secrets covered. The guest never gets a view of the real host: what
 *     the outer box cannot see, the guest's kernel cannot ask for. Each writable path is a second,
 *     writable 9p export of that path, and nothing else is writable.
 *   - egress: QEMU user networking with restrict=on: the guest's only reachable peer is a guestfwd
 *     to the proxy's unix socket (and the gate's). The outer box has no network but loopback, so
 *     even a slirp escape reaches nothing. The guest box reaches the relay through the same socat
 *     bridge as every runtime.
 *   - gate: the outer box's workdir is the copy-on-write layer (fourwall-overlay), so the guest
 *     writes into the layer through 9p.
 * The command's stdin, stdout and stderr, the control channel (ready, exit status, signals) and
 * the guest console are virtio-serial ports that QEMU connects to unix sockets fourwall listens
 * on. No TTY is passed through: the guest command's stdio are ports, not a terminal.
 * Acceleration: KVM when /dev/kvm works (FOURWALL_VM_ACCEL=kvm), else TCG emulation (this
 * machine kind: nested KVM refuses stock kernels): slow to boot (seconds), but the same walls.
 */
import { chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import path from "node:path";
import { WallError } from "../core/errors.js";
import { packageRoot, which } from "../core/paths.js";
import { shellQuote } from "../core/shell.js";
import type { BoxPlan } from "../plan/plan.js";
import { BOX_NET_DIR } from "../walls/egress/index.js";
import type { Mount } from "../walls/filesystem/index.js";
import { type LaunchSpec, launchBox } from "./launch.js";
import { bwrapArgs, NamespacesRuntime, namespacesHooks, namespacesLaunchSpec } from "./namespaces.js";
import {
  type BoxExit,
  type BoxSession,
  type RunningBox,
  type Runtime,
  type RuntimeCheck,
  type RuntimeTestOptions,
  unavailable,
} from "./runtime.js";

const QEMU = "qemu-system-x86_64";
const INSTALL_FIX = "apt-get install qemu-system-x86 and run scripts/build-vm.sh (npm run setup does both)";

/** The guest's private network: QEMU's virtual one, never routed anywhere (198.18.0.0/15 is for tests and benchmarks). */
export const GUEST_NET = { cidr: "198.19.250.0/24", guest: "198.19.250.15", relay: "198.19.250.100" };
/** Host unix sockets (in the outer box's BOX_NET_DIR) the guest may reach, each as one relay port. */
export const GUEST_RELAYS = [
  { socket: "proxy.sock", port: 3128 },
  { socket: "gate.sock", port: 3129 },
] as const;

/** Where the guest keeps its per-box files: a guest tmpfs over the dir the box gets its sockets from (so the box never sees the rest). */
const GUEST_DIR = `${BOX_NET_DIR}`;
/** The virtio-serial ports, by name; each is a unix socket fourwall listens on. */
export const PORTS = ["ctl", "stdin", "stdout", "stderr"] as const;
type PortName = (typeof PORTS)[number] | "console";

export interface VmImage {
  kernel: string;
  initrd: string;
  firmware?: string;
}

export function vmImage(root = packageRoot()): VmImage {
  const dir = path.join(root, "native", "build", "vm");
  const qboot = "/usr/share/qemu/qboot.rom";
  return {
    kernel: path.join(dir, "vmlinuz"),
    initrd: path.join(dir, "initrd.img"),
    ...(existsSync(qboot) ? { firmware: qboot } : {}),
  };
}

/** A writable path of the plan, exported to the guest as its own 9p share. */
export interface WritableShare {
  tag: string;
  path: string;
}

export function writableShares(mounts: Mount[]): WritableShare[] {
  return mounts
    .filter((m): m is Extract<Mount, { type: "bind" }> => m.type === "bind" && m.writable === true)
    .map((m, i) => ({ tag: `fwrw${i}`, path: m.target }));
}

/** Guest RAM: enough for node and git, never more than half the box's memory cap. */
export function guestMemoryMiB(memoryBytes: number): number {
  return Math.max(256, Math.min(1024, Math.floor(memoryBytes / 2 / 2 ** 20)));
}

/**
 * QEMU's argument list for a box (pure). `dir` is the box's vm directory as the outer box sees it.
 * Every device is named; -nodefaults leaves out everything else (no monitor, no display, no NIC).
 */
export function qemuArgs(
  plan: BoxPlan,
  dir: string,
  image: VmImage,
  accel: "tcg" | "kvm" = "tcg",
  qemu = `/usr/bin/${QEMU}`,
): string[] {
  const memory = guestMemoryMiB(plan.boxLimits.memoryBytes);
  // A path inside a QEMU option string is data: QEMU reads ",," as one literal comma (a workdir
  // named "w,readonly=off" must not add an option).
  const q = (value: string) => value.replaceAll(",", ",,");
  const chardev = (name: PortName) => ["-chardev", `socket,id=${name},path=${q(`${dir}/${name}.sock`)}`];
  const port = (name: PortName) => [
    ...chardev(name),
    "-device",
    `virtserialport,chardev=${name},name=fourwall.${name}`,
  ];
  const share = (tag: string, sharePath: string, readonly: boolean) => [
    "-fsdev",
    `local,id=${tag},path=${q(sharePath)},security_model=none,multidevs=remap${readonly ? ",readonly=on" : ""}`,
    "-device",
    `virtio-9p-pci,fsdev=${tag},mount_tag=${tag}`,
  ];
  const relays = GUEST_RELAYS.map(
    (r) =>
      `guestfwd=tcp:${GUEST_NET.relay}:${r.port}-cmd:/usr/bin/socat STDIO UNIX-CONNECT:${BOX_NET_DIR}/${r.socket}`,
  );
  return [
    qemu,
    ...["-accel", accel === "kvm" ? "kvm" : "tcg,thread=single"],
    ...["-machine", "q35", "-cpu", accel === "kvm" ? "host" : "max", "-m", `${memory}M`, "-smp", "1"],
    ...["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"],
    // QEMU's own seccomp filter on top of the box's. Only obsolete calls: its children inherit it,
    // and each guestfwd connection runs socat, which elevateprivileges=deny breaks (measured). New
    // privileges are out of reach anyway: the outer box has no capability and no_new_privs.
    ...["-sandbox", "on,obsolete=deny"],
    ...(image.firmware ? ["-bios", image.firmware] : []),
    ...["-kernel", image.kernel, "-initrd", image.initrd],
    ...["-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init"],
    ...chardev("console"),
    ...["-serial", "chardev:console"],
    ...["-device", "virtio-serial-pci"],
    ...PORTS.flatMap(port),
    ...share("fwcfg", `${dir}/cfg`, true),
    ...share("fwroot", "/", true),
    ...writableShares(plan.filesystem.mounts).flatMap((s) => share(s.tag, s.path, false)),
    ...["-netdev", `user,id=net0,restrict=on,net=${GUEST_NET.cidr},${relays.join(",")}`],
    // no option ROM: the kernel is loaded directly (and ipxe need not be installed)
    ...["-device", "virtio-net-pci,netdev=net0,romfile="],
  ];
}

/** The guest's uid: the box uid in root mode; the launching user otherwise (QEMU's own uid, the owner of what it writes). */
const guestIdentity = (plan: BoxPlan) => ({ uid: plan.identity.uid, gid: plan.identity.gid });

/**
 * The guest side of the plan, as a script the guest's init sources (pure). guest_mounts builds the
 * guest's root under /newroot from the 9p shares; guest_box (run from that root) starts the relays
 * to the proxy and gate sockets, then the box: bwrap with the namespaces runtime's own arguments
 * and seccomp program, as the box uid, its stdio on the ports.
 */
export function guestScript(
  plan: BoxPlan,
  gateFiles: { source: string; target: string }[],
  transformArgs: (args: string[]) => string[] = (args) => args,
): string {
  const guestSession: BoxSession = {
    runDir: GUEST_DIR,
    emptyFile: `${GUEST_DIR}/empty`,
    netDir: `${GUEST_DIR}/net`,
    cgroupDirs: [],
    gateFiles,
  };
  const { uid, gid } = guestIdentity(plan);
  const mount9p = (tag: string, at: string, options: string) =>
    `  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,${options} ${tag} ${shellQuote(`/newroot${at}`)} || fail ${shellQuote(`cannot mount ${at || "/"}`)}`;
  const env = Object.entries(plan.env).map(([k, v]) => shellQuote(`${k}=${v}`));
  const box = [
    `/usr/bin/setpriv --reuid=${uid} --regid=${gid} --clear-groups --inh-caps=-all --bounding-set=-all --`,
    "/usr/bin/env -i",
    ...env,
    "/usr/bin/bwrap",
    ...transformArgs(bwrapArgs(guestView(plan), guestSession)).map(shellQuote),
  ].join(" \\\n    ");
  return [
    `# The guest side of box ${plan.id}, generated by fourwall from its plan.`,
    `G=${GUEST_DIR}`,
    "guest_mounts() {",
    `  ip link set lo up && ip link set eth0 up && ip addr add ${GUEST_NET.guest}/24 dev eth0 || fail "no guest network"`,
    mount9p("fwroot", "", "ro,cache=loose"),
    ...writableShares(plan.filesystem.mounts).map((s) => mount9p(s.tag, s.path, "rw,cache=mmap")),
    "  mount -t proc proc /newroot/proc && mount -t sysfs sys /newroot/sys && mount -t devtmpfs dev /newroot/dev || fail 'cannot mount proc, sys or dev'",
    `  mount -t tmpfs -o mode=755 tmpfs "/newroot$G" && mkdir -p "/newroot$G/net" || fail "no guest tmpfs"`,
    `  : >"/newroot$G/empty" && chmod 444 "/newroot$G/empty"`,
    "}",
    "guest_box() {",
    // The relays: a unix socket in the box's net dir for each host socket, forwarded to QEMU's guestfwd.
    ...GUEST_RELAYS.map(
      (r) =>
        `  /usr/bin/socat UNIX-LISTEN:$G/net/${r.socket},fork,mode=666 TCP:${GUEST_NET.relay}:${r.port} </dev/null >/dev/null 2>&1 &`,
    ),
    `  i=0; while [ ! -S "$G/net/${GUEST_RELAYS[0].socket}" ] || [ ! -S "$G/net/${GUEST_RELAYS[1].socket}" ]; do`,
    '    i=$((i+1)); [ $i -gt 500 ] && fail "the relays did not start"; usleep 10000',
    "  done",
    // The box's rlimits are set inside it (prlimit), unprivileged: open files above the guest's default hard limit need raising here first.
    `  ulimit -n ${plan.rlimits.find((r) => r.name === "nofile")?.value ?? 1024} || fail "cannot raise the open-files limit"`,
    '  IN=$(port fourwall.stdin) && OUT=$(port fourwall.stdout) && ERR=$(port fourwall.stderr) || fail "no stdio ports"',
    // bwrap's ready fd 6 is the control port (fd 9), where it writes "ready".
    `  ${box} \\\n    3<"$G/cfg/seccomp.bpf" 4>"$G/status.json" 6>&9 <"$IN" >"$OUT" 2>"$ERR" &`,
    '  run_box $! "$G/status.json"',
    "}",
  ].join("\n");
}

interface PortServer {
  server: net.Server;
  connected: Promise<net.Socket>;
}

function listenPort(socketPath: string, owner?: { uid: number; gid: number }): Promise<PortServer> {
  return new Promise((resolve, reject) => {
    let accept: (s: net.Socket) => void = () => {};
    const connected = new Promise<net.Socket>((r) => (accept = r));
    // One connection (QEMU's) and no other: close the listener on the first.
    const server = net.createServer((socket) => {
      server.close();
      accept(socket);
    });
    server.once("error", reject);
    server.listen(socketPath, () => {
      if (owner) chownSync(socketPath, owner.uid, owner.gid);
      resolve({ server, connected });
    });
  });
}

/**
 * The guest's root is the outer box's view, where generated files (the box's /etc/passwd, its
 * ~/.gitconfig) are already in place: the guest binds each onto itself.
 */
export const guestView = (plan: BoxPlan): BoxPlan => ({
  ...plan,
  filesystem: {
    ...plan.filesystem,
    mounts: plan.filesystem.mounts.map((m) =>
      m.type === "file"
        ? { type: "bind", source: m.target, target: m.target, writable: false, why: m.why }
        : m,
    ),
  },
});

/**
 * The plan for the outer box: the same walls, with QEMU as the command, and the guest image bound
 * in read-only (fourwall may live where the box sees nothing, e.g. under /tmp).
 */
function outerPlan(plan: BoxPlan, qemu: string[], image: VmImage): BoxPlan {
  const dir = path.dirname(image.kernel);
  const imageMount = {
    type: "bind" as const,
    source: dir,
    target: dir,
    writable: false,
    why: "the microVM's kernel and initramfs",
  };
  return {
    ...plan,
    command: qemu,
    filesystem: { ...plan.filesystem, mounts: [...plan.filesystem.mounts, imageMount] },
  };
}

/**
 * How the microVM runtime launches a plan (pure): QEMU as the command of a namespaces box built
 * from the same plan (the outer box; see the header). The guest's side is guestScript's.
 */
export function vmLaunchSpec(
  plan: BoxPlan,
  session: BoxSession,
  vm: { image: VmImage; accel: "tcg" | "kvm"; qemu: string },
): LaunchSpec {
  const qemu = qemuArgs(plan, `${BOX_NET_DIR}/vm`, vm.image, vm.accel, vm.qemu);
  return namespacesLaunchSpec(outerPlan(plan, qemu, vm.image), session);
}

export class VmRuntime implements Runtime {
  readonly name = "vm" as const;

  /** transformArgs rewrites the guest's bwrap arguments (the QEMU box around it stays whole). */
  constructor(private readonly options: RuntimeTestOptions = {}) {}

  check(): RuntimeCheck {
    if (!which(QEMU, "/usr/bin:/usr/local/bin"))
      return unavailable(this.name, `${QEMU} is not installed`, INSTALL_FIX);
    const image = vmImage();
    if (!existsSync(image.kernel) || !existsSync(image.initrd))
      return unavailable(
        this.name,
        `the guest kernel and initramfs are not built (${path.dirname(image.kernel)})`,
        INSTALL_FIX,
      );
    const outer = new NamespacesRuntime().check();
    if (!outer.available)
      return { ...outer, runtime: this.name, detail: `QEMU runs inside a namespaces box: ${outer.detail}` };
    const accel = vmAccel();
    const version = readFileSync(path.join(path.dirname(image.kernel), "kernel-version"), "utf8").trim();
    return {
      runtime: this.name,
      available: true,
      detail: `QEMU q35 ${accel === "kvm" ? "with KVM" : "under TCG emulation (no usable KVM: slow boot)"}, guest Linux ${version}, 9p shares, user networking restricted to the proxy`,
    };
  }

  async launch(plan: BoxPlan, session: BoxSession): Promise<RunningBox> {
    const check = this.check();
    if (!check.available) throw new WallError("isolation", check.detail, check.fix ?? "run fourwall doctor");
    if (plan.network.transparent) {
      throw new WallError(
        "egress",
        "transparent egress is not available in the microVM runtime",
        "set egress.transparent: false (the box uses the proxy variables)",
      );
    }
    const owner =
      plan.identity.mode === "root" ? { uid: plan.identity.uid, gid: plan.identity.gid } : undefined;
    // Beside the proxy socket: the outer box sees this dir at BOX_NET_DIR/vm.
    const hostDir = path.join(session.netDir, "vm");
    const cfg = path.join(hostDir, "cfg");
    mkdirSync(cfg, { recursive: true, mode: 0o755 });
    if (owner) chownSync(hostDir, owner.uid, owner.gid);
    const gateFiles = (session.gateFiles ?? []).map((f, i) => {
      const name = `gate-${i}`;
      copyFileSync(f.source, path.join(cfg, name));
      return { source: `${GUEST_DIR}/cfg/${name}`, target: f.target };
    });
    writeFileSync(path.join(cfg, "seccomp.bpf"), plan.seccomp, { mode: 0o444 });
    writeFileSync(path.join(cfg, "guest.sh"), guestScript(plan, gateFiles, this.options.transformArgs), {
      mode: 0o444,
    });

    const ports = Object.fromEntries(
      await Promise.all(
        (["console", ...PORTS] as const).map(
          async (name) => [name, await listenPort(path.join(hostDir, `${name}.sock`), owner)] as const,
        ),
      ),
    ) as Record<PortName, PortServer>;
    const closeAll = () => {
      for (const p of Object.values(ports)) p.server.close();
    };

    let qemu: RunningBox;
    try {
      const qemuBin = which(QEMU, "/usr/bin:/usr/local/bin") ?? `/usr/bin/${QEMU}`;
      // QEMU never gets the caller's terminal: fourwall relays the guest's stdio ports itself.
      const outerSession = {
        ...session,
        terminal: session.terminal && { ...session.terminal, detach: true },
      };
      const launch = vmLaunchSpec(plan, outerSession, { image: vmImage(), accel: vmAccel(), qemu: qemuBin });
      qemu = await launchBox(launch, namespacesHooks());
    } catch (error) {
      closeAll();
      throw error;
    }
    const [console_, ctl, stdin, stdout, stderr] = await Promise.race([
      Promise.all(
        [ports.console, ports.ctl, ports.stdin, ports.stdout, ports.stderr].map((p) => p.connected),
      ),
      qemu.exit.then(() => {
        closeAll();
        throw new WallError(
          "isolation",
          "QEMU exited before it connected its ports (its message is above)",
          "run `fourwall doctor`",
        );
      }),
    ]);

    let consoleTail = "";
    console_!.setEncoding("utf8");
    console_!.on("data", (text: string) => {
      if (process.env.FOURWALL_VM_CONSOLE) process.stderr.write(text);
      consoleTail = (consoleTail + text).slice(-4000);
    });
    console_!.on("error", () => {});
    // stdio: the command's own streams, relayed both ways; EOF on ours is EOF in the guest.
    process.stdin.pipe(stdin!);
    stdin!.on("error", () => {});
    const drained = (s: net.Socket, to: NodeJS.WritableStream) =>
      new Promise<void>((resolve) => {
        s.on("data", (chunk) => to.write(chunk));
        s.once("close", () => resolve());
        s.on("error", () => resolve());
      });
    const outputDone = Promise.all([drained(stdout!, process.stdout), drained(stderr!, process.stderr)]);

    const control = readControl(ctl!);
    const started = await Promise.race([control.ready, qemu.exit.then(() => false)]);
    if (!started) {
      process.stdin.unpipe(stdin!);
      qemu.signal("SIGKILL"); // gone already when the guest powered off; certain otherwise
      await qemu.exit;
      closeAll();
      const reason = (await control.failure) ?? "the guest stopped before the box started";
      throw new WallError(
        "isolation",
        `the microVM did not start the box: ${reason}${consoleTail ? `\n--- guest console ---\n${consoleTail.trim()}` : ""}`,
        "run `fourwall doctor`; FOURWALL_VM_CONSOLE=1 shows the guest's console",
      );
    }

    const exit = (async (): Promise<BoxExit> => {
      const outerExit = await qemu.exit;
      await outputDone;
      process.stdin.unpipe(stdin!);
      closeAll();
      const code = await Promise.race([control.exit, Promise.resolve(undefined)]);
      // No status from the guest: it died (or QEMU did) before the command ended.
      return { code: code ?? (outerExit.code === 0 ? 125 : outerExit.code) };
    })();

    return {
      exit,
      signal(sig) {
        ctl!.write(`${sig}\n`);
      },
    };
  }
}

/** The control port: "ready" when the command starts, "exit N" when it ends, "fail REASON" when the guest cannot start it. */
function readControl(ctl: net.Socket) {
  let ready: (v: boolean) => void = () => {};
  let exit: (code: number | undefined) => void = () => {};
  let failure: (reason: string | undefined) => void = () => {};
  const result = {
    ready: new Promise<boolean>((r) => (ready = r)),
    exit: new Promise<number | undefined>((r) => (exit = r)),
    failure: new Promise<string | undefined>((r) => (failure = r)),
  };
  let buffer = "";
  ctl.setEncoding("utf8");
  ctl.on("data", (text: string) => {
    buffer += text;
    for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line === "ready") ready(true);
      else if (line.startsWith("exit ")) exit(Number(line.slice(5)));
      else if (line.startsWith("fail ")) failure(line.slice(5));
    }
  });
  const end = () => {
    ready(false);
    exit(undefined);
    failure(undefined);
  };
  ctl.on("close", end);
  ctl.on("error", end);
  return result;
}

/** KVM only when asked for and usable; TCG otherwise (nested KVM here refuses stock kernels). */
export function vmAccel(): "tcg" | "kvm" {
  return process.env.FOURWALL_VM_ACCEL === "kvm" && existsSync("/dev/kvm") ? "kvm" : "tcg";
}
