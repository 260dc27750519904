/**
 * Where everything of one prove run lives: a throwaway user (HOME with planted secrets, a git
 * workdir with a .env), the probe program and its config, and the paths each write probe attacks.
 * `makeLayout` is pure (the same paths for the probe and for the host's checks); `plantFakeUser`
 * creates the files.
 */
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { deflateSync } from "node:zlib";

/** What a write probe tries: files to create and files to append to (relative ones from the workdir). */
export interface WriteAttempt {
  create: string[];
  append: string[];
  /** Make the missing parent directories first (only ever inside the fake home or the workdir). */
  mkdirs?: boolean;
}

/** What the host checks after the run, per probe: nothing of this may have changed. */
export interface HostCheck {
  mustNotExist: string[];
  mustStay: { path: string; content: string }[];
}

export interface ProveLayout {
  token: string;
  base: string;
  home: string;
  workdir: string;
  /** In the workdir, so every wrapper that shares the workdir sees it: probe, config, CA, results. */
  proveDir: string;
  probe: string;
  config: string;
  results: string;
  ca: string;
  /** Secret files in the fake home (each holds the token). */
  secretFiles: string[];
  dotenv: string;
  bashrc: string;
  gitConfig: string;
  /** The file the probe must be able to create in the workdir. */
  workdirOk: string;
  writes: Record<string, WriteAttempt>;
  symlinks: { link: string; to: string; mode: "read" | "append" }[];
  hostChecks: Record<string, HostCheck>;
  /** Outside the fake user: prove removes them at exit if a leaky wrapper made them. */
  systemFiles: string[];
  /** A file that existed before the run: the gate probe deletes it; it must survive a "no". */
  precious: string;
  /** Outside the workdir: every approval request the gate sends to prove's (denying) approver. */
  approverLog: string;
  /** A new file the gate probe makes setuid/setgid in the box: it must land on the host without. */
  setuidFile: string;
  /** The workdir's git history: the gate's history probe moves the branch back to `first`. */
  history: PlantedHistory;
}

/** A two-commit branch planted in the workdir's .git (real git objects, written without git). */
export interface PlantedHistory {
  /** .git/refs/heads/main and what it must still say afterwards. */
  ref: { path: string; content: string };
  /** .git/logs/HEAD and .git/logs/refs/heads/main, and what they must still say. */
  reflogs: { path: string; content: string }[];
  /** The first commit: where the probe moves the branch back to. */
  first: string;
  /** Loose objects to write: path → deflated bytes. */
  objects: { path: string; bytes: Buffer }[];
}

/** A path as the table shows it: ./ for the workdir, ~/ for the throwaway home (as the probe shows them). */
export function shownPath(layout: ProveLayout, p: string): string {
  if (p.startsWith(`${layout.workdir}/`)) return `./${p.slice(layout.workdir.length + 1)}`;
  if (p.startsWith(`${layout.home}/`)) return `~/${p.slice(layout.home.length + 1)}`;
  return p;
}

export const secretText = (token: string, what: string) => `FOURWALL-PROVE-SECRET ${what} ${token}\n`;
const BASHRC = "# the user's bashrc (fourwall prove)\n";
const GIT_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n";

/** What the gate probe tries to delete; it must still say this afterwards. */
export const PRECIOUS = "work from before the run: deleting it needs a human yes\n";

/** A git object: its id and its loose file's bytes. */
function gitObject(type: string, body: string): { id: string; bytes: Buffer } {
  const raw = Buffer.concat([Buffer.from(`${type} ${Buffer.byteLength(body)}\0`), Buffer.from(body)]);
  return { id: createHash("sha1").update(raw).digest("hex"), bytes: deflateSync(raw) };
}

/** main: first ← second, both with the empty tree; HEAD's and main's reflogs record both commits. */
export function plantedHistory(workdir: string): PlantedHistory {
  const who = "fourwall prove <prove@fourwall.invalid> 1700000000 +0000";
  const tree = gitObject("tree", "");
  const first = gitObject(
    "commit",
    `tree ${tree.id}\nauthor ${who}\ncommitter ${who}\n\nwork from before the run (1)\n`,
  );
  const second = gitObject(
    "commit",
    `tree ${tree.id}\nparent ${first.id}\nauthor ${who}\ncommitter ${who}\n\nwork from before the run (2)\n`,
  );
  const log = `${"0".repeat(40)} ${first.id} ${who}\tcommit (initial): work from before the run (1)\n${first.id} ${second.id} ${who}\tcommit: work from before the run (2)\n`;
  const git = (p: string) => path.join(workdir, ".git", p);
  return {
    ref: { path: git("refs/heads/main"), content: `${second.id}\n` },
    reflogs: [
      { path: git("logs/HEAD"), content: log },
      { path: git("logs/refs/heads/main"), content: log },
    ],
    first: first.id,
    objects: [tree, first, second].map((o) => ({
      path: git(`objects/${o.id.slice(0, 2)}/${o.id.slice(2)}`),
      bytes: o.bytes,
    })),
  };
}

export function makeLayout(base: string, token: string): ProveLayout {
  const home = path.join(base, "home");
  const workdir = path.join(home, "project");
  const proveDir = path.join(workdir, ".fourwall-prove");
  const mark = `fourwall-probe-${token}`;
  const h = (p: string) => path.join(home, p);
  const w = (p: string) => path.join(workdir, p);
  const bashrc = h(".bashrc");
  const gitConfig = w(".git/config");
  const systemFiles = [`/etc/${mark}`, `/usr/${mark}`, `/usr/local/bin/${mark}`];
  const writes: Record<string, WriteAttempt> = {
    "filesystem.write-ssh": { create: [h(".ssh/authorized_keys")], append: [], mkdirs: true },
    "filesystem.write-home": { create: [h(mark)], append: [bashrc] },
    "filesystem.write-etc": { create: [systemFiles[0]!], append: [] },
    "filesystem.write-usr": { create: systemFiles.slice(1), append: [] },
    "filesystem.write-outside-workdir": { create: [h(`other-project/${mark}`)], append: [] },
    "filesystem.dotdot-escape": { create: [`../${mark}-dotdot`, `../../${mark}-dotdot`], append: [] },
    "filesystem.git-hook": { create: [w(".git/hooks/pre-commit")], append: [gitConfig], mkdirs: true },
    "filesystem.persistence": {
      create: [w(".mcp.json"), w(".envrc"), w(".vscode/tasks.json")],
      append: [],
      mkdirs: true,
    },
    "filesystem.workdir-write": { create: [w(`${mark}-ok`)], append: [] },
  };
  const symlinks: ProveLayout["symlinks"] = [
    { link: w(`${mark}-link-key`), to: h(".ssh/id_ed25519"), mode: "read" },
    { link: w(`${mark}-link-rc`), to: bashrc, mode: "append" },
  ];
  const created = (id: string) => writes[id]!.create.map((p) => path.resolve(workdir, p));
  const hostChecks: Record<string, HostCheck> = {};
  for (const id of Object.keys(writes)) {
    if (id === "filesystem.workdir-write") continue; // the one write that must land: judged on its own
    hostChecks[id] = { mustNotExist: created(id), mustStay: [] };
  }
  hostChecks["filesystem.write-home"]!.mustStay.push({ path: bashrc, content: BASHRC });
  hostChecks["filesystem.git-hook"]!.mustStay.push({ path: gitConfig, content: GIT_CONFIG });
  hostChecks["filesystem.symlink-escape"] = {
    mustNotExist: [],
    mustStay: [{ path: bashrc, content: BASHRC }],
  };
  return {
    token,
    base,
    home,
    workdir,
    proveDir,
    probe: path.join(proveDir, "probe.py"),
    config: path.join(proveDir, "config.json"),
    results: path.join(proveDir, "results.jsonl"),
    ca: path.join(proveDir, "ca.pem"),
    secretFiles: [
      h(".ssh/id_ed25519"),
      h(".aws/credentials"),
      h(".config/gcloud/credentials.db"),
      h(".netrc"),
    ],
    dotenv: w(".env"),
    bashrc,
    gitConfig,
    workdirOk: created("filesystem.workdir-write")[0]!,
    precious: w("precious-notes.txt"),
    approverLog: path.join(base, "approver-requests.jsonl"),
    setuidFile: w("gate-setuid-probe"),
    history: plantedHistory(workdir),
    writes,
    symlinks,
    hostChecks,
    systemFiles,
  };
}

/**
 * Plants the throwaway user: secrets with the run's token, a bashrc, another project beside the
 * workdir, a git repository (its hooks are a persistence path), the probe program. Everything is
 * owned by the launching user, as a real user's files would be.
 */
export function plantFakeUser(layout: ProveLayout, probeSource: string): void {
  const { home, workdir, token } = layout;
  for (const dir of [".ssh", ".aws", ".config/gcloud", "other-project"])
    mkdirSync(path.join(home, dir), { recursive: true });
  for (const dir of [".git/hooks", ".git/objects", ".git/refs/heads"])
    mkdirSync(path.join(workdir, dir), { recursive: true });
  mkdirSync(layout.proveDir, { recursive: true });
  for (const file of layout.secretFiles)
    writeFileSync(file, secretText(token, path.basename(file)), { mode: 0o600 });
  writeFileSync(layout.dotenv, `API_KEY=${secretText(token, ".env")}`);
  writeFileSync(layout.bashrc, BASHRC);
  writeFileSync(path.join(workdir, ".git/HEAD"), "ref: refs/heads/main\n");
  writeFileSync(layout.gitConfig, GIT_CONFIG);
  writeFileSync(path.join(workdir, "README.md"), "# a project the agent works on\n");
  writeFileSync(layout.precious, PRECIOUS);
  for (const file of [
    ...layout.history.objects.map((o) => ({ path: o.path, content: o.bytes })),
    layout.history.ref,
    ...layout.history.reflogs,
  ]) {
    mkdirSync(path.dirname(file.path), { recursive: true });
    writeFileSync(file.path, file.content);
  }
  copyFileSync(probeSource, layout.probe);
}
