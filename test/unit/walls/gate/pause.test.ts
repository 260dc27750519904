/**
 * The pause at the action, pure parts: the notify filter (run on synthetic seccomp_data by the
 * independent interpreter in test/helpers/bpf.ts: which calls wait for fourwall, which never do),
 * the supervisor's lines, and the verdict on a paused call (the layer's own gate.fs policy, the
 * `exec` kind, what is looked for in the layer after a yes).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  isAtOrUnder,
  judgePause,
  type PauseTarget,
  parsePauseLine,
  pauseGroupOf,
} from "../../../../src/walls/gate/pause.js";
import {
  buildPauseFilter,
  O_TRUNC,
  PAUSE_SYSCALLS,
  SECCOMP_RET_USER_NOTIF,
} from "../../../../src/walls/gate/pause-filter.js";
import { gateSchema } from "../../../../src/walls/gate/schema.js";
import { AUDIT_ARCH, X32_SYSCALL_BIT } from "../../../../src/walls/isolation/index.js";
import { run, validate } from "../../../helpers/bpf.js";
import { pauseNotice } from "../../../helpers/pause-notice.js";

const ALLOW = 0x7fff0000;
const nr = (name: string, arch: "x64" | "arm64" = "x64") =>
  PAUSE_SYSCALLS.find((s) => s.name === name)!.nr[arch]!;

describe("the pause's notify filter", () => {
  for (const arch of ["x64", "arm64"] as const) {
    const program = buildPauseFilter(arch);
    const call = (n: number, args: number[] = []) => run(program, { nr: n, arch: AUDIT_ARCH[arch], args });

    it(`${arch}: passes the kernel's checks`, () => {
      validate(program);
    });

    it(`${arch}: every unlink, rename, truncate and chmod waits for fourwall`, () => {
      for (const s of PAUSE_SYSCALLS) {
        if (s.nr[arch] === null || s.when.kind !== "always") continue;
        assert.equal(call(s.nr[arch]!), SECCOMP_RET_USER_NOTIF, s.name);
      }
    });

    it(`${arch}: an open waits only with O_TRUNC (in its own flags argument)`, () => {
      const openat = nr("openat", arch);
      assert.equal(call(openat, [-100, 0x1000, 0o101]), ALLOW, "O_WRONLY|O_CREAT");
      assert.equal(call(openat, [-100, 0x1000, 0o2001]), ALLOW, "O_WRONLY|O_APPEND");
      assert.equal(call(openat, [-100, 0x1000, 0]), ALLOW, "O_RDONLY");
      assert.equal(call(openat, [-100, 0x1000, 0o1101]), SECCOMP_RET_USER_NOTIF, "O_WRONLY|O_CREAT|O_TRUNC");
      // O_TRUNC in another argument (the mode) is not a truncation
      assert.equal(call(openat, [-100, 0x1000, 0o101, O_TRUNC]), ALLOW);
      if (arch === "x64") {
        assert.equal(call(nr("open"), [0x1000, 0o1101]), SECCOMP_RET_USER_NOTIF);
        assert.equal(call(nr("open"), [0x1000, 0o101]), ALLOW);
        assert.equal(call(nr("creat"), [0x1000, 0o644]), SECCOMP_RET_USER_NOTIF, "creat always truncates");
      }
      // openat2's flags are in a struct the filter cannot read: always asked, settled by the supervisor
      assert.equal(call(nr("openat2", arch), [-100, 0x1000, 0x2000, 24]), SECCOMP_RET_USER_NOTIF);
    });

    it(`${arch}: everything else runs untouched (reads, writes, new files, the box's own plumbing)`, () => {
      const named = new Set(PAUSE_SYSCALLS.map((s) => s.nr[arch]));
      for (let n = 0; n < 460; n++) if (!named.has(n)) assert.equal(call(n), ALLOW, `syscall ${n}`);
    });

    it(`${arch}: another architecture's calls are not interpreted (the box's own filter refuses them)`, () => {
      const other = arch === "x64" ? AUDIT_ARCH.arm64 : AUDIT_ARCH.x64;
      assert.equal(run(program, { nr: nr("unlinkat", arch), arch: other }), ALLOW);
    });
  }

  it("x64: an x32 call is left to the box's own filter", () => {
    const program = buildPauseFilter("x64");
    assert.equal(run(program, { nr: nr("unlinkat") | X32_SYSCALL_BIT, arch: AUDIT_ARCH.x64 }), ALLOW);
  });
});

const hex = (s: string) => Buffer.from(s).toString("hex");

describe("the supervisor's lines", () => {
  it("reads a notice, paths hex-encoded (any byte in a name is data)", () => {
    const line = JSON.stringify({
      id: "18446744073709551615",
      pid: 42,
      sys: "rename",
      flags: 0,
      mode: 0,
      length: 0,
      paths: [
        { role: "from", inWorkdir: true, path: hex('a"b\nc'), exists: true, mode: 0o100644 },
        { role: "to", inWorkdir: false, path: hex("/tmp/x"), exists: false, mode: 0 },
      ],
    });
    const parsed = parsePauseLine(line);
    assert.equal(parsed?.kind, "notice");
    if (parsed?.kind !== "notice") return;
    assert.equal(parsed.notice.id, "18446744073709551615", "ids stay exact (64 bits)");
    assert.equal(parsed.notice.paths[0]!.path, 'a"b\nc');
    assert.equal(parsed.notice.paths[1]!.inWorkdir, false);
  });

  it("reads the events and refuses what is not a line of the supervisor's", () => {
    assert.deepEqual(parsePauseLine('{"event":"listening"}'), { kind: "event", event: "listening" });
    assert.deepEqual(parsePauseLine('{"event":"done","continued":3,"asked":1,"unresolved":0}'), {
      kind: "done",
      continued: 3,
      asked: 1,
      unresolved: 0,
    });
    assert.equal(parsePauseLine("not json"), undefined);
    assert.equal(parsePauseLine('{"id":"1; rm -rf /","paths":[]}'), undefined);
    assert.equal(parsePauseLine('{"id":"1:2:3","paths":[]}'), undefined);
  });

  it("reads an exec listener's ids (N:ID) and the tree a delete walks (hex)", () => {
    const parsed = parsePauseLine(
      JSON.stringify({ id: "3:18446744073709551615", pid: 1, sys: "unlink", paths: [], walk: hex("d i r") }),
    );
    assert.equal(parsed?.kind, "notice");
    if (parsed?.kind !== "notice") return;
    assert.equal(parsed.notice.id, "3:18446744073709551615");
    assert.equal(parsed.notice.walk, "d i r");
  });
});

const fsPolicy = (fs: unknown = {}) => gateSchema.parse({ fs }).fs;
const file = (p: string, extra: Partial<PauseTarget> = {}): PauseTarget => ({
  role: "target",
  inWorkdir: true,
  path: p,
  exists: true,
  mode: 0o100644,
  ...extra,
});
const notice = pauseNotice;

describe("the verdict on a paused call", () => {
  it("a delete of a pre-existing file asks (default), and after a yes its whiteout is looked for", () => {
    const v = judgePause(notice("unlink", [file("README.md")]), fsPolicy());
    assert.equal(v.decision, "ask");
    assert.deepEqual(v.changes, [{ op: "delete", path: "README.md", detail: undefined, decision: "ask" }]);
    assert.deepEqual(v.expect, [{ path: "README.md", kind: "gone" }]);
  });

  it("the policy's rules decide as at exit: allow flows, deny refuses at once", () => {
    const policy = fsPolicy({
      rules: [
        { path: "dist/**", decision: "allow" },
        { path: "migrations/**", ops: ["delete", "rename"], decision: "deny" },
      ],
    });
    assert.equal(judgePause(notice("unlink", [file("dist/a.js")]), policy).decision, "allow");
    assert.equal(judgePause(notice("unlink", [file("migrations/001.sql")]), policy).decision, "deny");
    // git's bookkeeping is allowed as files by default (judged as history at exit)
    assert.equal(judgePause(notice("unlink", [file(".git/refs/heads/old")]), fsPolicy()).decision, "allow");
  });

  it("rename away, rename over, exchange and no-replace", () => {
    const from = file("notes.txt", { role: "from" });
    const newTo = file("notes.bak", { role: "to", exists: false });
    const away = judgePause(notice("rename", [from, newTo]), fsPolicy());
    assert.deepEqual(
      away.changes.map((c) => [c.op, c.path, c.to]),
      [["rename", "notes.txt", "notes.bak"]],
    );
    assert.deepEqual(away.expect, [
      { path: "notes.txt", kind: "gone" },
      { path: "notes.bak", kind: "moved", from: "notes.txt" },
    ]);
    // a new file over a pre-existing one: the one replaced is an overwrite
    const over = judgePause(
      notice("rename", [file("tmp.new", { role: "from", exists: false }), file("README.md", { role: "to" })]),
      fsPolicy(),
    );
    assert.deepEqual(
      over.changes.map((c) => [c.op, c.path]),
      [["overwrite", "README.md"]],
    );
    // RENAME_NOREPLACE cannot replace; RENAME_EXCHANGE changes both
    const noReplace = judgePause(
      notice(
        "renameat2",
        [file("tmp.new", { role: "from", exists: false }), file("README.md", { role: "to" })],
        {
          flags: 1,
        },
      ),
      fsPolicy(),
    );
    assert.equal(noReplace.decision, "allow");
    const exchange = judgePause(
      notice("renameat2", [file("a", { role: "from" }), file("b", { role: "to" })], { flags: 2 }),
      fsPolicy(),
    );
    assert.deepEqual(
      exchange.changes.map((c) => c.op),
      ["rename", "overwrite"],
    );
    assert.deepEqual(exchange.expect, [
      { path: "a", kind: "moved", from: "b" },
      { path: "b", kind: "moved", from: "a" },
    ]);
    // out of the workdir: the destination is named as the box sees it, and not applied
    const out = judgePause(
      notice("rename", [from, file("/tmp/x", { role: "to", inWorkdir: false, exists: false })]),
      fsPolicy(),
    );
    assert.equal(out.changes[0]!.to, "/tmp/x (outside the workdir)");
    assert.deepEqual(out.expect, [{ path: "notes.txt", kind: "gone" }]);
  });

  it("a truncation (truncate, ftruncate, open with O_TRUNC, creat) is an overwrite; a symlink or directory is not judged here", () => {
    for (const sys of ["truncate", "open", "creat"] as const) {
      const v = judgePause(notice(sys, [file("data.csv")], { length: 3 }), fsPolicy());
      assert.equal(v.decision, "ask", sys);
      assert.equal(v.changes[0]!.op, "overwrite");
      assert.deepEqual(v.expect, [
        sys === "truncate"
          ? { path: "data.csv", kind: "truncated", length: 3 }
          : { path: "data.csv", kind: "rewritten" },
      ]);
    }
    assert.equal(
      judgePause(notice("open", [file("link", { mode: 0o120777 })]), fsPolicy()).decision,
      "allow",
    );
    assert.equal(
      judgePause(notice("truncate", [file("dir", { mode: 0o040755 })]), fsPolicy()).decision,
      "allow",
    );
  });

  it("chmod: the same mode flows; adding exec bits is its own kind, asked even where chmod is allowed", () => {
    const allowChmod = fsPolicy({ rules: [{ path: "**", ops: ["chmod"], decision: "allow" }] });
    assert.equal(judgePause(notice("chmod", [file("a.sh")], { mode: 0o644 }), fsPolicy()).decision, "allow");
    assert.equal(judgePause(notice("chmod", [file("a.sh")], { mode: 0o600 }), allowChmod).decision, "allow");
    const exec = judgePause(notice("chmod", [file("a.sh")], { mode: 0o755 }), allowChmod);
    assert.equal(exec.decision, "ask");
    assert.deepEqual(
      exec.changes.map((c) => [c.op, c.detail]),
      [["exec", "made executable: 644 → 755"]],
    );
    assert.deepEqual(exec.expect, [{ path: "a.sh", kind: "mode", mode: 0o755 }]);
    // a directory's x bits are not "made executable"
    const dir = judgePause(notice("chmod", [file("d", { mode: 0o040700 })], { mode: 0o755 }), fsPolicy());
    assert.equal(dir.changes[0]!.op, "chmod");
    // a deny rule is still stricter than exec's ask
    const deny = fsPolicy({ rules: [{ path: "bin/**", decision: "deny" }] });
    assert.equal(judgePause(notice("chmod", [file("bin/x")], { mode: 0o755 }), deny).decision, "deny");
  });

  it("nothing pre-existing in the workdir: nothing to judge (the supervisor answers those itself)", () => {
    const v = judgePause(notice("unlink", [file("/etc/x", { inWorkdir: false })]), fsPolicy());
    assert.equal(v.decision, "allow");
    assert.deepEqual(v.changes, []);
  });
});

describe("the tree a delete is asked about with", () => {
  it("is the walked directory when it contains the target, for deletes only", () => {
    assert.equal(pauseGroupOf(notice("unlink", [file("dir/sub/a")], { walk: "dir" })), "dir");
    assert.equal(
      pauseGroupOf(notice("rmdir", [file("dir/sub", { mode: 0o040755 })], { walk: "dir" })),
      "dir",
    );
    assert.equal(pauseGroupOf(notice("unlink", [file("dir/a")])), undefined, "no walk: on its own");
    assert.equal(pauseGroupOf(notice("unlink", [file("dir2/a")], { walk: "dir" })), undefined);
    assert.equal(pauseGroupOf(notice("unlink", [file("dir")], { walk: "dir" })), undefined);
    assert.equal(
      pauseGroupOf(notice("unlink", [file("dir/a", { exists: false })], { walk: "dir" })),
      undefined,
    );
    assert.equal(pauseGroupOf(notice("truncate", [file("dir/a")], { walk: "dir" })), undefined);
  });

  it("covers the directory itself and what is below it, nothing else", () => {
    assert.ok(isAtOrUnder("dir", "dir"));
    assert.ok(isAtOrUnder("dir/a/b", "dir"));
    assert.ok(!isAtOrUnder("dir-sibling/e", "dir"));
    assert.ok(!isAtOrUnder("dirx", "dir"));
    assert.ok(!isAtOrUnder("other.txt", "dir"));
  });
});
