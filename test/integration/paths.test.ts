/**
 * Every path fourwall handles is data, never a pattern or code. A workdir and its siblings are
 * named with everything sh and globs read as syntax (? * [ ] { } $ ' " \ ; spaces, a newline, a
 * leading -); after `fourwall run` (both launch modes) the host tree is exactly what it was, but for
 * what the box wrote in its workdir: no sibling's .envrc or .mcp.json is gone, nothing crashed. A
 * readOnly glob protects every file it matches and deletes none. Against the reaper as it was
 * (`rm -f -- $files` with globbing on), the same check sees the sibling's files deleted.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { REAPER_SCRIPT, standPlaceholders, startReaper } from "../../src/box/reaper.js";
import { FOURWALL, MODES, makeFixture, ROOT, runInBox, USER_UID, userArgs, waitFor } from "../helpers/box.js";

/** Workdir names (, : and \ also matter to the gate layer's overlayfs options, which escape them). */
const WORKDIRS = ["proj?", "proj*", "p[rX]j", "-rf {a,b} $HOME 'q' \"d\" \\ ;x y\nz:", "*"];
/** Siblings that each workdir name, read as a glob, would match. */
const SIBLINGS = ["projX", "proj1", "projXY", "prj", "pXj", "p[rX]j2", "{a,b}", "-rf", "x y"];

/** path → what it is (type, mode, content hash or link), for the whole tree (but fourwall's own cache in HOME). */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string) => {
    // fourwall's own state in HOME (the policy cache, the workdir locks): not the user's files
    if (p.endsWith("/.cache/fourwall") || p.endsWith("/.local/state/fourwall")) return;
    const st = lstatSync(p);
    let what = `${st.mode.toString(8)} ${st.uid}`;
    if (st.isSymbolicLink()) what += ` -> ${readlinkSync(p)}`;
    else if (st.isFile()) what += ` ${createHash("sha256").update(readFileSync(p)).digest("hex")}`;
    out.set(p, what);
    if (st.isDirectory()) for (const name of readdirSync(p)) walk(path.join(p, name));
  };
  walk(root);
  return out;
}

/** What changed between two snapshots, as lines. */
function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const lines: string[] = [];
  for (const [p, what] of before) {
    if (!after.has(p)) lines.push(`gone: ${JSON.stringify(p)}`);
    else if (after.get(p) !== what) lines.push(`changed: ${JSON.stringify(p)}`);
  }
  for (const p of after.keys())
    if (!before.has(p) && !/\/\.(cache|local(\/state)?)$/.test(p)) lines.push(`new: ${JSON.stringify(p)}`);
  return lines.sort();
}

/** A project as a user has it: persistence files with content that must survive. */
function plantProject(dir: string): void {
  mkdirSync(path.join(dir, ".vscode"), { recursive: true });
  mkdirSync(path.join(dir, ".claude"), { recursive: true });
  writeFileSync(path.join(dir, ".envrc"), "export REAL=1\n");
  writeFileSync(path.join(dir, ".mcp.json"), '{"mcpServers":{}}\n');
  writeFileSync(path.join(dir, ".claude", "settings.json"), "{}\n");
  writeFileSync(path.join(dir, ".vscode", "tasks.json"), "{}\n");
  writeFileSync(path.join(dir, "a.txt"), "a\n");
  spawnSync("git", ["init", "-q", dir]);
}

const chownAll = (mode: string, p: string) => {
  if (mode === "user") spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, p]);
};

for (const mode of MODES)
  describe(`paths are data, never patterns (${mode})`, () => {
    it("a workdir named with shell and glob syntax: no host file outside what the box changed is touched", async () => {
      const fx = makeFixture(mode);
      const parent = path.join(fx.home, "projects");
      for (const name of SIBLINGS) plantProject(path.join(parent, name));
      for (const name of WORKDIRS) {
        mkdirSync(path.join(parent, name), { recursive: true });
        spawnSync("git", ["init", "-q", path.join(parent, name)]);
      }
      chownAll(mode, fx.home);
      for (const name of WORKDIRS) {
        const workdir = path.join(parent, name);
        const before = snapshot(fx.home);
        const r = await runInBox(fx, ["/bin/sh", "-c", 'echo made > made.txt; echo "$PWD"'], {
          flags: ["-w", workdir],
          cwd: workdir,
          timeoutMs: 30_000,
        });
        assert.equal(r.code, 0, `${JSON.stringify(name)}: ${r.stderr}`);
        assert.equal(r.stdout, `${workdir}\n`, "the box's cwd is the workdir, byte for byte");
        const made = path.join(workdir, "made.txt");
        assert.deepEqual(
          changes(before, snapshot(fx.home)),
          [`new: ${JSON.stringify(made)}`],
          JSON.stringify(name),
        );
      }
    });

    it("readOnly: [dir/*.txt] protects every matching file and deletes none", async () => {
      const fx = makeFixture(mode);
      const dir = path.join(fx.workdir, "dir");
      mkdirSync(dir);
      writeFileSync(path.join(dir, "a.txt"), "a\n");
      writeFileSync(path.join(dir, "b.txt"), "b\n");
      writeFileSync(path.join(fx.workdir, "top.txt"), "top\n");
      const policy = path.join(fx.base, "policy.yaml");
      writeFileSync(policy, 'filesystem:\n  readOnly: ["dir/*.txt"]\n');
      chownAll(mode, fx.home);
      const before = snapshot(fx.home);
      const r = await runInBox(
        fx,
        [
          "/bin/sh",
          "-c",
          "for f in dir/a.txt dir/b.txt; do echo x > $f 2>/dev/null && echo WROTE $f; done; echo new > dir/c.txt && echo made-c; ls -a dir",
        ],
        { flags: ["-p", policy], timeoutMs: 30_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /WROTE/, "the matches are read-only");
      assert.match(r.stdout, /made-c/, "the rest of dir stays writable");
      assert.doesNotMatch(r.stdout, /\*\.txt/, "no placeholder named *.txt");
      assert.deepEqual(changes(before, snapshot(fx.home)), [
        `new: ${JSON.stringify(path.join(dir, "c.txt"))}`,
      ]);
    });
  });

for (const mode of MODES)
  it(`a box name is never a path: exec, down and ls leave a foreign directory with a stale info.json alone (${mode})`, () => {
    const fx = makeFixture(mode);
    const boxes = mode === "root" ? "/run/fourwall/boxes" : path.join(fx.home, ".local/state/fourwall/boxes");
    const victim = path.join(boxes, "..", `victim-${process.pid}`);
    mkdirSync(boxes, { recursive: true, mode: 0o700 });
    mkdirSync(victim, { recursive: true });
    // stale: its supervisor and box are long gone (a record the old code would "forget" with rm -rf)
    writeFileSync(
      path.join(victim, "info.json"),
      JSON.stringify({ name: "x", supervisorPid: 2 ** 22 + 1, pid: 2 ** 22 + 1 }),
    );
    writeFileSync(path.join(victim, "keep"), "foreign\n");
    chownAll(mode, fx.home);
    try {
      const shim = path.join(ROOT, "bin", "fourwall");
      for (const args of [
        ["down", `../victim-${process.pid}`],
        ["exec", `../victim-${process.pid}`, "--", "true"],
        ["exec", `../../${path.basename(path.dirname(boxes))}/victim-${process.pid}`, "--", "true"],
        ["down", ".."],
        ["down", "--", "-x"],
      ]) {
        const [program, ...rest] = [...userArgs(mode), shim, ...args];
        const r = spawnSync(program!, rest, {
          cwd: fx.workdir,
          env: fx.env,
          encoding: "utf8",
          timeout: 20_000,
        });
        assert.equal(r.status, 125, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /bad box name/, args.join(" "));
        assert.equal(readFileSync(path.join(victim, "keep"), "utf8"), "foreign\n", args.join(" "));
      }
    } finally {
      rmSync(victim, { recursive: true, force: true });
    }
  });

for (const mode of MODES)
  it(`a TMPDIR named with sh syntax stays data in the on-kill script: a SIGKILLed run injects nothing (${mode})`, async () => {
    const fx = makeFixture(mode);
    const tmp = path.join(fx.base, "t'; touch PWNED; : '");
    mkdirSync(tmp);
    chownAll(mode, tmp);
    const [program, ...args] = [
      ...userArgs(mode),
      ...[process.execPath, FOURWALL, "run", "--", "sh", "-c", "echo up; sleep 30"],
    ];
    const child = spawn(program!, args, {
      cwd: fx.workdir,
      env: { ...fx.env, TMPDIR: tmp },
      stdio: ["ignore", "pipe", "ignore"],
    });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    try {
      assert.ok(await waitFor(() => out.includes("up"), 20_000), "the box started");
    } finally {
      child.kill("SIGKILL"); // setpriv exec'd fourwall: the same process
    }
    // the reaper runs the on-kill script: the gate's empty layer goes, and nothing else runs
    assert.ok(await waitFor(() => readdirSync(tmp).length === 0, 10_000), `left: ${readdirSync(tmp)}`);
    assert.equal(existsSync(path.join(fx.workdir, "PWNED")), false, "a command from TMPDIR's name ran");
  });

describe("the reaper removes only its own placeholders", () => {
  const OLD_REAPER = `
lock=$1 list=$2 run_dir=$3; shift 3
exec 9>>"$lock"
flock -s 9 || exit 1
echo locked
IFS= read -r line
if flock -x -n 9; then
  files=
  while IFS=' ' read -r kind p; do [ -f "$p" ] && files="$p
$files"; done < "$list"
  IFS='
'
  [ -n "$files" ] && rm -f -- $files
  : > "$list"
fi
`;

  /** Stands the placeholders of a workdir named proj? and lets the reaper (this one) clean up. */
  async function reap(script?: string): Promise<string[]> {
    const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-reap-"));
    try {
      const workdir = path.join(base, "proj?");
      const sibling = path.join(base, "projX");
      mkdirSync(workdir);
      plantProject(sibling);
      const before = snapshot(base);
      const runDir = mkdtempSync(path.join(os.tmpdir(), "fourwall-reap-run-"));
      const { reaper, list } = await startReaper(workdir, runDir, [], script);
      standPlaceholders(
        [
          { path: path.join(workdir, ".envrc"), kind: "file", content: "" },
          { path: path.join(workdir, ".mcp.json"), kind: "file", content: "{}\n" },
          { path: path.join(workdir, ".vscode"), kind: "dir", content: "" },
        ],
        list,
      );
      await reaper.release();
      spawnSync("rm", ["-rf", "--", runDir]);
      return changes(before, snapshot(base));
    } finally {
      spawnSync("rm", ["-rf", "--", base]);
    }
  }

  /** Two boxes on one workdir: is the workdir's lock file there while the second runs, and after both? */
  async function lockFileLife(script?: string): Promise<{ whileOther: boolean; after: string[] }> {
    const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-reap-"));
    try {
      const workdir = path.join(base, "w");
      mkdirSync(workdir);
      const [runA, runB] = [1, 2].map(() => mkdtempSync(path.join(os.tmpdir(), "fourwall-reap-run-")));
      const a = await startReaper(workdir, runA!, [], script);
      const b = await startReaper(workdir, runB!, [], script);
      standPlaceholders([{ path: path.join(workdir, ".envrc"), kind: "file", content: "" }], a.list);
      const lock = a.list.replace(/\.placeholders$/, ".lock");
      await a.reaper.release();
      const whileOther = existsSync(lock) && existsSync(path.join(workdir, ".envrc"));
      await b.reaper.release();
      spawnSync("rm", ["-rf", "--", runA!, runB!]);
      return { whileOther, after: [lock, a.list, path.join(workdir, ".envrc")].filter((p) => existsSync(p)) };
    } finally {
      spawnSync("rm", ["-rf", "--", base]);
    }
  }

  it("the last reaper of a workdir removes its lock file and list (kept while another box is on it), native and script alike; the old one is caught leaving them", async () => {
    assert.deepEqual(await lockFileLife(), { whileOther: true, after: [] });
    assert.deepEqual(
      await lockFileLife(REAPER_SCRIPT),
      { whileOther: true, after: [] },
      "the shell fallback",
    );
    const old = await lockFileLife(OLD_REAPER);
    assert.ok(old.after.length > 0, "the broken reaper leaves the lock file behind");
  });

  it("the reaper leaves the sibling projX alone; the old one (unquoted, globbing) is caught deleting its files", async () => {
    assert.deepEqual(await reap(), []);
    const old = await reap(OLD_REAPER);
    assert.ok(
      old.some((line) => line.includes("projX/.envrc")) &&
        old.some((line) => line.includes("projX/.mcp.json")),
      `the broken reaper deletes the sibling's files: ${old.join(", ")}`,
    );
  });
});
