/**
 * The pause at the action (issue 12), in real boxes launched as root and as uid 65534, with real
 * python inside:
 *   - a denying approver: os.remove of a pre-existing file raises PermissionError in the box and the
 *     file survives; so do a rename away, a rename over, open("w") (O_TRUNC), truncate, chmod and
 *     os.chmod adding exec bits; a file made in the run is removed without a question;
 *   - an approving approver: the removal is on the host while the box still runs (the box waits for
 *     the test's go), and the review at exit asks nothing more;
 *   - the same checks against a box without the pause (weak-box.ts --weaken pause) see the holes:
 *     the calls succeed in the box (the layer holds them: nothing lands on the host until the end).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import {
  asMode,
  chownToMode,
  type Fixture,
  FOURWALL,
  MODES,
  makeFixture,
  ROOT,
  readAudit,
  runInBox,
  startInBox,
  waitFor,
  weakEnter,
} from "../helpers/box.js";

/** Each attack, one line of output: NAME ok | NAME PermissionError. */
const ATTACKS = String.raw`
import os
def attempt(name, fn):
    try:
        fn()
        print(name, "ok", flush=True)
    except OSError as error:
        print(name, type(error).__name__, flush=True)
attempt("remove", lambda: os.remove("victim.txt"))
attempt("rename-away", lambda: os.rename("away.txt", "away.moved"))
def rename_over():
    with open("incoming.tmp", "w") as f:
        f.write("replacement\n")
    os.rename("incoming.tmp", "over.txt")
attempt("rename-over", rename_over)
attempt("open-w", lambda: open("trunc.txt", "w").close())
attempt("truncate", lambda: os.truncate("trunc2.txt", 0))
attempt("chmod", lambda: os.chmod("mode.txt", 0o600))
attempt("chmod-exec", lambda: os.chmod("run.sh", 0o755))
def new_file():
    with open("scratch.txt", "w") as f:
        f.write("mine\n")
    os.remove("scratch.txt")
attempt("new-file", new_file)
`;

const FILES: Record<string, string> = {
  "victim.txt": "precious\n",
  "away.txt": "stay here\n",
  "over.txt": "original\n",
  "trunc.txt": "keep my bytes\n",
  "trunc2.txt": "keep these too\n",
  "mode.txt": "mode 644\n",
  "run.sh": "echo hi\n",
};

function plant(fx: Fixture): void {
  for (const [name, text] of Object.entries(FILES)) {
    const p = path.join(fx.workdir, name);
    writeFileSync(p, text, { mode: 0o644 });
    chownToMode(fx, p);
  }
  writeFileSync(path.join(fx.workdir, "attacks.py"), ATTACKS);
  chownToMode(fx, path.join(fx.workdir, "attacks.py"));
}

/** What the denied attacks did (expected: nothing). An empty list: the pause held. */
function holesWhenDenied(fx: Fixture, out: string): string[] {
  const holes: string[] = [];
  for (const name of ["remove", "rename-away", "rename-over", "open-w", "truncate", "chmod", "chmod-exec"])
    if (!new RegExp(`^${name} PermissionError$`, "m").test(out))
      holes.push(`${name}: no PermissionError in the box`);
  if (!/^new-file ok$/m.test(out)) holes.push("a file of the run could not be removed");
  for (const [name, text] of Object.entries(FILES)) {
    const p = path.join(fx.workdir, name);
    if (!existsSync(p)) holes.push(`${name} gone from the host`);
    else if (readFileSync(p, "utf8") !== text) holes.push(`${name} changed on the host`);
    else if ((statSync(p).mode & 0o777) !== 0o644) holes.push(`${name} mode changed on the host`);
  }
  return holes;
}

/**
 * The box removes a pre-existing file, says so, then waits (up to 20 s) for the test's go: a file
 * the test makes under the repository, which the box sees through its read-only view of the host.
 * Resolves with whether the file was gone from the host while the box still ran.
 */
let goes = 0;
async function goneWhileRunning(
  fx: Fixture,
  weaken?: string[],
): Promise<{ gone: boolean; code: number | null; out: string }> {
  const outDir = path.join(ROOT, "test-output");
  mkdirSync(outDir, { recursive: true, mode: 0o755 });
  const go = path.join(outDir, `pause-go-${process.pid}-${goes++}`);
  const script = `python3 -c 'import os; os.remove("victim.txt"); print("removed", flush=True)' && i=0 && while [ ! -e ${go} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; echo done`;
  const audit = path.join(fx.home, `audit-${goes}.jsonl`);
  const flags = weaken ? ["--approver", "exit 0"] : ["--approver", "exit 0", "--audit", audit];
  const box = startInBox(fx, flags, script, { weaken });
  const victim = path.join(fx.workdir, "victim.txt");
  try {
    assert.ok(
      await waitFor(() => box.out().includes("removed"), 60_000),
      `the box removed the file: ${box.out()}`,
    );
    const gone = await waitFor(() => !existsSync(victim), weaken ? 3000 : 10_000);
    let closed = false;
    void box.closed.then(() => (closed = true));
    assert.equal(closed, false, "the box still runs");
    writeFileSync(go, "");
    chmodSync(go, 0o644);
    const code = await box.closed;
    if (!weaken) {
      const events = readAudit(audit);
      const set = events.find((e) => e.event === "change-set");
      assert.deepEqual(set?.applied ?? [], [], "the review at exit asked nothing more");
      assert.ok(
        events.some((e) => e.event === "decision" && e.via === "pause" && e.decision === "allow"),
        "the approver was asked at the action",
      );
    }
    return { gone, code, out: box.out() };
  } finally {
    box.child.kill("SIGKILL");
    rmSync(go, { force: true });
  }
}

for (const mode of MODES) {
  describe(`gate pause at the action (${mode})`, () => {
    it("a denying approver: PermissionError in the box for each destructive call, every file intact on the host", async () => {
      const fx = makeFixture(mode);
      plant(fx);
      const r = await runInBox(fx, ["python3", "attacks.py"], {
        flags: ["--approver", "exit 1"],
        timeoutMs: 90_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(holesWhenDenied(fx, r.stdout), [], r.stdout);
    });

    it("without the pause (weak box) the same check sees the calls succeed in the box", async () => {
      const fx = makeFixture(mode);
      plant(fx);
      const r = await runInBox(fx, ["python3", "attacks.py"], {
        weaken: ["pause"],
        weakFlags: ["--approver", "exit 1"],
        timeoutMs: 90_000,
      });
      assert.equal(r.code, 0, r.stderr);
      const holes = holesWhenDenied(fx, r.stdout);
      assert.ok(
        holes.some((h) => h.startsWith("remove: no PermissionError")),
        holes.join("; "),
      );
      // the layer underneath still holds them: nothing reached the host
      assert.ok(
        holes.every((h) => h.includes("in the box")),
        holes.join("; "),
      );
    });

    it("an approving approver: the file is gone from the host before the box exits, and not asked again", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "victim.txt"), "precious\n");
      chownToMode(fx, path.join(fx.workdir, "victim.txt"));
      const r = await goneWhileRunning(fx);
      assert.equal(r.gone, true, `gone from the host while the box ran: ${r.out}`);
      assert.equal(r.code, 0);
      assert.equal(existsSync(path.join(fx.workdir, "victim.txt")), false);
    });

    it("without the pause (weak box) the approved removal reaches the host only after the box", async () => {
      const fx = makeFixture(mode);
      writeFileSync(path.join(fx.workdir, "victim.txt"), "precious\n");
      chownToMode(fx, path.join(fx.workdir, "victim.txt"));
      const r = await goneWhileRunning(fx, ["pause"]);
      assert.equal(r.gone, false, "the weak box's removal waited for the review at exit");
      assert.equal(existsSync(path.join(fx.workdir, "victim.txt")), false, "applied at exit");
    });
  });
}

/**
 * The reviewer's hole (one yes at the pause landed whatever was at the path): the box renames a
 * pre-existing file (the one question, approved), then removes the new name (new in the layer: not
 * paused) and puts a symlink out, or a directory with a new repository and a symlink out, there.
 * The approval covers the rename of that file only: nothing of the rest reaches the host while the
 * box runs, and the review at exit asks about it (no: kept as a change-set). A plain rename still
 * lands at once.
 */
const SWAP = (what: "symlink" | "repo" | "plain") => String.raw`
import os, sys, time
os.rename("notes.txt", "notes.md")
try:
    if "${what}" != "plain":
        os.unlink("notes.md")
    if "${what}" == "symlink":
        os.symlink("/root/.ssh/authorized_keys", "notes.md")
    if "${what}" == "repo":
        os.makedirs("notes.md/.git/hooks")
        os.makedirs("notes.md/.git/objects")
        os.makedirs("notes.md/.git/refs/heads")
        open("notes.md/.git/HEAD", "w").write("ref: refs/heads/main\n")
        open("notes.md/.git/config", "w").write("[core]\n\tfsmonitor = touch /tmp/fourwall-fsmonitor-ran\n")
        with open("notes.md/.git/hooks/pre-commit", "w") as f:
            f.write("#!/bin/sh\ntouch /tmp/fourwall-hook-ran\n")
        os.chmod("notes.md/.git/hooks/pre-commit", 0o755)
        os.symlink("/root/.ssh", "notes.md/keys")
    print("planted", flush=True)
except PermissionError:
    # the approved rename was on the host already: notes.md is the host's now, its unlink is asked (no)
    print("planted refused", flush=True)
time.sleep(3)
`;
/** yes to a question holding a rename (the one at the pause), no to anything else (the review). */
const YES_TO_RENAME = `grep -q '"op":"rename"'`;

/** What the host's notes.md is: missing, a symlink, or a directory and what it holds. */
function notesOnHost(fx: Fixture): string {
  const p = path.join(fx.workdir, "notes.md");
  try {
    const s = lstatSync(p);
    if (s.isSymbolicLink()) return `symlink → ${readlinkSync(p)}`;
    if (s.isDirectory()) return `dir [${readdirSync(p).sort().join(",")}]`;
    return `file ${readFileSync(p, "utf8").trim()}`;
  } catch {
    return "missing";
  }
}

/** Runs SWAP(what); returns every state the host's notes.md was in while the box ran, and at the end. */
async function swapAfterRename(fx: Fixture, what: "symlink" | "repo" | "plain", weaken?: string[]) {
  writeFileSync(path.join(fx.workdir, "notes.txt"), "notes\n", { mode: 0o644 });
  chownToMode(fx, path.join(fx.workdir, "notes.txt"));
  writeFileSync(path.join(fx.workdir, "swap.py"), SWAP(what));
  chownToMode(fx, path.join(fx.workdir, "swap.py"));
  const audit = path.join(fx.home, `audit-swap-${goes++}.jsonl`);
  const flags = ["--approver", YES_TO_RENAME, ...(weaken ? [] : ["--audit", audit])];
  const box = startInBox(fx, flags, "python3 swap.py", { weaken });
  const states = new Set<string>();
  try {
    assert.ok(await waitFor(() => box.out().includes("planted"), 60_000), `the box ran: ${box.out()}`);
    let closed = false;
    void box.closed.then(() => (closed = true));
    while (!closed) {
      states.add(notesOnHost(fx));
      await new Promise((r) => setTimeout(r, 50));
    }
    const code = await box.closed;
    return {
      states: [...states],
      code,
      end: notesOnHost(fx),
      out: box.out(),
      audit: weaken ? [] : readAudit(audit),
    };
  } finally {
    box.child.kill("SIGKILL");
  }
}

/**
 * Whatever the timing, the host only ever has the approved rename (notes.md holding notes.txt's
 * file) or nothing at notes.md, never the symlink or the tree. Either the at-once apply saw the
 * rename before the box's swap (then the host has notes.md, and the box's unlink of it is asked and
 * refused, "planted refused"; or the swap raced the apply and stays in the layer), or it saw the
 * swap and applied nothing. What the box put there is held for the review, which asks (no: kept).
 */
function heldForReview(
  fx: Fixture,
  r: { states: string[]; end: string; out: string },
  allowed: string[],
  kinds: string[],
): void {
  const kept = keptOf(fx);
  try {
    for (const s of [...r.states, r.end])
      assert.ok([...allowed, "file notes"].includes(s), `host states: ${r.states.join(" | ")}`);
    if (r.end === "file notes") assert.equal(existsSync(path.join(fx.workdir, "notes.txt")), false);
    else
      assert.equal(readFileSync(path.join(fx.workdir, "notes.txt"), "utf8"), "notes\n", "the original stays");
    if (r.out.includes("planted refused")) return;
    assert.match(r.out, /^planted$/m);
    const text = JSON.stringify(kept);
    for (const kind of kinds) assert.ok(text.includes(kind), `kept as a change-set: ${text}`);
  } finally {
    for (const k of kept) fw(fx, ["changes", "drop", k.id]);
  }
}

for (const mode of MODES) {
  describe(`gate pause: an approval covers the asked change only (${mode})`, () => {
    it("an approved rename, then a symlink out at its new name: nothing lands at once, the review asks, no keeps it", async () => {
      const fx = makeFixture(mode);
      const r = await swapAfterRename(fx, "symlink");
      assert.equal(r.code, 0);
      heldForReview(fx, r, ["missing"], ["symlink-out"]);
    });

    it("an approved rename, then a new repository and a symlink out at its new name: neither lands", async () => {
      const fx = makeFixture(mode);
      const r = await swapAfterRename(fx, "repo");
      assert.equal(r.code, 0);
      // the live layer may make the new directory itself (new work flows); never what it holds here
      heldForReview(fx, r, ["missing", "dir []"], ["new-repo", "symlink-out"]);
    });

    it("a plain approved rename still lands at once, and is not asked again", async () => {
      const fx = makeFixture(mode);
      const r = await swapAfterRename(fx, "plain");
      assert.equal(r.code, 0);
      assert.ok(r.states.includes("file notes"), r.states.join(" | "));
      assert.equal(r.end, "file notes");
      assert.equal(existsSync(path.join(fx.workdir, "notes.txt")), false);
      const set = r.audit.find((e) => e.event === "change-set");
      assert.deepEqual(set?.applied ?? [], [], "the review at exit asked nothing more");
      assert.deepEqual(keptOf(fx), []);
    });

    it("with the old at-once apply (weak box) the symlink out lands on the host while the box runs", async () => {
      const fx = makeFixture(mode);
      const r = await swapAfterRename(fx, "symlink", ["pause-apply"]);
      assert.ok(r.states.includes("symlink → /root/.ssh/authorized_keys"), r.states.join(" | "));
      for (const k of keptOf(fx)) fw(fx, ["changes", "drop", k.id]);
    });

    it("with the old at-once apply (weak box) the new repository lands too", async () => {
      const fx = makeFixture(mode);
      const r = await swapAfterRename(fx, "repo", ["pause-apply"]);
      assert.ok(
        r.states.some((s) => s.includes(".git") && s.includes("keys")),
        r.states.join(" | "),
      );
      for (const k of keptOf(fx)) fw(fx, ["changes", "drop", k.id]);
    });
  });
}

// biome-ignore lint/suspicious/noExplicitAny: the --json output, checked field by field
function keptOf(fx: Fixture): any[] {
  const r = fw(fx, ["changes", "ls", "--json"]);
  assert.equal(r.code, 0, r.stderr);
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return JSON.parse(r.stdout).filter((k: any) => k.workdir === fx.workdir);
}

const FS_SERVER = path.join(
  ROOT,
  "node_modules",
  "@modelcontextprotocol",
  "server-filesystem",
  "dist",
  "index.js",
);

/**
 * The reference MCP filesystem server in a box, driven by the MCP SDK's client over stdio through
 * `fourwall run`: its edit of a pre-existing file (a temp file renamed over it) is asked at the
 * action, approved, and on the host before the client closes.
 */
async function mcpEdit(fx: Fixture): Promise<{ onHostBeforeClose: string; text: string }> {
  const { Client } = await import("@modelcontextprotocol/sdk/client/index.js");
  const { StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js");
  const [command, ...args] = asMode(fx.mode, [
    process.execPath,
    FOURWALL,
    "run",
    "--approver",
    "cat > /dev/null; exit 0",
    "--",
    "node",
    FS_SERVER,
    fx.workdir,
  ]);
  const transport = new StdioClientTransport({
    command: command!,
    args,
    env: fx.env,
    cwd: fx.workdir,
    stderr: "pipe",
  });
  const client = new Client({ name: "fourwall-test", version: "1.0.0" });
  await client.connect(transport);
  try {
    const result = await client.callTool({
      name: "edit_file",
      arguments: {
        path: path.join(fx.workdir, "README.md"),
        edits: [{ oldText: "# project", newText: "# project, edited over MCP" }],
      },
    });
    const text = JSON.stringify(result.content);
    // The approved rename continues in the box at once; fourwall applies it to the host as soon as
    // the layer shows it (milliseconds, more on a loaded host): the client waits up to 3 s, then closes.
    const onHost = () => readFileSync(path.join(fx.workdir, "README.md"), "utf8");
    await waitFor(() => onHost() === "# project, edited over MCP\n", 3000);
    return { onHostBeforeClose: onHost(), text };
  } finally {
    await client.close();
  }
}

for (const mode of MODES) {
  describe(`gate pause with the reference MCP filesystem server (${mode})`, () => {
    it("an approved edit of a pre-existing file is on the host before the client closes", async () => {
      const fx = makeFixture(mode);
      const r = await mcpEdit(fx);
      assert.equal(r.onHostBeforeClose, "# project, edited over MCP\n", r.text);
    });
  });
}

/**
 * `fourwall exec` into a persistent box gets the same pause as the box's first command: its
 * listener goes to the box daemon's supervisor (fourwall-enter, over the box's 0700 state dir).
 * Root-launched boxes: the test needs its own box daemon (/run/fourwall/boxes is the machine's);
 * run it where no other build's daemon answers there.
 */
const SHIM = path.join(ROOT, "bin", "fourwall");
const REMOVE = `import os
try:
    os.remove("victim.txt")
    print("remove ok", flush=True)
except OSError as error:
    print("remove", type(error).__name__, flush=True)`;

function fw(fx: Fixture, args: string[]) {
  const [program, ...rest] = asMode(fx.mode, [SHIM, ...args]);
  const r = spawnSync(program!, rest, { cwd: fx.workdir, env: fx.env, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const boxStateDir = (fx: Fixture, name: string) =>
  fx.mode === "root"
    ? path.join("/run/fourwall/boxes", name)
    : path.join(fx.home, ".local", "state", "fourwall", "boxes", name);

let boxes = 0;
async function withBox<T>(fx: Fixture, approver: string, body: (name: string) => Promise<T> | T): Promise<T> {
  const name = `px-${fx.mode}-${process.pid}-${boxes++}`;
  writeFileSync(path.join(fx.workdir, "victim.txt"), "precious\n", { mode: 0o644 });
  chownToMode(fx, path.join(fx.workdir, "victim.txt"));
  const up = fw(fx, ["up", "--name", name, "--approver", approver]);
  assert.equal(up.code, 0, up.stderr);
  try {
    assert.match(
      readFileSync(path.join(boxStateDir(fx, name), "enter"), "utf8"),
      /^pause=/m,
      "exec must pause",
    );
    return await body(name);
  } finally {
    fw(fx, ["down", name]);
  }
}

for (const mode of MODES) {
  describe(`gate pause in fourwall exec (${mode})`, () => {
    it("a denying approver: os.remove via exec raises PermissionError, the file stays", async () => {
      const fx = makeFixture(mode);
      await withBox(fx, "exit 1", (name) => {
        const r = fw(fx, ["exec", name, "--", "python3", "-c", REMOVE]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /^remove PermissionError$/m);
        assert.equal(readFileSync(path.join(fx.workdir, "victim.txt"), "utf8"), "precious\n");
        // a file the exec makes itself is removed without a question
        const own = fw(fx, ["exec", name, "--", "sh", "-c", "echo x > own.txt && rm own.txt && echo own-ok"]);
        assert.match(own.stdout, /own-ok/, own.stderr);
      });
      assert.equal(readFileSync(path.join(fx.workdir, "victim.txt"), "utf8"), "precious\n", "kept at down");
    });

    it("an approving approver: the removal is on the host while the box still lives", async () => {
      const fx = makeFixture(mode);
      await withBox(fx, "exit 0", async (name) => {
        const r = fw(fx, ["exec", name, "--", "python3", "-c", REMOVE]);
        assert.match(r.stdout, /^remove ok$/m, r.stderr);
        assert.ok(
          await waitFor(() => !existsSync(path.join(fx.workdir, "victim.txt")), 10_000),
          "gone from the host before down",
        );
        assert.match(fw(fx, ["ls"]).stdout, new RegExp(name), "the box still lives");
      });
    });

    it("fails closed: an exec that cannot hand over its pause does not run (125)", async () => {
      const fx = makeFixture(mode);
      await withBox(fx, "exit 1", (name) => {
        const sock = path.join(boxStateDir(fx, name), "pause.sock");
        renameSync(sock, `${sock}.away`);
        try {
          const r = fw(fx, ["exec", name, "--", "sh", "-c", "echo ran > ran.txt"]);
          assert.equal(r.code, 125, r.stderr);
          assert.match(r.stderr, /approval gate/);
        } finally {
          renameSync(`${sock}.away`, sock);
        }
        const again = fw(fx, ["exec", name, "--", "cat", "ran.txt"]);
        assert.notEqual(again.code, 0, "the command never ran");
      });
    });

    it("an exec without the pause (fourwall-enter built without it) lets the removal through in the box", async () => {
      const fx = makeFixture(mode);
      const bin = weakEnter("FOURWALL_UNSAFE_NO_PAUSE");
      await withBox(fx, "exit 1", (name) => {
        const [program, ...rest] = asMode(fx.mode, [
          bin,
          boxStateDir(fx, name),
          "--",
          "python3",
          "-c",
          REMOVE,
        ]);
        const r = spawnSync(program!, rest, {
          cwd: fx.workdir,
          env: fx.env,
          encoding: "utf8",
          timeout: 60_000,
        });
        assert.match(r.stdout, /^remove ok$/m, `the hole: ${r.stderr}`);
        // the layer underneath still holds it: the host file is there until a yes at down
        assert.equal(readFileSync(path.join(fx.workdir, "victim.txt"), "utf8"), "precious\n");
      });
    });
  });
}

/**
 * `rm -rf dir` of pre-existing files is asked once, as a tree ("delete dir/ (N entries)"), and that
 * answer covers only deletes at or under dir/: the approver (real, counting its calls) says yes to
 * its first question only; a sibling whose name starts the same and a file outside are asked on
 * their own, and refused.
 */
for (const mode of MODES) {
  describe(`gate pause asks once per tree (${mode})`, () => {
    it("rm -rf dir: one question; the yes reaches nothing outside dir/", async () => {
      const fx = makeFixture(mode);
      for (const f of ["dir/a", "dir/b", "dir/sub/c", "dir/sub/deep/d", "dir-sibling/e", "other.txt"]) {
        mkdirSync(path.dirname(path.join(fx.workdir, f)), { recursive: true });
        writeFileSync(path.join(fx.workdir, f), `${f}\n`);
      }
      const log = path.join(fx.home, "approver.log");
      const approver = path.join(fx.home, "approver.sh");
      writeFileSync(approver, `tr -d '\\n' >> ${log}; echo >> ${log}\n[ "$(wc -l < ${log})" -le 1 ]\n`);
      if (mode === "user") spawnSync("chown", ["-R", "65534:65534", fx.home]);
      const r = await runInBox(
        fx,
        [
          "sh",
          "-c",
          "rm -rf dir; echo dir=$?; rm -rf dir-sibling 2>/dev/null; echo sibling=$?; rm other.txt 2>/dev/null; echo other=$?",
        ],
        { flags: ["--approver", `sh ${approver}`], timeoutMs: 90_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^dir=0$/m);
      assert.match(r.stdout, /^sibling=1$/m);
      assert.match(r.stdout, /^other=1$/m);
      const asked = readFileSync(log, "utf8")
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { summary: string }).summary);
      assert.deepEqual(asked, [
        "delete dir/ (6 entries)",
        "delete dir-sibling/ (1 entry)",
        "delete other.txt",
      ]);
      assert.equal(existsSync(path.join(fx.workdir, "dir")), false, "the tree is gone from the host");
      assert.equal(readFileSync(path.join(fx.workdir, "dir-sibling", "e"), "utf8"), "dir-sibling/e\n");
      assert.equal(readFileSync(path.join(fx.workdir, "other.txt"), "utf8"), "other.txt\n");
    });
  });
}
