/**
 * The copy-on-write layer only fourwall can reach, and its safe apply (issue 12), in real boxes
 * launched as root and as uid 65534:
 *   - while the box runs (it made a setuid file, world-writable directories, touched a file), the
 *     layer is out of reach of another local user (uid 65533) and, as root, of the box uid itself
 *     (a hijacked root box: every root box runs as that uid): no list, read, write or exec; the box's
 *     mountinfo names no host path of it; and the layer is gone after the run. The same check against
 *     a layer made reachable (bind-mounted to a path anyone can walk) catches it;
 *   - after an approved apply: no setuid/setgid file; a symlink out was asked about as its own
 *     kind; a 255-byte name and a path past PATH_MAX are applied; the layer is removed; exit 0.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import {
  chownToMode,
  layersOf,
  listDir,
  MODES,
  makeFixture,
  readAudit,
  runInBox,
  sh,
  startInBox,
  waitFor,
} from "../helpers/box.js";

const OTHER_UID = 65533;
const BOX_UID = 70000;

/**
 * What uid `uid` manages to do to a layer at `dir` (expected: nothing). Every attempt that works
 * prints a line.
 */
function attemptsAs(uid: number, dir: string): string {
  const u = `${dir}/upper`;
  const script = [
    `ls ${dir}`,
    `ls ${u}`,
    `ls ${dir}/work`,
    `cat ${u}/README.md`,
    `touch ${u}/.git/hooks/pre-commit`,
    `touch ${u}/planted`,
    `${u}/suid -c 'exit 0'`,
  ]
    .map((c) => `${c} >/dev/null 2>&1 && echo "REACHED: ${c}"`)
    .join("\n");
  const r = spawnSync("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sh", "-c", script], {
    encoding: "utf8",
  });
  return r.stdout;
}

/** The box: a setuid shell, world-writable dirs, a touched file; reports its mountinfo; waits. */
const BOX_SCRIPT = `
cp /bin/sh suid && chmod 4755 suid
chmod 777 . .git && mkdir -p .git/hooks && chmod 777 .git/hooks
echo touched >> README.md
grep " $PWD " /proc/self/mountinfo | grep ' overlay ' | head -1
ls -d LAYERS 2>/dev/null && echo "BOX-SEES-LAYERS"
echo ready
sleep 20
`;

for (const mode of MODES) {
  describe(`gate layer (${mode})`, () => {
    it("nobody but fourwall reaches the layer while the box runs: not another user, not the box uid; removed after", async () => {
      const fx = makeFixture(mode);
      const layers = layersOf(fx);
      const before = new Set(listDir(layers));
      const ours: string[] = [];
      const box = startInBox(fx, ["--approver", "exit 1"], BOX_SCRIPT.replace("LAYERS", layers));
      try {
        assert.ok(await waitFor(() => box.out().includes("ready"), 30_000), box.out());
        // other boxes on this machine (other test files) may have layers here too: ours holds the suid file
        const mine = listDir(layers).filter(
          (n) => !before.has(n) && existsSync(path.join(layers, n, "upper", "suid")),
        );
        assert.equal(mine.length, 1, `one new layer in ${layers}: ${mine}`);
        ours.push(mine[0]!);
        const dir = path.join(layers, mine[0]!);
        assert.equal(
          lstatSync(path.join(dir, "upper", "suid")).mode & 0o4000,
          0o4000,
          "the box made a setuid file",
        );
        assert.equal(attemptsAs(OTHER_UID, dir), "", "another local user reached the layer");
        if (mode === "root")
          assert.equal(attemptsAs(BOX_UID, dir), "", "the box uid (any root box) reached the layer");
        assert.doesNotMatch(box.out(), /BOX-SEES-LAYERS/, "the box saw the layers directory");
        assert.match(box.out(), /upperdir=upper,workdir=work/, "the workdir's overlay, as the box sees it");
        assert.doesNotMatch(box.out(), /upperdir=\//, "the box's mountinfo names the layer's host path");
        assert.equal(lstatSync(layers).mode & 0o777, 0o700);

        // The same check catches the old layout (a 0711 layer at a path anyone can walk, as in /tmp).
        const exposed = path.join(fx.base, "exposed");
        mkdirSync(exposed);
        assert.equal(spawnSync("mount", ["--bind", dir, exposed]).status, 0);
        const mode0 = lstatSync(dir).mode & 0o777;
        try {
          chmodSync(exposed, 0o711);
          assert.match(attemptsAs(OTHER_UID, exposed), /REACHED: ls .*upper/);
        } finally {
          chmodSync(dir, mode0);
          spawnSync("umount", [exposed]);
        }
      } finally {
        box.child.kill("SIGTERM");
      }
      await box.closed;
      assert.deepEqual(
        ours.filter((n) => existsSync(path.join(layers, n))),
        [],
        "the layer is removed after the run",
      );
    });

    it("an approved apply: no setuid/setgid, the symlink out asked as its own kind, 255-byte names and paths past PATH_MAX applied, the layer removed, exit 0", async () => {
      const fx = makeFixture(mode);
      const w = fx.workdir;
      mkdirSync(path.join(w, ".git", "objects", "ab"), { recursive: true });
      writeFileSync(path.join(w, ".git", "objects", "ab", "cd"), "object");
      writeFileSync(
        path.join(w, "deep.py"),
        `import os\nos.mkdir("deep"); os.chdir("deep")\nfor i in range(260):\n    os.mkdir("d"*20); os.chdir("d"*20)\nopen("f","w").write("bottom")\n`,
      );
      if (mode === "user") spawnSync("chown", ["-R", "65534:65534", w]);
      const audit = path.join(fx.base, "audit.jsonl");
      const request = path.join(fx.base, "request.json");
      const listCopy = path.join(fx.base, "list.txt");
      chownToMode(fx, fx.base);
      const layers = layersOf(fx);
      const before = new Set(listDir(layers));
      const long = "L".repeat(255);
      const r = await sh(
        fx,
        [
          "chmod 4755 .git/objects/ab/cd",
          "cp /bin/sh new-suid && chmod 6755 new-suid",
          "ln -s /root/.ssh keys",
          `echo long > ${long}`,
          "python3 deep.py",
          "echo done",
        ].join("\n"),
        {
          flags: [
            "--approver",
            // every request (the pause asks the chmod at the action, the review the rest at exit), and
            // the full list the review's question points to (readable while the question is open)
            `tee -a ${request} | python3 -c 'import json,sys; print(open(json.load(sys.stdin)["listFile"]).read())' > ${listCopy}.new && mv ${listCopy}.new ${listCopy}; exit 0`,
            "--audit",
            audit,
          ],
          timeoutMs: 120_000,
        },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /done/);
      const asked = readFileSync(request, "utf8")
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line));
      const ops = asked.flatMap((a) =>
        a.changes.map((c: { op: string; path: string }) => `${c.op} ${c.path}`),
      );
      assert.ok(ops.includes("symlink-out keys"), ops.join("\n"));
      assert.ok(ops.includes("exec .git/objects/ab/cd"), ops.join("\n"));
      assert.match(readFileSync(listCopy, "utf8"), /^symlink-out keys {2}\(new symlink → \/root\/\.ssh\)$/m);
      assert.equal(readlinkSync(path.join(w, "keys")), "/root/.ssh", "approved: applied");
      assert.equal(lstatSync(path.join(w, ".git/objects/ab/cd")).mode & 0o7777, 0o755);
      assert.equal(lstatSync(path.join(w, "new-suid")).mode & 0o7777, 0o755);
      assert.equal(readFileSync(path.join(w, long), "utf8"), "long\n");
      // read back one directory at a time (no tool takes a path this long at once)
      const depth = spawnSync(
        "python3",
        [
          "-c",
          'import os\nos.chdir("deep")\nwhile os.path.isdir("d"*20): os.chdir("d"*20)\nprint(len(os.getcwd()), open("f").read())',
        ],
        { cwd: w, encoding: "utf8" },
      );
      const [length, content] = depth.stdout.trim().split(" ");
      assert.equal(content, "bottom", depth.stderr || depth.stdout);
      assert.ok(Number(length) > 4096, `applied at a depth past PATH_MAX (${length} bytes)`);
      spawnSync("rm", ["-rf", "--", path.join(w, "deep")]); // the fixture's cleanup (rmSync) cannot go this deep
      const set = readAudit(audit).find((e) => e.event === "change-set");
      assert.deepEqual(set.failures, []);
      assert.deepEqual(
        listDir(layers).filter((n) => !before.has(n) && n.startsWith(`${set.box}-`)),
        [],
        "the layer is removed",
      );
    });

    it("a workdir under a directory the box uid cannot search (0700, like /srv or a mktemp -d) works; without --reach it does not (root)", async () => {
      const fx = makeFixture(mode);
      const closed = path.join(fx.base, "closed"); // outside HOME (HOME is idmapped as a whole in root mode)
      const w = path.join(closed, "proj");
      mkdirSync(w, { recursive: true });
      writeFileSync(path.join(w, "old.txt"), "old\n");
      if (mode === "user") spawnSync("chown", ["-R", "65534:65534", closed]);
      chmodSync(closed, 0o700);
      const script = "cat old.txt; echo new > new.txt; echo ran";
      const r = await sh(fx, script, { cwd: w, flags: ["--approver", "exit 0"], timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /old\nran/);
      assert.equal(readFileSync(path.join(w, "new.txt"), "utf8"), "new\n");
      if (mode === "root") {
        const weak = await runInBox(fx, ["/bin/sh", "-c", script], {
          cwd: w,
          weaken: ["reach"],
          timeoutMs: 60_000,
        });
        assert.notEqual(
          weak.code,
          0,
          `without --reach the box cannot get to its workdir: ${weak.stdout} ${weak.stderr}`,
        );
        assert.match(weak.stderr, /Permission denied/);
      }
    });
  });
}
