import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { buildSync } from "esbuild";
import { shq, Tmux } from "./tmux.js";

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const FOURWALL = path.join(ROOT, "bin", "fourwall.js");
export const WEAK_BOX = path.join(ROOT, "test", "helpers", "weak-box.ts");

let weakBundle: string | undefined;
/**
 * weak-box.ts bundled once per test process, as scripts/build.mjs bundles the CLI: a broken box then
 * starts as fast as `fourwall run` instead of transpiling src/ through tsx on every launch (seconds
 * per box on a loaded machine). It lives under the repository, where node_modules resolves.
 */
export function weakBoxBundle(): string {
  if (weakBundle) return weakBundle;
  const dir = path.join(ROOT, "test-output");
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const out = path.join(dir, `weak-box-${process.pid}.mjs`);
  buildSync({
    entryPoints: [WEAK_BOX],
    outfile: out,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    packages: "external",
    logLevel: "warning",
  });
  chmodSync(out, 0o644);
  process.on("exit", () => rmSync(out, { force: true }));
  weakBundle = out;
  return out;
}

/** The two ways fourwall is launched: as root (CI, servers) and as an ordinary user (laptops). */
export type Mode = "root" | "user";
export const MODES: Mode[] = ["root", "user"];
export const USER_UID = 65534;

export const SECRET = "FOURWALL-TEST-SECRET-7f3a";

export interface Fixture {
  mode: Mode;
  base: string;
  home: string;
  workdir: string;
  /** A file outside the workdir (in HOME) that no box may change. */
  outside: string;
  env: Record<string, string>;
}

const made: string[] = [];
/** The base dirs of the fixtures this process made, each with its trailing slash (its boxes' host paths start so). */
export const fixtureBases = (): string[] => made.map((dir) => `${dir}/`);
// Leave nothing behind: every fixture goes when the test process ends, with the change-sets its
// boxes' refused changes were kept as (root's store is machine-wide; a user's is in the fixture's HOME).
process.on("exit", () => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
  dropKeptOf(made);
});

/** Removes root's kept change-sets (/run/fourwall/layers/kept) whose workdir is under one of `bases`. */
function dropKeptOf(bases: string[]): void {
  const store = "/run/fourwall/layers/kept";
  if (process.getuid?.() !== 0 || bases.length === 0) return;
  let ids: string[] = [];
  try {
    ids = readdirSync(store);
  } catch {
    return;
  }
  for (const id of ids) {
    try {
      const { workdir } = JSON.parse(readFileSync(path.join(store, id, "meta.json"), "utf8"));
      if (bases.some((b) => workdir.startsWith(`${b}/`)))
        spawnSync("sh", [
          "-c",
          'chmod -R u+rwx -- "$1"; rm -rf --one-file-system -- "$1"',
          "sh",
          path.join(store, id),
        ]);
    } catch {}
  }
}

/** A fake user: HOME with planted secrets, a git workdir, owned by the mode's uid. */
export function makeFixture(mode: Mode): Fixture {
  const base = mkdtempSync(path.join(os.tmpdir(), `fourwall-it-${mode}-`));
  made.push(base);
  chmodSync(base, 0o755);
  const home = path.join(base, "home");
  const workdir = path.join(home, "proj");
  mkdirSync(path.join(home, ".ssh"), { recursive: true });
  mkdirSync(path.join(home, ".aws"), { recursive: true });
  mkdirSync(path.join(home, ".config", "gcloud"), { recursive: true });
  mkdirSync(workdir, { recursive: true });
  writeFileSync(path.join(home, ".ssh", "id_ed25519"), `${SECRET} ssh\n`, { mode: 0o600 });
  writeFileSync(path.join(home, ".aws", "credentials"), `${SECRET} aws\n`);
  writeFileSync(path.join(home, ".config", "gcloud", "credentials.db"), `${SECRET} gcloud\n`);
  writeFileSync(path.join(home, ".netrc"), `${SECRET} netrc\n`);
  writeFileSync(path.join(home, ".bashrc"), "# the user's bashrc\n");
  const outside = path.join(home, "notes.txt");
  writeFileSync(outside, "outside the workdir\n");
  writeFileSync(path.join(workdir, "README.md"), "# project\n");
  writeFileSync(path.join(workdir, ".env"), `API_KEY=${SECRET}\n`);
  spawnSync("git", ["init", "-q", workdir]);
  if (mode === "user") spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, home]);
  const env: Record<string, string> = {
    PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
    HOME: home,
    LANG: "C.UTF-8",
    // planted secrets that must not pass into the box
    AWS_SECRET_ACCESS_KEY: SECRET,
    GITHUB_TOKEN: SECRET,
    SSH_AUTH_SOCK: "/tmp/ssh-agent.sock",
  };
  return { mode, base, home, workdir, outside, env };
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The prefix that launches a command as the mode's user (nothing as root, setpriv for uid 65534). */
export const userArgs = (mode: Mode, uid = USER_UID): string[] =>
  mode === "root" ? [] : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"];

/** `argv`, launched as the mode's user. */
export const asMode = (mode: Mode, argv: string[]): string[] => [...userArgs(mode), ...argv];

/** `fourwall ARGS...` from the bundle, launched as the mode's user. */
export const fourwallArgv = (mode: Mode, args: string[]): string[] =>
  asMode(mode, [process.execPath, FOURWALL, ...args]);

/**
 * `fourwall run FLAGS -- sh -c SCRIPT` in the background: its stdout so far, and its exit code when
 * it closes. With `weaken`, the deliberately broken box instead (FLAGS are weak-box.ts's then).
 */
export function startInBox(
  fx: Fixture,
  flags: string[],
  script: string,
  options: { weaken?: string[] } = {},
) {
  const entry = options.weaken
    ? [process.execPath, weakBoxBundle(), "--weaken", options.weaken.join(","), ...flags]
    : [process.execPath, FOURWALL, "run", ...flags];
  const [program, ...args] = asMode(fx.mode, [...entry, "--", "sh", "-c", script]);
  const child = spawn(program!, args, {
    cwd: fx.workdir,
    env: { ...fx.env, ...(options.weaken ? { NODE_PATH: path.join(ROOT, "node_modules") } : {}) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const closed = new Promise<number | null>((resolve) => child.on("close", resolve));
  return { child, out: () => out, closed };
}

/** The box's command gets fourwall's SIGTERM (it traps it and exits 42), and fourwall returns its status. */
export async function checkSigtermForwarded(fx: Fixture, flags: string[], bootMs: number): Promise<void> {
  const box = startInBox(fx, flags, "trap 'echo got-term; exit 42' TERM; echo ready; sleep 60 & wait");
  try {
    assert.ok(await waitFor(() => box.out().includes("ready"), bootMs), "box started");
    box.child.kill("SIGTERM");
    assert.equal(await box.closed, 42);
    assert.match(box.out(), /got-term/);
  } finally {
    box.child.kill("SIGKILL");
  }
}

/** The events of an audit log (JSON Lines). */
// biome-ignore lint/suspicious/noExplicitAny: free-form JSON events, checked field by field by the tests
export const readAudit = (file: string): any[] =>
  readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));

/** Polls `pred` every 50 ms for up to `ms`; its last answer. */
export async function waitFor(pred: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50)))
    if (pred()) return true;
  return pred();
}

/** The supervisors' run dirs in the temp dir right now (fourwall-<box id>-XXXXXX). */
export const runDirs = (): string[] =>
  readdirSync(os.tmpdir()).filter((n) => /^fourwall-[0-9a-f]{8}-/.test(n));

/** Runs `fourwall run` (or, with `weaken`, the deliberately broken box) the way a user would. */
export function runInBox(
  fx: Fixture,
  command: string[],
  options: {
    weaken?: string[];
    /** The broken box's runtime (weak-box.ts --runtime). */
    weakRuntime?: "docker" | "gvisor";
    /** More weak-box.ts options (e.g. --image TAG). */
    weakFlags?: string[];
    flags?: string[];
    timeoutMs?: number;
    cwd?: string;
    env?: Record<string, string>;
  } = {},
): Promise<Result> {
  const entry = options.weaken
    ? [
        ...[process.execPath, weakBoxBundle(), "--weaken", options.weaken.join(",")],
        ...(options.weakRuntime ? ["--runtime", options.weakRuntime] : []),
        ...(options.weakFlags ?? []),
        "--",
      ]
    : [process.execPath, FOURWALL, "run", ...(options.flags ?? []), "--"];
  const [program, ...args] = asMode(fx.mode, [...entry, ...command]);
  return new Promise((resolve) => {
    const child = spawn(program!, args, {
      cwd: options.cwd ?? fx.workdir,
      env: { ...fx.env, ...options.env, NODE_PATH: path.join(ROOT, "node_modules") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 20_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs a shell script in the box. */
export const sh = (fx: Fixture, script: string, options: Parameters<typeof runInBox>[2] = {}) =>
  runInBox(fx, ["/bin/sh", "-c", script], options);

export const chownToMode = (fx: Fixture, p: string) => {
  if (fx.mode === "user") chownSync(p, USER_UID, USER_UID);
};

/**
 * `fourwall run FLAGS -- sh -c SCRIPT` (or, with `weaken`, the deliberately broken box) in a tmux
 * pane (a real terminal), as the mode's user, with only the fixture's environment; the pane prints
 * BOX-EXIT=N when the box ends.
 */
export function boxInTmux(fx: Fixture, script: string, o: { flags?: string[]; weaken?: string } = {}): Tmux {
  const env = { ...fx.env, TERM: "xterm-256color", NODE_PATH: path.join(ROOT, "node_modules"), PS1: "$ " };
  const envLine = [
    "env",
    "-i",
    ...Object.entries(env).map(([k, v]) => `${k}=${shq(v)}`),
    ...userArgs(fx.mode),
  ];
  const entry = o.weaken
    ? [process.execPath, weakBoxBundle(), "--weaken", o.weaken, ...(o.flags ?? [])]
    : [process.execPath, FOURWALL, "run", ...(o.flags ?? [])];
  const tmux = new Tmux();
  tmux.start(
    `${[...envLine, ...entry, "--", "sh", "-c", shq(script)].join(" ")}; echo "BOX-EXIT=$?"; sleep 120`,
    fx.workdir,
  );
  return tmux;
}

/** fourwall's layers directory for the mode (root: /run/fourwall; the user's own state dir). */
export const layersOf = (fx: Fixture) =>
  fx.mode === "root" ? "/run/fourwall/layers" : path.join(fx.home, ".local", "state", "fourwall", "layers");

/** The entries of `dir`, or none when it cannot be read. */
export const listDir = (dir: string): string[] => {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
};

const weakEnters = new Map<string, string>();

/**
 * fourwall-enter compiled with one of its test-only weakenings (-D FOURWALL_UNSAFE_…): the broken
 * `exec` a test runs to see its check fail. Built once per weakening, removed when the test exits.
 */
export function weakEnter(weakening: "FOURWALL_UNSAFE_NO_PAUSE" | "FOURWALL_UNSAFE_SHARED_TERMINAL"): string {
  const built = weakEnters.get(weakening);
  if (built) return built;
  const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-weak-enter-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755); // the box's uid runs it (root mode)
  const bin = path.join(dir, "fourwall-enter");
  const cc = spawnSync(
    "gcc",
    ["-O2", `-D${weakening}`, "-o", bin, path.join(ROOT, "native", "fourwall-enter.c")],
    {
      encoding: "utf8",
    },
  );
  assert.equal(cc.status, 0, cc.stderr);
  weakEnters.set(weakening, bin);
  return bin;
}
