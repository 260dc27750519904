/**
 * The Docker runtime: the box is a container of the user's image (`--image`, or a tiny image
 * fourwall builds once from the host's own busybox-static and socat), run by gVisor's runsc
 * through the docker daemon.
 *
 * How the walls are carried over (measured on Debian 12's docker.io 20.10 and runsc 2022-12-19):
 *   - isolation: `--runtime=runsc` (runc only when FOURWALL_DOCKER_RUNTIME=runc says so, with a
 *     warning), `--cap-drop ALL`, `--security-opt no-new-privileges`, fourwall's seccomp rule
 *     table as a Docker profile (oci.ts's ociSeccomp: one translation, not two), rlimits as
 *     `--ulimit`, `--pids-limit`/`--memory` from the plan's box limits (under runsc, --pids-limit
 *     also counts runsc's own host tasks: gvisor.ts's runscPidsMax). The box runs as the
 *     non-root uid that owns the workdir (Docker 20.10 has no idmapped mounts): root mode with a
 *     root-owned workdir is refused, and so is fourwall run by an ordinary user (the daemon runs
 *     as root: its socket is root-equivalent; rootless Docker is not supported yet).
 *   - filesystem: the image is the read-only root (`--read-only`); the host is not visible at all
 *     but for the plan's writable paths (bind mounts) and the plan's covers inside them (secret
 *     files inside the workdir stay hidden), its tmpfs mounts (/tmp, sized) and the proxy
 *     socket's directory. No docker.sock is ever mounted.
 *   - egress: `--network none` (never the default bridge); the proxy socket's directory is bound
 *     at /run/fourwall and the same socat bridge as in the other runtimes listens on
 *     127.0.0.1:3128 inside. runsc must be registered with `--network=none --host-uds=open` for
 *     that (see DOCKERD_RUNSC_ARGS): Docker's own runsc entry without them refuses to start
 *     ("cannot run with network enabled in root network namespace") or cannot reach the socket.
 * Lifetime: `docker run --rm` in the foreground; signals go through `docker kill --signal`, and a
 * client that dies without its container gets `docker rm -f`.
 */
import { execFile, spawnSync } from "node:child_process";
import { chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import path from "node:path";
import { WallError } from "../core/errors.js";
import { dropHelperPath, isUnder, which } from "../core/paths.js";
import { shellQuote } from "../core/shell.js";
import type { BoxPlan } from "../plan/plan.js";
import { onKill } from "../plan/session.js";
import { BOX_NET_DIR, bridgeScript } from "../walls/egress/index.js";
import { buildImage, type ImageKind, imageTag } from "./docker-image.js";
import { placeBridge, runscPidsMax } from "./gvisor.js";
import { type LaunchSpec, launchBox, SIGNAL } from "./launch.js";
import { OciError, type OciMount, type OciSeccomp, ociMounts, ociSeccomp, ociWallError } from "./oci.js";
import {
  type BoxSession,
  unavailable as notHere,
  type RunningBox,
  type Runtime,
  type RuntimeCheck,
  type RuntimeTestOptions,
} from "./runtime.js";
import { terminalPrefix } from "./terminal.js";

/** Debian's docker client first: it matches Debian's daemon. */
const DOCKER_PATH = "/usr/bin:/usr/sbin:/usr/local/bin:/usr/local/sbin:/bin:/sbin";
/** The runtime arguments runsc needs in the daemon's config for a fourwall box. */
export const DOCKERD_RUNSC_ARGS = ["--network=none", "--host-uds=open", "--oci-seccomp", "--platform=ptrace"];
/** Of those, the ones a box cannot do without (no network, the proxy socket, the seccomp rules). */
const REQUIRED_RUNSC_ARGS = ["--network=none", "--host-uds=open", "--oci-seccomp"];
const RUNSC_FIX = `register runsc in /etc/docker/daemon.json: {"runtimes":{"runsc":{"path":"/usr/bin/runsc","runtimeArgs":${JSON.stringify(DOCKERD_RUNSC_ARGS)}}}} and restart dockerd (apt-get install runsc first)`;
const ROOT_FIX =
  "run fourwall as root (sudo): the docker daemon runs as root and its socket is root-equivalent, so fourwall does not drive it for an ordinary user (rootless Docker is not supported yet); or use --runtime gvisor / namespaces, which run rootless";

export type DockerEngine = "runsc" | "runc";

export interface DockerRunOptions {
  image: string;
  engine: DockerEngine;
  /** Host path of the seccomp profile (JSON) the daemon reads. */
  seccompFile: string;
  user: { uid: number; gid: number };
  name: string;
  tty: boolean;
  /** The static native bridge's name in the socket directory (gvisor.ts's placeBridge): the entrypoint then, in any image. */
  bridgeInNetDir?: string;
}

/** Docker's --mount takes CSV: refuse what it cannot carry rather than quote around it. */
function mountPath(p: string): string {
  if (/[,"\n:=]/.test(p))
    throw new OciError(
      "filesystem",
      `docker cannot mount the path ${JSON.stringify(p)} (a , " : = or newline in it)`,
    );
  return p;
}

/**
 * The plan's mounts that make sense on an image root: the writable paths and everything inside
 * them (covers of secret files in the workdir), and tmpfs mounts (/tmp). Host binds elsewhere,
 * /proc and /dev are the image's and Docker's business: the host is simply not there.
 */
export function dockerMounts(plan: BoxPlan, session: BoxSession): OciMount[] {
  const { mounts } = ociMounts(plan, session);
  const kept = mounts.filter((m) => {
    if (m.type === "proc") return false;
    if (m.type === "tmpfs") return m.destination !== "/dev";
    return plan.filesystem.writable.some((w) => isUnder(m.destination, w));
  });
  if (kept.some((m) => isUnder(m.destination, BOX_NET_DIR)))
    throw new OciError("filesystem", `a plan mount would hide the proxy socket's directory ${BOX_NET_DIR}`);
  return kept;
}

function mountArgs(m: OciMount): string[] {
  const dst = mountPath(m.destination);
  if (m.type === "tmpfs") {
    const opts = m.options.filter((o) => o !== "rw");
    if (dst === "/tmp") opts.splice(opts.indexOf("mode=755"), 1, "mode=1777");
    return ["--tmpfs", `${dst}:${opts.join(",")}`];
  }
  const ro = m.options.includes("ro") ? ",readonly" : "";
  return ["--mount", `type=bind,source=${mountPath(m.source)},target=${dst}${ro}`];
}

/** fourwall's seccomp table as a Docker profile. Under runc the rules left to gVisor need host-kernel forms. */
export function dockerSeccomp(engine: DockerEngine): OciSeccomp {
  const { seccomp } = ociSeccomp();
  if (engine === "runc") {
    // gVisor answers clone3 with ENOSYS itself; the host kernel does not (clone3's flags cannot be
    // filtered): deny it so glibc falls back to clone(), whose flags the table does filter.
    seccomp.syscalls.push({ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: 38 });
  }
  return seccomp;
}

/** The `docker run` arguments for a plan (pure). The environment goes by name only (-e NAME): values ride in the client's env. */
export function dockerRunArgs(plan: BoxPlan, session: BoxSession, options: DockerRunOptions): string[] {
  const mounts = dockerMounts(plan, session).flatMap(mountArgs);
  const env = Object.keys(plan.env).flatMap((k) => {
    if (k === "" || k.includes("="))
      throw new OciError("filesystem", `bad environment name ${JSON.stringify(k)}`);
    // the client's own variables (see dockerClientEnv) cannot carry the box's value: inline those
    return CLIENT_ENV.includes(k) || k.startsWith("DOCKER_") ? ["-e", `${k}=${plan.env[k]}`] : ["-e", k];
  });
  const ulimits = plan.rlimits.flatMap((r) => ["--ulimit", `${r.name}=${r.value}:${r.value}`]);
  return [
    "run",
    "--rm",
    "--name",
    options.name,
    "-i",
    ...(options.tty ? ["-t"] : []),
    `--runtime=${options.engine}`,
    "--read-only",
    "--network",
    "none",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--security-opt",
    `seccomp=${options.seccompFile}`,
    "--user",
    `${options.user.uid}:${options.user.gid}`,
    "--pids-limit",
    // under runsc the sandbox's own threads count too (the box's processes stay held by --ulimit nproc)
    String(options.engine === "runsc" ? runscPidsMax(plan.boxLimits.pids) : plan.boxLimits.pids),
    "--memory",
    String(plan.boxLimits.memoryBytes),
    "--memory-swap",
    String(plan.boxLimits.memoryBytes),
    ...ulimits,
    "--hostname",
    plan.hostname,
    "--workdir",
    mountPath(plan.filesystem.cwd),
    ...mounts,
    "--mount",
    `type=bind,source=${mountPath(session.netDir)},target=${BOX_NET_DIR},readonly`,
    ...env,
    ...(options.bridgeInNetDir === undefined
      ? shellBridge(plan, options.image)
      : nativeBridge(plan, options)),
  ];
}

/** The entrypoint as the native bridge: one static exec, no sh or socat needed in the image. */
function nativeBridge(plan: BoxPlan, options: DockerRunOptions): string[] {
  return [
    "--entrypoint",
    `${BOX_NET_DIR}/${options.bridgeInNetDir}`,
    options.image,
    "--listen",
    String(plan.network.port),
    plan.network.socketInBox,
    "--",
    ...plan.command,
  ];
}

/** The entrypoint as sh + socat (the native bridge is not built): the image must have both. */
function shellBridge(plan: BoxPlan, image: string): string[] {
  return [
    "--entrypoint",
    "/bin/sh",
    image,
    "-c",
    [
      'command -v socat >/dev/null 2>&1 || { echo "fourwall: the image has no socat (the box reaches the proxy through it): add it, or use the default image" >&2; exit 125; }',
      bridgeScript(plan.network),
    ].join("\n"),
    "fourwall-bridge",
    ...plan.command,
  ];
}

/** The plan's filesystem with the workdir's bind coming from the mounted gate layer instead. */
function withWorkdirSource(plan: BoxPlan, layer: string): BoxPlan["filesystem"] {
  const workdir = plan.filesystem.cwd;
  // every bind from inside the workdir (the workdir, pinned dirs, read-only islands) comes from the
  // layer: the daemon binds from the host's mount namespace, where the real workdir is not the layer
  const mounts = plan.filesystem.mounts.map((m) =>
    m.type === "bind" && isUnder(m.source, workdir)
      ? { ...m, source: path.join(layer, path.relative(workdir, m.source)) }
      : m,
  );
  return { ...plan.filesystem, mounts };
}

/**
 * Mounts the gate's copy-on-write layer over the workdir at <run dir>/workdir, on the host (the
 * same options as native/fourwall-overlay.c, so the change-set reads the same). If fourwall is
 * killed, the reaper unmounts it right after removing the container.
 */
function mountGateLayer(session: BoxSession, user: { uid: number; gid: number }): string {
  const { lower, upper, work } = session.overlay!;
  const merged = path.join(session.runDir, "workdir");
  mkdirSync(merged, { mode: 0o700 });
  // The layer's root takes the upper dir's owner: the box's user must own it to write the workdir.
  chownSync(upper, user.uid, user.gid);
  chownSync(work, user.uid, user.gid);
  // upper and work relative to their own directory (mount's cwd): the container's mountinfo shows
  // the overlay's options, and they name no host path of the layer (the gate's layer.ts)
  const options = `lowerdir=${lower},upperdir=${path.basename(upper)},workdir=${path.basename(work)},userxattr,metacopy=off,index=off,xino=off`;
  const r = spawnSync("mount", ["-t", "overlay", "overlay", "-o", options, merged], {
    encoding: "utf8",
    cwd: path.dirname(upper),
  });
  if (r.status !== 0)
    throw new WallError(
      "gate",
      `docker: cannot mount the copy-on-write layer over the workdir: ${r.stderr.trim() || r.error?.message}`,
      "check that the workdir path has no , or : and that overlayfs is available (modprobe overlay)",
    );
  onKill(session.runDir, `umount -l ${shellQuote(merged)} 2>/dev/null`, "first");
  return merged;
}

/**
 * Placeholders outside the workdir (box/through.ts, carrier "host"): each write-through overlay is
 * mounted on the host under <run dir>/through (0700, root's: no other user reaches the view) and
 * becomes the bind source of its directory; the real directory never gets the placeholder. The
 * box runs as the directory's owner (dockerUser), so its writes land as the owner without an idmap.
 */
function mountThrough(session: BoxSession, done: { dir: string; merged: string }[]): void {
  const top = path.join(session.runDir, "through");
  mkdirSync(top, { mode: 0o700 });
  session.through!.mounts.forEach(({ dir, sub }, i) => {
    const merged = path.join(top, String(i));
    mkdirSync(merged, { mode: 0o700 });
    // over a clone of the mount holding both DIR and SUB (overlayfs wants upper and work on one mount)
    const r = spawnSync(dropHelperPath(), ["--mount-through", sub, dir, merged], { encoding: "utf8" });
    if (r.status !== 0)
      throw new WallError(
        "filesystem",
        `docker: cannot mount the write-through overlay that carries the placeholders of ${dir}: ${r.stderr.trim() || r.error?.message}`,
        "npm run setup (builds native/fourwall-drop), and check that overlayfs is available (modprobe overlay)",
      );
    onKill(session.runDir, `umount -l ${shellQuote(merged)} 2>/dev/null`, "first");
    done.push({ dir, merged });
  });
}

/** The plan's binds from inside a write-through overlay's directory, from its mount instead (pure). */
export function withThroughSources(
  fs: BoxPlan["filesystem"],
  through: readonly { dir: string; merged: string }[],
): BoxPlan["filesystem"] {
  const mounts = fs.mounts.map((m) => {
    if (m.type !== "bind") return m;
    const t = through.find((t) => m.source === t.dir || isUnder(m.source, t.dir));
    return t ? { ...m, source: path.join(t.merged, path.relative(t.dir, m.source)) } : m;
  });
  return { ...fs, mounts };
}

function unmountGateLayer(merged: string): void {
  if (spawnSync("umount", [merged]).status !== 0) spawnSync("umount", ["-l", merged]);
}

/** Who the box runs as: the owner of the writable paths, never root. Throws WallError. */
export function dockerUser(plan: BoxPlan): { uid: number; gid: number } {
  if (plan.identity.mode === "user")
    throw new WallError("isolation", "the docker runtime needs fourwall to run as root", ROOT_FIX);
  const owners = plan.filesystem.writable.map((w) => {
    const m =
      plan.identity.mode === "root" ? plan.identity.idmaps.find((i) => isUnder(w, i.path)) : undefined;
    return m ? { uid: m.ownerUid, gid: m.ownerGid } : { uid: plan.identity.uid, gid: plan.identity.gid };
  });
  const first = owners[0] ?? { uid: plan.identity.uid, gid: plan.identity.gid };
  if (owners.some((o) => o.uid !== first.uid))
    throw new WallError(
      "isolation",
      "docker: the writable paths have different owners (Docker 20.10 has no idmapped mounts)",
      "give them one owner, or use --runtime namespaces",
    );
  if (first.uid === 0)
    throw new WallError(
      "isolation",
      `docker: the workdir ${plan.filesystem.writable[0]} is owned by root, and the box must not run as root (Docker 20.10 has no idmapped mounts)`,
      `chown -R ${plan.identity.uid}:${plan.identity.gid} the workdir (or to any unprivileged user), or use --runtime namespaces / gvisor`,
    );
  return first;
}

// --- the docker client and the default image

const CLIENT_ENV = [
  "PATH",
  "HOME",
  "DOCKER_HOST",
  "DOCKER_CONFIG",
  "DOCKER_CONTEXT",
  "DOCKER_TLS_VERIFY",
  "DOCKER_CERT_PATH",
];

function dockerClientEnv(): Record<string, string> {
  const env: Record<string, string> = { PATH: DOCKER_PATH };
  for (const k of CLIENT_ENV.slice(1)) if (process.env[k] !== undefined) env[k] = process.env[k]!;
  return env;
}

function docker(bin: string, args: string[], timeout = 20_000) {
  return spawnSync(bin, args, { encoding: "utf8", timeout, killSignal: "SIGKILL", env: dockerClientEnv() });
}

interface ClientResult {
  status: number | null;
  stdout: string;
  stderr: string;
  error?: Error;
}

/** The same, without blocking: launch asks the daemon two questions at once. */
function dockerAsync(bin: string, args: string[], timeout = 20_000): Promise<ClientResult> {
  return new Promise((resolve) => {
    execFile(
      bin,
      args,
      { encoding: "utf8", timeout, killSignal: "SIGKILL", env: dockerClientEnv() },
      (error, stdout, stderr) => {
        const status = error ? (typeof error.code === "number" ? error.code : null) : 0;
        resolve({ status, stdout, stderr, ...(error && status === null ? { error } : {}) });
      },
    );
  });
}

/**
 * The daemon's unix socket when the client would use it for sure: DOCKER_HOST=unix://PATH, or no
 * DOCKER_HOST, context or config (the default socket). Anything else (tcp, ssh, a context): undefined,
 * and the docker client is asked instead.
 */
export function engineSocket(env: NodeJS.ProcessEnv): string | undefined {
  const host = env.DOCKER_HOST;
  if (host !== undefined)
    return host.startsWith("unix://") && !env.DOCKER_CONTEXT ? host.slice(7) : undefined;
  if (env.DOCKER_CONTEXT || env.DOCKER_CONFIG || !env.HOME) return undefined;
  try {
    const config = JSON.parse(readFileSync(path.join(env.HOME, ".docker", "config.json"), "utf8")) as {
      currentContext?: string;
    };
    if (config.currentContext && config.currentContext !== "default") return undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") return undefined;
  }
  return "/var/run/docker.sock";
}

/** One GET on the engine's API over its unix socket: status and parsed JSON body, or undefined on any failure. */
function engineGet(
  socketPath: string,
  route: string,
): Promise<{ status: number; body: unknown } | undefined> {
  return new Promise((resolve) => {
    const req = httpRequest({ socketPath, path: route, method: "GET", timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined });
        } catch {
          resolve(undefined);
        }
      });
      res.on("error", () => resolve(undefined));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
    req.end();
  });
}

/**
 * `docker info` and `docker image inspect` straight from the engine API (~5 ms instead of two
 * client starts, 60-200 ms each under load): the same daemon, the same answers. Undefined when the
 * API path is not certain or fails: the caller asks the client, which also words the errors.
 */
async function engineQuestions(
  tag: string | undefined,
): Promise<{ info: DaemonInfo; haveImage: boolean } | undefined> {
  const socketPath = engineSocket(process.env);
  if (!socketPath) return undefined;
  const [info, image] = await Promise.all([
    engineGet(socketPath, "/info"),
    tag ? engineGet(socketPath, `/images/${encodeURIComponent(tag)}/json`) : undefined,
  ]);
  if (info?.status !== 200 || typeof info.body !== "object" || info.body === null) return undefined;
  if (tag && (image === undefined || (image.status !== 200 && image.status !== 404))) return undefined;
  const body = info.body as {
    Runtimes?: Record<string, { runtimeArgs?: string[] | null } | null>;
    ServerVersion?: string;
    ServerErrors?: string[];
  };
  if (body.ServerErrors?.length) return undefined;
  const runtimeArgs = Object.fromEntries(
    Object.entries(body.Runtimes ?? {}).map(([k, v]) => [k, v?.runtimeArgs ?? []]),
  );
  return {
    info: {
      reachable: true,
      runtimes: Object.keys(runtimeArgs),
      runtimeArgs,
      ...(body.ServerVersion ? { version: body.ServerVersion } : {}),
    },
    haveImage: image?.status === 200,
  };
}

/** The default image, built from the host's files the first time a daemon lacks it. */
async function ensureImage(kind: ImageKind, tag: string, bin: string): Promise<string> {
  try {
    await buildImage(kind, tag, bin, dockerClientEnv());
    return tag;
  } catch (error) {
    throw new WallError(
      "isolation",
      `docker: cannot build fourwall's ${kind} image: ${(error as Error).message}`,
      "run `fourwall doctor`, or pass --image NAME",
    );
  }
}

interface DaemonInfo {
  reachable: boolean;
  error?: string;
  runtimes: string[];
  /** runtimeArgs per runtime, as the daemon registered them. */
  runtimeArgs: Record<string, string[]>;
  version?: string;
}

const INFO_ARGS = [
  "info",
  "--format",
  "{{if .ServerErrors}}ERR{{json .ServerErrors}}{{else}}{{json .Runtimes}}|{{.ServerVersion}}{{end}}",
];

function parseInfo(r: ClientResult): DaemonInfo {
  if (r.stdout?.startsWith("ERR")) {
    let errors: string[] = [];
    try {
      errors = JSON.parse(r.stdout.slice(3)) as string[];
    } catch {}
    return {
      reachable: false,
      runtimes: [],
      runtimeArgs: {},
      error: errors.join("; ") || r.stdout.slice(3).trim(),
    };
  }
  if (r.status !== 0 || r.error) {
    // the client's real complaint ("Cannot connect to the Docker daemon at ...") comes before its template's
    const lines = (r.stderr || r.error?.message || `exit ${r.status}`).trim().split("\n").filter(Boolean);
    const error =
      lines.find((l) => /cannot connect|permission denied|no such file|refused/i.test(l)) ?? lines[0];
    return { reachable: false, runtimes: [], runtimeArgs: {}, ...(error ? { error } : {}) };
  }
  const [runtimes, version] = r.stdout.trim().split("|");
  let parsed: Record<string, { runtimeArgs?: string[] | null }> = {};
  try {
    parsed = JSON.parse(runtimes ?? "{}") as typeof parsed;
  } catch {}
  const runtimeArgs = Object.fromEntries(Object.entries(parsed).map(([k, v]) => [k, v?.runtimeArgs ?? []]));
  return { reachable: true, runtimes: Object.keys(parsed), runtimeArgs, ...(version ? { version } : {}) };
}

export interface DockerRuntimeOptions extends RuntimeTestOptions {
  /** The image (`--image`; default: one fourwall builds, see defaultImage). */
  image?: string;
  /** Which of fourwall's own images to run when no image is named: "box" (default) or "tools" (prove). */
  defaultImage?: ImageKind;
  /** runsc (default) or runc (FOURWALL_DOCKER_RUNTIME=runc). */
  engine?: DockerEngine;
}

export class DockerRuntime implements Runtime {
  readonly name = "docker" as const;
  constructor(private readonly options: DockerRuntimeOptions = {}) {}

  private engine(): DockerEngine {
    return this.options.engine ?? (process.env.FOURWALL_DOCKER_RUNTIME === "runc" ? "runc" : "runsc");
  }

  private preflight(known?: DaemonInfo): RuntimeCheck & { bin?: string } {
    const unavailable = (detail: string, fix: string) => notHere(this.name, detail, fix);
    const bin = which("docker", DOCKER_PATH);
    if (!bin)
      return unavailable(
        "the docker client is not installed",
        "apt-get install docker.io (or: npm run setup)",
      );
    if (process.getuid?.() !== 0) return unavailable("fourwall is not running as root", ROOT_FIX);
    const info = known ?? parseInfo(docker(bin, INFO_ARGS, 10_000));
    if (!info.reachable)
      return unavailable(
        `the docker daemon is not reachable (${info.error})`,
        "start dockerd (systemctl start docker), or point DOCKER_HOST at a running daemon",
      );
    const engine = this.engine();
    if (!info.runtimes.includes(engine))
      return unavailable(
        `the docker daemon ${info.version ?? ""} has no "${engine}" runtime (it has: ${info.runtimes.join(", ")})`,
        RUNSC_FIX,
      );
    if (engine === "runsc") {
      const missing = REQUIRED_RUNSC_ARGS.filter((a) => !(info.runtimeArgs.runsc ?? []).includes(a));
      if (missing.length > 0)
        return unavailable(
          `the docker daemon's runsc is registered without ${missing.join(" ")} (no network, the proxy socket, the seccomp rules)`,
          RUNSC_FIX,
        );
    }
    return {
      runtime: this.name,
      available: true,
      detail: `docker ${info.version ?? "?"} at ${process.env.DOCKER_HOST ?? "the default socket"}, --runtime=${engine}, --network none + proxy bridge`,
      bin,
    };
  }

  check(): RuntimeCheck {
    const { bin: _bin, ...check } = this.preflight();
    return check;
  }

  async launch(plan: BoxPlan, session: BoxSession): Promise<RunningBox> {
    // The daemon's answer and whether the default image is there, asked at once (~30 ms saved).
    const client = which("docker", DOCKER_PATH);
    const chosen = this.options.image;
    const kind = this.options.defaultImage ?? "box";
    const built = chosen ? undefined : imageTag(kind);
    if (built && "why" in built)
      throw new WallError(
        "isolation",
        `docker: no image given and fourwall's ${kind} image cannot be built: ${built.why}`,
        "install what it names, or pass --image NAME",
      );
    const tag = built?.tag;
    const fast = client && process.getuid?.() === 0 ? await engineQuestions(tag) : undefined;
    const [info, haveDefault] = fast
      ? [fast.info, fast.haveImage]
      : client && process.getuid?.() === 0
        ? await Promise.all([
            dockerAsync(client, INFO_ARGS, 10_000).then(parseInfo),
            tag
              ? dockerAsync(client, ["image", "inspect", "--format", "{{.Id}}", tag]).then(
                  (r) => r.status === 0,
                )
              : false,
          ])
        : [undefined, false];
    const pre = this.preflight(info);
    if (!pre.available || !pre.bin)
      throw new WallError("isolation", `docker: ${pre.detail}`, pre.fix ?? "run fourwall doctor");
    const bin = pre.bin;
    if (session.gateFiles?.length)
      throw new WallError(
        "gate",
        "docker: agent settings with fourwall's gate hook cannot be bound into an image yet",
        "use --runtime namespaces for a policy whose gate installs agent hooks",
      );
    if (plan.network.transparent)
      throw new WallError(
        "egress",
        "docker: transparent egress is not supported by this runtime yet",
        "use the proxy mode (drop egress.transparent), or --runtime namespaces",
      );
    const engine = this.engine();
    if (engine === "runc")
      process.stderr.write(
        "fourwall: docker: running under runc (FOURWALL_DOCKER_RUNTIME=runc): the box's syscalls reach the host kernel directly; gVisor (runsc) is the default for a reason\n",
      );
    const user = dockerUser(plan);
    const image = chosen ?? (haveDefault ? tag! : await ensureImage(kind, tag!, bin));
    const seccompFile = path.join(session.runDir, "docker-seccomp.json");
    writeFileSync(seccompFile, JSON.stringify(dockerSeccomp(engine)), { mode: 0o600 });
    // placed while the socket directory is still fourwall's own
    const bridgeInNetDir = placeBridge(session);
    // The proxy socket's directory: only the box's uid may enter it.
    chownSync(session.netDir, user.uid, user.gid);
    const name = `fourwall-${plan.id}`;
    // Approval gate: the daemon binds from the host's mount namespace, so the copy-on-write layer
    // is mounted there (root: the docker runtime is root only) and the container gets the layer.
    const layer = session.overlay ? mountGateLayer(session, user) : undefined;
    const through: { dir: string; merged: string }[] = [];
    // never left mounted once the container is gone: the run dir is removed recursively after
    const unmount = () => {
      for (const t of through) unmountGateLayer(t.merged);
      if (layer) unmountGateLayer(layer);
    };
    let args: string[];
    try {
      if (session.through?.carrier === "host") mountThrough(session, through);
      const fs = layer ? withWorkdirSource(plan, layer) : plan.filesystem;
      args = dockerRunArgs({ ...plan, filesystem: withThroughSources(fs, through) }, session, {
        image,
        engine,
        seccompFile,
        user,
        name,
        tty: process.stdin.isTTY === true && process.stdout.isTTY === true,
        ...(bridgeInNetDir ? { bridgeInNetDir } : {}),
      });
    } catch (error) {
      unmount();
      throw ociWallError(error, "docker");
    }
    try {
      // If fourwall is SIGKILLed, the box's reaper runs this: the daemon must not keep the container.
      const clientEnv = Object.entries(dockerClientEnv())
        .map(([k, v]) => `${k}=${shellQuote(v)}`)
        .join(" ");
      onKill(session.runDir, `${clientEnv} ${shellQuote(bin)} rm -f ${shellQuote(name)}`, "first");
      const launch = dockerLaunchSpec(plan, {
        bin,
        args: this.options.transformArgs ? this.options.transformArgs(args) : args,
        name,
        clientEnv: dockerClientEnv(),
        // the docker client starts under the box's own session and terminal, like every launcher
        prefix: terminalPrefix(session),
      });
      // before the gate reads the layer and writes the workdir
      return await launchBox(launch, layer || through.length > 0 ? { afterExit: unmount } : {});
    } catch (error) {
      // a write-through overlay's upper is the real directory: never left mounted in the run dir,
      // which the supervisor then removes recursively
      unmount();
      throw error;
    }
  }
}

/**
 * How the docker runtime launches a `docker run` (pure): the client in the foreground, running
 * once spawned (the client itself waits for the container), signals through `docker kill
 * --signal`, and `docker rm -f` if the client died without its container. The box's environment
 * rides in the client's own environment, named in argv by -e NAME only.
 */
export function dockerLaunchSpec(
  plan: BoxPlan,
  run: { bin: string; args: string[]; name: string; clientEnv: Record<string, string>; prefix?: string[] },
): LaunchSpec {
  return {
    builder: "docker",
    argv: [...(run.prefix ?? []), run.bin, ...run.args],
    env: { ...plan.env, ...run.clientEnv },
    stdio: ["inherit", "inherit", "inherit"],
    extraFds: [],
    detached: false,
    readiness: { kind: "spawned" },
    stop: {
      kind: "command",
      argv: [run.bin, "kill", "--signal", SIGNAL, run.name],
      env: run.clientEnv,
      bare: false,
    },
    forwardTerminalSignals: [],
    exitFrom: "process",
    cleanupIfKilled: { argv: [run.bin, "rm", "-f", run.name], env: run.clientEnv },
    failure: () => ({
      wall: "isolation",
      message: "the docker client could not start the box (its message is above)",
      fix: "run `fourwall doctor`",
    }),
  };
}
