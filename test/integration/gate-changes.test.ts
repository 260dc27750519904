/**
 * Nothing lost (issue 12), in real boxes launched as root and as uid 65534:
 *   - a refused overwrite (and delete) is kept as a change-set: `run --strict-gate` exits 123 with
 *     one loud line naming it; `fourwall changes ls --json` lists it with sizes and hashes; the store
 *     is private (another user, and as root the box uid, reach nothing in it — the same check
 *     catches a store made walkable); `changes apply` refuses a host file edited since, and lands
 *     the change once the host file is back (or with --force);
 *   - an approver that answers per path (`{"approve": [...]}`) gets sizes, hashes and a bounded
 *     diff, and only its paths land; the rest are kept;
 *   - SIGKILL of fourwall: the reaper moves the layer into the store (frozen, unreviewed) and
 *     leaves nothing else: no run dir, no layer, no box process, no mount.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import {
  boxInTmux,
  chownToMode,
  type Fixture,
  FOURWALL,
  fourwallArgv,
  layersOf,
  listDir,
  MODES,
  makeFixture,
  runDirs,
  sh,
  startInBox,
  USER_UID,
  waitFor,
} from "../helpers/box.js";
import { shq, Tmux } from "../helpers/tmux.js";

const OTHER_UID = 65533;
const BOX_UID = 70000;

/** The kept change-sets: kept/ in the layers directory (every protection a layer has). */
const storeOf = (fx: Fixture) => path.join(layersOf(fx), "kept");

/** `fourwall ARGS` as the mode's user, as that user would type it. */
function fourwall(fx: Fixture, args: string[]) {
  const [program, ...rest] = fourwallArgv(fx.mode, args);
  return spawnSync(program!, rest, { cwd: fx.workdir, env: fx.env, encoding: "utf8", timeout: 60_000 });
}

// biome-ignore lint/suspicious/noExplicitAny: the --json output, checked field by field
const keptFor = (fx: Fixture): any[] => {
  const r = fourwall(fx, ["changes", "ls", "--json"]);
  assert.equal(r.status, 0, r.stderr);
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return JSON.parse(r.stdout).filter((k: any) => k.workdir === fx.workdir);
};

/** What uid `uid` manages to do to a kept change-set at `dir` (expected: nothing). */
function attemptsAs(uid: number, dir: string): string {
  const script = [
    `ls ${dir}`,
    `cat ${dir}/meta.json`,
    `ls ${dir}/upper`,
    `cat ${dir}/upper/README.md`,
    `touch ${dir}/upper/x`,
  ]
    .map((c) => `${c} >/dev/null 2>&1 && echo "REACHED: ${c}"`)
    .join("\n");
  return spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sh", "-c", script], {
    encoding: "utf8",
  }).stdout;
}

/**
 * These tests are about the copy-on-write layer and its change-sets: the pause at the action (which
 * would refuse the box's edits before they reach the layer) is off, as `gate.pause: false` allows.
 */
function layerOnly(fx: Fixture): string[] {
  const file = path.join(fx.base, "layer-only.json");
  writeFileSync(file, `${JSON.stringify({ gate: { pause: false } })}\n`, { mode: 0o644 });
  return ["--policy", file];
}

for (const mode of MODES) {
  describe(`gate change-sets (${mode})`, () => {
    it("a refused overwrite is kept: strict exit 123, one loud line, listed by changes ls --json, private, and changes apply lands it", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "gone.txt"), "keep me\n");
      chownToMode(fx, path.join(fx.workdir, "gone.txt"));
      const r = await sh(fx, "echo rewritten > README.md; rm gone.txt; echo new > new.txt", {
        flags: [...layerOnly(fx), "--approver", "exit 1", "--strict-gate"],
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 123, r.stderr);
      const loud = r.stderr.trim().split("\n").at(-1)!;
      assert.match(loud, /2 change\(s\) NOT applied, kept as change-set (\S+)/);
      assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "# project\n");
      assert.equal(readFileSync(path.join(fx.workdir, "new.txt"), "utf8"), "new\n", "new files land at once");

      const [kept, ...more] = keptFor(fx);
      assert.equal(more.length, 0);
      assert.ok(loud.includes(kept.id), loud);
      const readme = kept.changes.find((c: { path: string }) => c.path === "README.md");
      assert.equal(readme.op, "overwrite");
      assert.equal(readme.before.size, 10);
      assert.equal(readme.after.size, 10);
      assert.match(readme.before.sha256, /^[0-9a-f]{64}$/);
      assert.equal(readme.refusedBy, "approver-command");
      assert.ok(
        kept.changes.some((c: { op: string; path: string }) => c.op === "delete" && c.path === "gone.txt"),
      );

      // private: the launching user's, 0700; nobody else (and, as root, not the box uid) reaches it
      const store = storeOf(fx);
      const dir = path.join(store, kept.id);
      for (const d of [store, dir]) {
        assert.equal(lstatSync(d).mode & 0o777, 0o700, d);
        assert.equal(lstatSync(d).uid, mode === "root" ? 0 : 65534, d);
      }
      assert.equal(attemptsAs(OTHER_UID, dir), "", "another local user reached the kept change-set");
      if (mode === "root") assert.equal(attemptsAs(BOX_UID, dir), "", "the box uid reached it");
      // the same check catches a change-set kept where anyone can walk (bound to a 0755 path)
      const exposed = path.join(fx.base, "exposed");
      mkdirSync(exposed);
      assert.equal(spawnSync("mount", ["--bind", dir, exposed]).status, 0);
      const mode0 = lstatSync(dir).mode & 0o777;
      try {
        chmodSync(exposed, 0o755);
        assert.match(attemptsAs(OTHER_UID, exposed), /REACHED: ls /);
      } finally {
        chmodSync(dir, mode0);
        spawnSync("umount", [exposed]);
      }

      const diff = fourwall(fx, ["changes", "diff", kept.id, "README.md", "--json"]);
      assert.equal(diff.status, 0, diff.stderr);
      assert.match(JSON.parse(diff.stdout)[0].diff, /^-# project$\n^\+rewritten$/m);

      // the user edited README.md since: not clobbered
      writeFileSync(path.join(fx.workdir, "README.md"), "edited by hand\n");
      const refused = fourwall(fx, ["changes", "apply", kept.id]);
      assert.equal(refused.status, 1, refused.stdout);
      assert.match(refused.stderr, /not applied README\.md: the host file changed since the review/);
      assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "edited by hand\n");
      assert.equal(
        existsSync(path.join(fx.workdir, "gone.txt")),
        false,
        "the delete (host unchanged) applied",
      );

      const forced = fourwall(fx, ["changes", "apply", kept.id, "--force"]);
      assert.equal(forced.status, 0, forced.stderr);
      assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "rewritten\n");
      assert.equal(lstatSync(path.join(fx.workdir, "README.md")).uid, mode === "root" ? 0 : 65534);
      assert.deepEqual(keptFor(fx), [], "applied and gone");
      assert.equal(existsSync(dir), false);
    });

    it("an approver answering per path gets sizes, hashes and a diff; only its paths land, the rest are kept", async () => {
      const fx = makeFixture(mode);
      for (const f of ["a.txt", "b.txt"]) {
        writeFileSync(path.join(fx.workdir, f), `${f} before\n`);
        chownToMode(fx, path.join(fx.workdir, f));
      }
      const request = path.join(fx.base, "request.json");
      chownToMode(fx, fx.base);
      const r = await sh(fx, "echo 'a after' > a.txt; printf 'b after\\033[2J\\n' > b.txt", {
        flags: [...layerOnly(fx), "--approver", `cat > ${request}; echo '{"approve": ["a.txt"]}'`],
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(fx.workdir, "a.txt"), "utf8"), "a after\n");
      assert.equal(readFileSync(path.join(fx.workdir, "b.txt"), "utf8"), "b.txt before\n");
      const asked = JSON.parse(readFileSync(request, "utf8"));
      const b = asked.changes.find((c: { path: string }) => c.path === "b.txt");
      assert.equal(b.before.size, 13);
      assert.equal(b.after.size, 12);
      assert.ok(b.diff.includes("\n+b after\x1b[2J\n"), "the raw diff for a program");
      const shown = JSON.stringify(asked.display);
      assert.ok(!shown.includes("\\u001b"), "display never carries the box's ESC");
      const [kept] = keptFor(fx);
      assert.deepEqual(
        kept.changes.map((c: { path: string }) => c.path),
        ["b.txt"],
      );
      assert.match(r.stderr, new RegExp(`kept as change-set ${kept.id}`));
      assert.equal(fourwall(fx, ["changes", "drop", kept.id]).status, 0);
      assert.deepEqual(keptFor(fx), []);
    });

    it("the terminal reviews file by file: r, d shows the diff escaped, y for one, n for the other, confirmed; the refused one is kept", async () => {
      const fx = makeFixture(mode);
      for (const f of ["a.txt", "b.txt"]) {
        writeFileSync(path.join(fx.workdir, f), `${f} old line\n`);
        chownToMode(fx, path.join(fx.workdir, f));
      }
      const tmux = boxInTmux(
        fx,
        "printf '%s new line\\033[31m\\n' a.txt > a.txt; printf 'b.txt new\\n' > b.txt",
        { flags: layerOnly(fx) },
      );
      try {
        const overview = await tmux.waitFor(/allow\?.*\[r\]eview file by file/, 60_000, "visible");
        assert.match(overview, /overwrite 2 files/);
        tmux.keys("r");
        const file = await tmux.waitFor(/1 of 2: overwrite (\S+)/, 10_000, "visible");
        const first = /1 of 2: overwrite (\S+)/.exec(file)![1]!;
        const second = first === "a.txt" ? "b.txt" : "a.txt";
        assert.match(file, /before\s+file 644, 15 bytes, sha256 [0-9a-f]{16}/);
        tmux.keys("d");
        const diff = await tmux.waitFor(/end of diff/, 10_000, "visible");
        assert.match(diff, new RegExp(`-${first.replace(".", "\\.")} old line`));
        if (first === "a.txt") assert.match(diff, /\+a\.txt new line\\e\[31m/, "the box's ESC shown escaped");
        tmux.keys("b");
        await tmux.waitFor(/apply this one\?/, 10_000, "visible");
        tmux.keys("y");
        await tmux.waitFor(/2 of 2: overwrite/, 10_000, "visible");
        tmux.keys("n");
        const summary = await tmux.waitFor(/confirm\?/, 10_000, "visible");
        assert.match(summary, /apply\s+1 of 2/);
        assert.match(summary, /keep\s+1 of 2/);
        tmux.keys("y");
        const end = await tmux.waitFor(/BOX-EXIT=\d+/, 60_000);
        assert.match(end, /BOX-EXIT=0/);
        assert.match(end, /1 change\(s\) NOT applied, kept as change-set/);
        assert.notEqual(
          readFileSync(path.join(fx.workdir, first), "utf8"),
          `${first} old line\n`,
          "chosen: applied",
        );
        // (the refused one is applied below, from the kept change-set)
        assert.equal(
          readFileSync(path.join(fx.workdir, second), "utf8"),
          `${second} old line\n`,
          "refused: kept",
        );
        const [kept] = keptFor(fx);
        assert.deepEqual(
          kept.changes.map((c: { path: string }) => c.path),
          [second],
        );
        assert.equal(fourwall(fx, ["changes", "apply", kept.id]).status, 0);
        const boxWrote: Record<string, string> = {
          "a.txt": "a.txt new line\x1b[31m\n",
          "b.txt": "b.txt new\n",
        };
        assert.equal(readFileSync(path.join(fx.workdir, second), "utf8"), boxWrote[second]);
      } finally {
        tmux.kill();
      }
    });

    it("the diff screen escapes the box's bytes: a broken review that shows them raw lets an escape sequence act", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "a.txt"), "old\n");
      chownToMode(fx, path.join(fx.workdir, "a.txt"));
      const script = "printf 'VISIBLE\\033[8mHIDDEN-BY-BOX\\n' > a.txt";
      const diffScreen = async (weaken?: string) => {
        const tmux = boxInTmux(fx, script, { weaken, flags: layerOnly(fx) });
        try {
          await tmux.waitFor(/\[r\]eview file by file/, 60_000, "visible");
          tmux.keys("r");
          await tmux.waitFor(/1 of 1: overwrite a\.txt/, 10_000, "visible");
          tmux.keys("d");
          const screen = await tmux.waitFor(/end of diff/, 10_000, "visible");
          tmux.keys("Escape");
          await tmux.waitFor(/BOX-EXIT=\d+/, 30_000);
          return screen;
        } finally {
          tmux.kill();
        }
      };
      assert.match(
        await diffScreen(),
        /\+VISIBLE\\e\[8mHIDDEN-BY-BOX/,
        "escaped: what the box wrote, in full",
      );
      assert.doesNotMatch(await diffScreen("diff-escape"), /\\e\[8m/, "the broken review passes the ESC on");
      assert.equal(readFileSync(path.join(fx.workdir, "a.txt"), "utf8"), "old\n");
      for (const k of keptFor(fx)) fourwall(fx, ["changes", "drop", k.id]);
    });

    it("down of a persistent box never drops a change silently: kept and named, or asked on the terminal", async () => {
      const fx = makeFixture(mode);
      // (root's box daemon is this build's: its sockets carry the build key, another checkout's is not asked)
      const name = `keep-${mode}-${process.pid}`;
      // the layer alone (no pause): exec's overwrite would otherwise be refused at the action
      assert.equal(fourwall(fx, ["up", "--name", name, ...layerOnly(fx)]).status, 0);
      try {
        fourwall(fx, ["exec", name, "sh", "-c", "echo from-box > README.md"]);
      } finally {
        const down = fourwall(fx, ["down", name]);
        assert.equal(down.status, 0, down.stderr);
        assert.match(
          down.stderr,
          /1 change\(s\) NOT applied, kept as change-set (\S+)/,
          `${down.stdout}\n${down.stderr}`,
        );
      }
      assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "# project\n");
      const [kept] = keptFor(fx);
      assert.deepEqual(
        kept.changes.map((c: { op: string; path: string }) => `${c.op} ${c.path}`),
        ["overwrite README.md"],
      );
      assert.equal(fourwall(fx, ["changes", "drop", kept.id]).status, 0);

      // on a terminal, `down` asks about what is pending (the same review), and a yes applies it
      const again = `${name}-t`;
      assert.equal(fourwall(fx, ["up", "--name", again, ...layerOnly(fx)]).status, 0);
      fourwall(fx, ["exec", again, "sh", "-c", "echo from-box-2 > README.md"]);
      const tmux = new Tmux();
      const env = Object.entries({ ...fx.env, TERM: "xterm-256color" }).map(([k, v]) => `${k}=${shq(v)}`);
      const user =
        fx.mode === "root" ? [] : ["setpriv", `--reuid=${USER_UID}`, `--regid=${USER_UID}`, "--clear-groups"];
      tmux.start(
        `${["env", "-i", ...env, ...user, process.execPath, FOURWALL, "down", again].join(" ")}; echo "DOWN-EXIT=$?"; sleep 60`,
        fx.workdir,
      );
      try {
        const screen = await tmux.waitFor(/allow\?/, 60_000, "visible");
        assert.match(screen, /overwrite\s+README\.md/);
        tmux.keys("y");
        const end = await tmux.waitFor(/DOWN-EXIT=\d+/, 30_000);
        assert.match(end, /DOWN-EXIT=0/);
      } finally {
        tmux.kill();
      }
      assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "from-box-2\n");
      assert.deepEqual(keptFor(fx), []);
    });

    it("SIGKILL of fourwall: the layer is kept as a change-set changes ls shows, and nothing else is left", async () => {
      const fx = makeFixture(mode);
      const layers = layersOf(fx);
      const before = new Set(listDir(layers));
      const runsBefore = new Set(runDirs());
      const marker = `killed-${process.pid}-${mode}`;
      const box = startInBox(
        fx,
        [...layerOnly(fx), "--approver", "exit 0"],
        `echo ${marker} > README.md; echo ready; sleep 60; : ${marker}`,
      );
      let id = "";
      try {
        assert.ok(await waitFor(() => box.out().includes("ready"), 30_000), box.out());
        // other boxes on this machine may have layers here too: ours holds the marker
        const ours = (n: string) => {
          try {
            return readFileSync(path.join(layers, n, "upper", "README.md"), "utf8").includes(marker);
          } catch {
            return false;
          }
        };
        id = listDir(layers).find((n) => !before.has(n) && ours(n)) ?? "";
        assert.notEqual(id, "", `our layer in ${layers}`);
      } finally {
        box.child.kill("SIGKILL"); // the fourwall process itself (setpriv execs it)
      }
      await box.closed;
      const gone = () =>
        !existsSync(path.join(layers, id)) &&
        runDirs().filter((n) => !runsBefore.has(n) && n.startsWith(`fourwall-${id.split("-")[0]}-`))
          .length === 0;
      assert.ok(await waitFor(gone, 15_000), `layer ${id} and the run dir are gone`);
      const kept = keptFor(fx);
      assert.equal(kept.length, 1, JSON.stringify(kept));
      assert.equal(kept[0].id, id);
      assert.match(kept[0].reason, /killed/);
      assert.deepEqual(
        kept[0].changes.map((c: { op: string; path: string }) => `${c.op} ${c.path}`),
        ["overwrite README.md"],
      );
      const dir = path.join(storeOf(fx), id);
      for (const d of [dir, path.join(dir, "upper")]) {
        assert.equal(lstatSync(d).mode & 0o777, 0o700, `${d} frozen`);
        assert.equal(lstatSync(d).uid, mode === "root" ? 0 : 65534, `${d} is the launching user's`);
      }
      // nothing else: no box process, no mount of the layer anywhere
      assert.equal(spawnSync("pgrep", ["-f", marker]).status, 1, "a box process survived");
      assert.doesNotMatch(readFileSync("/proc/self/mountinfo", "utf8"), new RegExp(id));
      assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "# project\n");
      // never reviewed: the user's yes is --force (no record of the host file to compare with)
      assert.equal(fourwall(fx, ["changes", "apply", id]).status, 1);
      const applied = fourwall(fx, ["changes", "apply", id, "--force"]);
      assert.equal(applied.status, 0, applied.stderr);
      assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), `${marker}\n`);
    });
  });
}
