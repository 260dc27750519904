/**
 * fourwall's own Docker images, made from the host's files (no registry is needed): a root
 * filesystem of a few host programs, the shared libraries ldd finds for them, busybox-static for
 * the shell and its applets, streamed by tar into `docker import`.
 *   - "box": busybox + socat (the bridge), the default image of `fourwall run -r docker`.
 *   - "tools": also python3 and its standard library, curl, git (smart HTTP), node and npm,
 *     openssl, ip, getent: what `fourwall prove` needs in the box, and what an agent's real
 *     clients are tested with.
 * The tag is a hash of what goes in (the programs' size and mtime, the package database's mtime
 * for the libraries, this builder's version), so an image is built once per daemon and again
 * only when the host's programs change.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";

export type ImageKind = "box" | "tools";

/** Bump when the image's layout changes: old tags are then rebuilt. */
const BUILDER_VERSION = "2";
const BUSYBOX = "/bin/busybox";
/** Directories the image gets empty (mount points, a writable /tmp comes from the plan). */
const EMPTY_DIRS = ["tmp", "proc", "dev", "sys", "run", "home", "root"];
/** Parts of python's standard library no agent tool needs (tests, GUI, installers): ~20 MiB less. */
const PYTHON_SKIP = new Set([
  "test",
  "idlelib",
  "tkinter",
  "turtledemo",
  "ensurepip",
  "lib2to3",
  "pydoc_data",
]);

const firstExisting = (...paths: string[]) => paths.find((p) => existsSync(p));

export interface Contents {
  /** Programs whose ldd closure goes in. */
  programs: string[];
  /** Whole directory trees (their .so files get their closure too). */
  trees: { dir: string; skip?: Set<string> }[];
  /** Extra symlinks in the image (e.g. /usr/bin/npm). */
  links: string[];
}

function contents(kind: ImageKind): Contents | string {
  const socat = firstExisting("/usr/bin/socat", "/bin/socat");
  if (!existsSync(BUSYBOX) || !socat)
    return "it needs /bin/busybox and socat (apt-get install busybox-static socat)";
  if (kind === "box") return { programs: [socat], trees: [], links: [] };
  const python = firstExisting("/usr/bin/python3");
  const tools = ["/usr/bin/curl", "/usr/bin/git", "/usr/lib/git-core/git-remote-http", "/usr/bin/openssl"];
  const missing = [python ?? "/usr/bin/python3", ...tools].filter((p) => !existsSync(p));
  if (missing.length > 0) return `it needs ${missing.join(", ")} (apt-get install python3 curl git openssl)`;
  const node = realpathSync(process.execPath);
  const npm = path.resolve(path.dirname(node), "../lib/node_modules/npm");
  const stdlib = path.join("/usr/lib", path.basename(realpathSync(python!)));
  return {
    programs: [
      socat,
      python!,
      node,
      ...tools,
      ...["/usr/bin/ip", "/usr/bin/getent"].filter((p) => existsSync(p)),
    ],
    trees: [{ dir: stdlib, skip: PYTHON_SKIP }, ...(existsSync(npm) ? [{ dir: npm }] : [])],
    links: existsSync(npm) ? ["/usr/bin/npm", "/usr/local/bin/npm"].filter((p) => existsSync(p)) : [],
  };
}

/** The image's tag, or why it cannot be built here. Cheap: a few stat calls, no ldd. */
export function imageTag(kind: ImageKind): { tag: string } | { why: string } {
  const c = contents(kind);
  if (typeof c === "string") return { why: c };
  const h = createHash("sha256").update(`${BUILDER_VERSION}:${kind}\n`);
  const inputs = [BUSYBOX, ...c.programs, ...c.trees.map((t) => t.dir), "/var/lib/dpkg/status"];
  for (const p of inputs.filter((q) => existsSync(q))) {
    const s = statSync(p);
    h.update(`${p}:${s.size}:${s.mtimeMs}\n`);
  }
  return { tag: `fourwall-${kind}:${h.digest("hex").slice(0, 12)}` };
}

/** ldd's list of a binary's libraries (absolute paths); nothing for a script or a static binary. */
function libraries(file: string): string[] {
  const r = spawnSync("ldd", [file], { encoding: "utf8", timeout: 5000 });
  return [...(r.stdout ?? "").matchAll(/(\/\S+) \(0x/g)].map((m) => m[1]!);
}

/** Every regular file and symlink under `dir`, minus the skipped top-level names. */
function walk(dir: string, skip?: Set<string>): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (skip?.has(entry.name)) continue;
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else out.push(p);
  }
  return out;
}

/** Every path under `dir`, directories included. */
function walkAll(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? [p, ...walkAll(p)] : [p];
  });
}

/**
 * The host paths of the image, as tar members relative to /. Each path is taken with its
 * directories resolved (/lib is a symlink to usr/lib on merged-/usr hosts: a member under a
 * symlinked directory would not unpack), and every symlink is followed to its target, which goes in too.
 */
export function hostMembers(c: Contents): string[] {
  const members = new Set<string>();
  const add = (p: string, depth = 0): void => {
    if (depth > 16 || !existsSync(p)) return;
    const dir = realpathSync(path.dirname(p));
    const at = path.join(dir, path.basename(p));
    if (members.has(at)) return;
    members.add(at);
    for (let d = dir; d !== "/" && !members.has(d); d = path.dirname(d)) members.add(d);
    if (lstatSync(at).isSymbolicLink()) add(path.resolve(dir, readlinkSync(at)), depth + 1);
  };
  const elves = [...c.programs];
  for (const t of c.trees) {
    for (const f of walk(t.dir, t.skip)) {
      add(f);
      if (f.endsWith(".so") || /\.so\./.test(f)) elves.push(f);
    }
  }
  for (const p of [...c.programs, ...c.links]) add(p);
  for (const lib of new Set(elves.flatMap(libraries))) add(lib);
  // the merged-/usr links themselves (/bin -> usr/bin, /lib64 -> usr/lib64, ...)
  for (const top of ["/bin", "/sbin", "/lib", "/lib64"]) {
    if (existsSync(top) && lstatSync(top).isSymbolicLink()) members.add(top);
  }
  return [...members].sort().map((p) => p.slice(1));
}

/** What fourwall itself adds: /etc/passwd and group, empty mount points, busybox and its applets. */
function stage(dir: string, taken: Set<string>): void {
  chmodSync(dir, 0o755); // becomes the image's /: the box's unprivileged uid must traverse it
  for (const d of [...EMPTY_DIRS, "etc", "usr/bin"]) mkdirSync(path.join(dir, d), { recursive: true });
  chmodSync(path.join(dir, "tmp"), 0o1777);
  writeFileSync(path.join(dir, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n");
  writeFileSync(path.join(dir, "etc/group"), "root:x:0:\nnogroup:x:65534:\n");
  // busybox lives in /usr/bin (the image's /bin may be a link to it); real programs win over applets
  const bin = taken.has("bin") ? "usr/bin" : "bin";
  mkdirSync(path.join(dir, bin), { recursive: true });
  spawnSync("cp", [BUSYBOX, path.join(dir, bin, "busybox")]);
  const applets = (spawnSync(BUSYBOX, ["--list"], { encoding: "utf8" }).stdout ?? "").split("\n");
  for (const applet of applets.filter((a) => a && a !== "busybox")) {
    if (!taken.has(`usr/bin/${applet}`) && !taken.has(`bin/${applet}`))
      symlinkSync("busybox", path.join(dir, bin, applet));
  }
}

/** Runs `docker import` of a tar stream made from `stageDir` and the host's `members`. */
function importStream(
  docker: string,
  env: NodeJS.ProcessEnv,
  stageDir: string,
  members: string[],
  tag: string,
) {
  return new Promise<void>((resolve, reject) => {
    const tar = spawn(
      "tar",
      ["-cf", "-", "-C", stageDir, ".", "--no-recursion", "-C", "/", "--null", "-T", "-"],
      {
        stdio: ["pipe", "pipe", "pipe"],
      },
    );
    const imp = spawn(docker, ["import", "--message", `fourwall ${tag}`, "-", tag], {
      stdio: [tar.stdout, "ignore", "pipe"],
      env,
    });
    let errors = "";
    tar.stderr.on("data", (d) => (errors += d));
    imp.stderr!.on("data", (d) => (errors += d));
    tar.stdin.end(members.map((m) => `${m}\0`).join(""));
    let tarCode: number | null = null;
    tar.on("close", (code) => (tarCode = code));
    imp.on("error", reject);
    imp.on("close", (code) => {
      // tar exits 1 when a file changed while it was read: harmless for an import of a snapshot
      if (code === 0 && (tarCode === 0 || tarCode === 1 || tarCode === null)) resolve();
      else reject(new Error(`docker import exited ${code}, tar ${tarCode}: ${errors.trim().slice(-500)}`));
    });
  });
}

/**
 * Builds the image under `tag` (the caller checked it is missing). The staging dir is small
 * (passwd, applet links) and removed; the host's files are streamed, never copied to disk.
 */
export async function buildImage(
  kind: ImageKind,
  tag: string,
  docker: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const c = contents(kind);
  if (typeof c === "string") throw new Error(c);
  const members = hostMembers(c);
  const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-image-"));
  try {
    stage(dir, new Set(members));
    // docker refuses an archive with a path twice: the staged directories (usr/bin, etc) win
    const staged = new Set(walkAll(dir).map((p) => path.relative(dir, p)));
    await importStream(
      docker,
      env,
      dir,
      members.filter((m) => !staged.has(m)),
      tag,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
