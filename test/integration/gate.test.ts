/**
 * The approval gate, end to end, in real boxes, launched as root and as uid 65534:
 *   - the seed's test: a delete of an existing workdir file brings up a y/n prompt on the
 *     terminal (a real tmux pane: send-keys / capture-pane); n keeps the file, y deletes it;
 *   - a hijacked agent that skips every hook (direct syscalls from python and node, /bin/rm,
 *     git clean -fdx, chmod, truncation, renames) cannot change a pre-existing workdir file without
 *     approval: with a denying approver the workdir is byte-for-byte unchanged;
 *   - CI mode (no terminal, no approver): denied with a clear message, the run goes on;
 *   - read-only commands never prompt;
 *   - the agent hooks (Claude Code, Codex) and their read-only settings.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  asMode,
  boxInTmux,
  chownToMode,
  type Fixture,
  FOURWALL,
  MODES,
  makeFixture,
  readAudit,
  sh,
  USER_UID,
} from "../helpers/box.js";
import {
  type DockerBoxes,
  dockerdUnavailable,
  dockerFixture,
  startDockerBoxes,
} from "../helpers/docker-box.js";

/** A directory outside the workdir where a planted program leaves its mark when the host runs it. */
function hostMarkers(fx: Fixture): string {
  const dir = path.join(fx.base, "markers");
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o777);
  return dir;
}

function writePackage(dir: string, fx: Fixture): void {
  const file = path.join(dir, "package.json");
  writeFileSync(file, '{"name":"p","version":"1.0.0","scripts":{"test":"echo tested"}}\n');
  chownToMode(fx, file);
}

/** The workdir's owner runs `npm test` in `dir` on the host: whether a planted program ran. */
function hostNpmTest(fx: Fixture, dir: string): boolean {
  const marker = path.join(fx.base, "markers", "npm");
  rmSync(marker, { force: true });
  const [program, ...args] = asMode(fx.mode, ["npm", "test"]);
  const r = spawnSync(program!, args, {
    cwd: dir,
    encoding: "utf8",
    timeout: 120_000,
    env: { ...fx.env, npm_config_update_notifier: "false", npm_config_cache: path.join(fx.home, ".npm") },
  });
  assert.match(r.stdout, /tested/, `npm test ran: ${r.stdout}${r.stderr}`);
  return existsSync(marker);
}

/** The workdir's owner runs `git -p branch -a` in docs/ on the host (on a pty): whether a planted pager ran. */
function hostGitPager(fx: Fixture): boolean {
  const marker = path.join(fx.base, "markers", "git");
  rmSync(marker, { force: true });
  const [program, ...args] = asMode(fx.mode, ["script", "-qc", "git -p branch -a", "/dev/null"]);
  spawnSync(program!, args, {
    cwd: path.join(fx.workdir, "docs"),
    stdio: ["ignore", "ignore", "ignore"],
    timeout: 60_000,
    env: { ...fx.env, PAGER: "cat" },
  });
  return existsSync(marker);
}

/** Every entry of a tree with its type, mode and content hash: "byte-for-byte unchanged" made checkable. */
function treeDigest(dir: string): string {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = path.join(rel, name);
      const p = path.join(dir, r);
      const s = lstatSync(p);
      const mode = (s.mode & 0o7777).toString(8);
      if (s.isDirectory()) {
        out.push(`d ${r} ${mode} ${s.uid}`);
        walk(r);
      } else if (s.isSymbolicLink()) out.push(`l ${r} ${readlinkSync(p)}`);
      else out.push(`f ${r} ${mode} ${s.uid} ${createHash("sha256").update(readFileSync(p)).digest("hex")}`);
    }
  };
  walk("");
  return out.join("\n");
}

/** A workdir with things worth destroying: tracked and untracked files, a subdirectory, a script. */
function seedWorkdir(fx: Fixture, ownedByUser = false): void {
  const w = fx.workdir;
  mkdirSync(path.join(w, "src"), { recursive: true });
  writeFileSync(path.join(w, "src", "app.ts"), "export const answer = 42;\n");
  writeFileSync(path.join(w, "notes.txt"), "important notes\n");
  writeFileSync(path.join(w, "data.bin"), Buffer.alloc(4096, 7));
  writeFileSync(path.join(w, "run.sh"), "#!/bin/sh\necho run\n");
  chmodSync(path.join(w, "run.sh"), 0o755);
  const git = (...args: string[]) => {
    const r = spawnSync("git", ["-c", "safe.directory=*", "-C", w, ...args], {
      env: { ...process.env, HOME: fx.home },
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
  };
  git("add", "README.md", "src");
  git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init");
  if (fx.mode === "user" || ownedByUser) spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, w]);
}

/** What a hijacked agent does when it ignores every hook: straight to the kernel. */
const HIJACK = String.raw`
set +e
/bin/rm -f notes.txt
rm -rf src
python3 - <<'EOF'
import os
for f, op in [("README.md", "unlink"), ("data.bin", "truncate"), ("run.sh", "rename")]:
    try:
        if op == "unlink": os.unlink(f)
        elif op == "truncate": os.truncate(f, 0)
        else: os.rename(f, "moved.sh")
    except OSError as e: print("python", op, f, e)
fd = os.open(".gitignore-x", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
os.close(fd)
EOF
node -e '
const fs = require("fs");
for (const [op, f] of [["unlink","notes.txt"],["trunc","data.bin"],["write","README.md"],["chmod","run.sh"]]) {
  try {
    if (op === "unlink") fs.unlinkSync(f);
    else if (op === "trunc") fs.truncateSync(f, 0);
    else if (op === "write") fs.writeFileSync(f, "pwned\n");
    else fs.chmodSync(f, 0o600);
  } catch (e) { console.log("node", op, f, e.code); }
}'
git clean -fdx -q
chmod 000 README.md 2>/dev/null
echo "hijack done: $(ls | tr '\n' ' ')"
`;

for (const mode of MODES) {
  describe(`approval gate (${mode})`, () => {
    it("a hijacked agent (python, node, /bin/rm, git clean -fdx) cannot change a pre-existing file: denied at the action, the workdir is byte-for-byte unchanged", async () => {
      const fx = makeFixture(mode);
      seedWorkdir(fx);
      const before = treeDigest(fx.workdir);
      const r = await sh(fx, HIJACK, { flags: ["--approver", "exit 1"], timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /hijack done: /);
      // the pause refused each call: inside the box the files are still there
      assert.match(
        r.stdout.split("hijack done:")[1] ?? "",
        /notes\.txt/,
        "the delete was refused in the box",
      );
      assert.match(r.stdout, /python unlink README\.md \[Errno 13\] Permission denied/);
      assert.equal(treeDigest(fx.workdir), before, `the workdir changed:\n${r.stderr}`);
    });

    it("the same hijack without the pause (the layer alone, as on the other runtimes): the box sees its changes, the workdir is unchanged", async () => {
      const fx = makeFixture(mode);
      seedWorkdir(fx);
      const before = treeDigest(fx.workdir);
      const r = await sh(fx, HIJACK, {
        weaken: ["pause"],
        weakFlags: ["--approver", "exit 1"],
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /hijack done: /, "inside the box the agent saw its changes happen");
      assert.doesNotMatch(
        r.stdout.split("hijack done:")[1] ?? "",
        /notes\.txt|data\.bin/,
        "inside the box the files were gone",
      );
      assert.equal(treeDigest(fx.workdir), before, `the workdir changed:\n${r.stderr}`);
      assert.match(r.stderr, /kept the originals of \d+ file\(s\)/);
    });

    it("the same hijack with an approving approver: the changes are applied, new files too", async () => {
      const fx = makeFixture(mode);
      seedWorkdir(fx);
      const audit = path.join(fx.base, "audit.jsonl");
      chownToMode(fx, fx.base);
      const r = await sh(fx, `${HIJACK}\necho fresh > fresh.txt`, {
        flags: ["--approver", "cat > /dev/null; exit 0", "--audit", audit],
        timeoutMs: 60_000,
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(existsSync(path.join(fx.workdir, "notes.txt")), false);
      assert.equal(existsSync(path.join(fx.workdir, "src")), false);
      assert.equal(readFileSync(path.join(fx.workdir, "fresh.txt"), "utf8"), "fresh\n");
      const events = readAudit(audit);
      const decision = events.find((e) => e.wall === "gate" && e.event === "decision" && e.kind === "fs");
      assert.equal(decision?.decision, "allow");
      assert.equal(decision?.by, "approver-command");
      // approved at the action (the pause) or, for what slipped past it, at exit (the review)
      const approvedDeletes = events.flatMap((e) =>
        e.event === "change-set"
          ? e.applied
          : e.event === "request" && e.via === "pause" && e.kind === "fs"
            ? e.changes
            : [],
      );
      assert.ok(
        approvedDeletes.some(
          (c: { op: string; path: string }) => c.op === "delete" && c.path === "notes.txt",
        ),
        JSON.stringify(events.filter((e) => e.wall === "gate")),
      );
      // new files land owned by the workdir's owner, never by the box's uid
      assert.equal(lstatSync(path.join(fx.workdir, "fresh.txt")).uid, lstatSync(fx.workdir).uid);
    });

    it("a new git repository anywhere in the workdir is held: refused, its hooks never reach the host; without the gate they would", async () => {
      const plant =
        "git init -q lib/sub && printf '#!/bin/sh\\ntouch pwned\\n' > lib/sub/.git/hooks/post-checkout && " +
        "git -C lib/sub config core.fsmonitor 'touch pwned' && echo 'gitdir: /tmp/x' > .gitdir-probe && mkdir -p wt && cp .gitdir-probe wt/.git && echo ok";
      const held = makeFixture(mode);
      const r = await sh(held, plant, { flags: ["--approver", "exit 1"], timeoutMs: 60_000 });
      assert.match(r.stdout, /ok/, r.stderr);
      assert.equal(existsSync(path.join(held.workdir, "lib/sub/.git")), false, "the new repository was held");
      assert.equal(existsSync(path.join(held.workdir, "wt/.git")), false, "the new pointer file was held");
      // The same run with the gate's rules all "allow" (no layer, no review): the repository lands.
      const open = makeFixture(mode);
      writeFileSync(
        path.join(open.workdir, "fourwall.yaml"),
        "gate:\n  fs:\n    default: allow\n    rules: []\n",
      );
      const leak = await sh(open, plant, { timeoutMs: 60_000, cwd: open.workdir });
      assert.match(leak.stdout, /ok/, leak.stderr);
      assert.equal(
        existsSync(path.join(open.workdir, "lib/sub/.git/hooks/post-checkout")),
        true,
        "without the gate the hook lands: the check can fail",
      );
    });

    it("tool config that makes host tools run programs cannot be planted at the root (.npmrc script-shell, .yarnrc.yml, .cargo, mise.toml): `npm test` on the host runs nothing planted; without the persistence guard it does", async () => {
      const plant = (fx: Fixture) => {
        const markers = hostMarkers(fx);
        writeFileSync(
          path.join(fx.workdir, "fourwall.yaml"),
          "gate:\n  fs:\n    default: allow\n    rules: []\n",
        );
        writePackage(fx.workdir, fx);
        return (
          `mkdir -p .cache-x && printf '#!/bin/sh\\ntouch ${markers}/npm\\nexec /bin/sh "$@"\\n' > .cache-x/sh && chmod +x .cache-x/sh\n` +
          `for f in .npmrc .yarnrc.yml .cargo/config.toml mise.toml .mise.toml .tool-versions; do\n` +
          `  (mkdir -p "$(dirname "$f")" && echo "script-shell=$PWD/.cache-x/sh" > "$f") 2>/dev/null && echo "WROTE $f"\n` +
          "done\necho planted"
        );
      };
      const whole = makeFixture(mode);
      const r = await sh(whole, plant(whole), { timeoutMs: 60_000 });
      assert.match(r.stdout, /planted/, r.stderr);
      assert.doesNotMatch(r.stdout, /WROTE/, "every root tool config is read-only in the box");
      for (const f of [".npmrc", ".yarnrc.yml", ".cargo", "mise.toml", ".mise.toml", ".tool-versions"])
        assert.equal(existsSync(path.join(whole.workdir, f)), false, `${f} not on the host`);
      assert.equal(hostNpmTest(whole, whole.workdir), false, "npm test on the host ran nothing planted");
      // The broken box: no persistence guard (the same allow-all gate): .npmrc lands and npm runs it.
      const weak = makeFixture(mode);
      const w = await sh(weak, plant(weak), { timeoutMs: 60_000, weaken: ["persistence"] });
      assert.match(w.stdout, /WROTE \.npmrc/, w.stderr);
      assert.equal(hostNpmTest(weak, weak.workdir), true, "without the guard npm runs the planted shell");
    });

    it("a nested tool config and a bare git repository the box makes (no .git in the path) are held: refused, npm test and git on the host run nothing planted; with the gate open they would, and fourwall names them", async () => {
      const plant = (fx: Fixture) => {
        const markers = hostMarkers(fx);
        mkdirSync(path.join(fx.workdir, "pkg"));
        writePackage(path.join(fx.workdir, "pkg"), fx);
        mkdirSync(path.join(fx.workdir, "docs"));
        writeFileSync(path.join(fx.workdir, "docs", "index.md"), "# docs\n");
        chownToMode(fx, path.join(fx.workdir, "pkg"));
        chownToMode(fx, path.join(fx.workdir, "docs"));
        chownToMode(fx, path.join(fx.workdir, "docs", "index.md"));
        return (
          `mkdir -p .cache-x && printf '#!/bin/sh\\ntouch ${markers}/npm\\nexec /bin/sh "$@"\\n' > .cache-x/sh && chmod +x .cache-x/sh && ` +
          `echo "script-shell=$PWD/.cache-x/sh" > pkg/.npmrc && mkdir -p pkg/.cargo && echo '[build]' > pkg/.cargo/config.toml && ` +
          "mkdir -p docs/objects docs/refs/heads && echo 'ref: refs/heads/main' > docs/HEAD && " +
          `printf '[core]\\n\\tbare = true\\n\\tpager = touch ${markers}/git; cat\\n' > docs/config && echo planted`
        );
      };
      const held = makeFixture(mode);
      const r = await sh(held, plant(held), { flags: ["--approver", "exit 1"], timeoutMs: 60_000 });
      assert.match(r.stdout, /planted/, r.stderr);
      for (const f of ["pkg/.npmrc", "pkg/.cargo/config.toml", "docs/HEAD"])
        assert.equal(existsSync(path.join(held.workdir, f)), false, `${f} held`);
      assert.equal(hostNpmTest(held, path.join(held.workdir, "pkg")), false, "npm test ran nothing planted");
      assert.equal(hostGitPager(held), false, "git in docs/ is the workdir's repository, not the box's");
      const open = makeFixture(mode);
      writeFileSync(
        path.join(open.workdir, "fourwall.yaml"),
        "gate:\n  fs:\n    default: allow\n    rules: []\n",
      );
      const leak = await sh(open, plant(open), { timeoutMs: 60_000 });
      assert.match(leak.stdout, /planted/, leak.stderr);
      assert.equal(hostNpmTest(open, path.join(open.workdir, "pkg")), true, "with the gate open npm runs it");
      assert.equal(hostGitPager(open), true, "with the gate open git runs the box's pager");
      assert.match(
        leak.stderr,
        /created git repositories[\s\S]*docs/,
        "the host-facing warning names the bare repository",
      );
      assert.match(leak.stderr, /created tool config[\s\S]*pkg\/\.npmrc/, "and the tool config");
    });

    it("CI mode (no terminal, no approver): gated actions are denied with a clear message and the run continues", async () => {
      const fx = makeFixture(mode);
      seedWorkdir(fx);
      const before = treeDigest(fx.workdir);
      const r = await sh(
        fx,
        `node ${FOURWALL} gate exec -- rm notes.txt; echo "exec status $?"; rm README.md; echo new > made.txt; echo continued`,
      );
      assert.equal(r.code, 0);
      assert.match(r.stdout, /exec status 126/);
      assert.match(r.stdout, /continued/);
      assert.match(
        r.stderr,
        /fourwall gate: denied \(no-approver\): denied: nobody to ask \(no terminal, no --approver, no --inbox\)/,
      );
      // refused at the action (the pause), or kept at exit (the layer alone)
      assert.match(
        r.stderr,
        /kept the originals of 1 file\(s\).*delete README\.md|fs delete README\.md: denied: nobody to ask/,
      );
      assert.equal(readFileSync(path.join(fx.workdir, "made.txt"), "utf8"), "new\n", "new files still flow");
      writeFileSync(path.join(fx.workdir, "made.txt"), "");
      spawnSync("rm", [path.join(fx.workdir, "made.txt")]);
      assert.equal(treeDigest(fx.workdir), before);
    });

    it("read-only commands never prompt (the approver would record any question)", async () => {
      const fx = makeFixture(mode);
      seedWorkdir(fx);
      const marker = path.join(fx.base, "asked");
      chownToMode(fx, fx.base);
      const cmds = [
        "ls -la",
        "cat README.md",
        "grep -r answer src",
        "git status",
        "git diff",
        "git log --oneline",
        "rg answer",
        "find . -name '*.ts'",
        "find src -type f | xargs wc -l",
      ];
      const script = cmds
        .map((c) => `node ${FOURWALL} gate exec -c "${c}" >/dev/null || echo "FAILED: ${c}"`)
        .join("\n");
      const r = await sh(fx, script, { flags: ["--approver", `touch ${marker}; exit 1`], timeoutMs: 90_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stdout, /FAILED/, r.stdout + r.stderr);
      assert.equal(existsSync(marker), false, "nobody was asked");
    });

    it("gate exec asks before running: the approver's yes runs the command, its no does not", async () => {
      const fx = makeFixture(mode);
      const yes = await sh(
        fx,
        `node ${FOURWALL} gate exec -- sh -c 'echo ran-it; touch t'; echo "status $?"`,
        { flags: ["--approver", "exit 0"] },
      );
      assert.match(yes.stdout, /ran-it\nstatus 0/, `${yes.code} ${yes.stderr}`);
      const no = await sh(
        fx,
        `node ${FOURWALL} gate exec -- sh -c 'echo ran-it; touch t'; echo "status $?"`,
        { flags: ["--approver", "exit 3"] },
      );
      assert.doesNotMatch(no.stdout, /ran-it/);
      assert.match(no.stdout, /status 126/);
      assert.match(no.stderr, /denied \(approver-command\)/);
    });

    it("the Claude Code and Codex hooks answer in their protocols; the settings carrying them are read-only", async () => {
      const fx = makeFixture(mode);
      const claudeIn = JSON.stringify({
        hook_event_name: "PreToolUse",
        tool_name: "Bash",
        tool_input: { command: "rm -rf src" },
        cwd: fx.workdir,
      });
      const readIn = JSON.stringify({
        hook_event_name: "PreToolUse",
        tool_name: "Bash",
        tool_input: { command: "git status" },
        cwd: fx.workdir,
      });
      const codexIn = JSON.stringify({
        tool_name: "Bash",
        tool_input: { command: ["bash", "-lc", "git push --force"] },
        cwd: fx.workdir,
      });
      const script = [
        `echo '${claudeIn}' | node ${FOURWALL} gate claude-hook; echo "claude status $?"`,
        `echo '${readIn}' | node ${FOURWALL} gate claude-hook; echo "read status $?"`,
        `echo '${codexIn}' | node ${FOURWALL} gate codex-hook; echo "codex status $?"`,
        `grep -c 'gate claude-hook' ~/.claude/settings.json; echo tamper >> ~/.claude/settings.json && echo WRITABLE`,
        `grep -c 'gate codex-hook' ~/.codex/hooks.json`,
      ].join("\n");
      mkdirSync(path.join(fx.home, ".claude"), { recursive: true });
      writeFileSync(
        path.join(fx.home, ".claude", "settings.json"),
        JSON.stringify({ model: "keep-me", disableAllHooks: true }),
      );
      mkdirSync(path.join(fx.home, ".codex"), { recursive: true });
      chownToMode(fx, path.join(fx.home, ".claude"));
      chownToMode(fx, path.join(fx.home, ".claude", "settings.json"));
      chownToMode(fx, path.join(fx.home, ".codex"));
      const r = await sh(fx, script, {
        flags: ["--preset", "claude-code", "--preset", "codex", "--approver", "exit 1"],
      });
      const lines = r.stdout.trim().split("\n");
      const claude = JSON.parse(lines[0]!);
      assert.equal(claude.hookSpecificOutput.hookEventName, "PreToolUse");
      assert.equal(claude.hookSpecificOutput.permissionDecision, "deny");
      assert.match(claude.hookSpecificOutput.permissionDecisionReason, /denied/);
      assert.equal(lines[1], "claude status 0");
      assert.equal(
        lines[2],
        "read status 0",
        "a read-only command: no opinion, Claude's own permissions apply",
      );
      assert.equal(JSON.parse(lines[3]!).hookSpecificOutput.permissionDecision, "deny");
      assert.equal(lines[4], "codex status 2");
      assert.equal(lines[5], "1", "the user's settings carry fourwall's hook");
      assert.doesNotMatch(r.stdout, /WRITABLE/);
      assert.equal(lines.at(-1), "1");
      assert.match(
        readFileSync(path.join(fx.home, ".claude", "settings.json"), "utf8"),
        /keep-me/,
        "the host file is untouched",
      );
    });
  });
}

for (const mode of MODES) {
  describe(`approval gate on a real terminal (${mode}, tmux)`, () => {
    it("the seed's test: deleting an existing file brings a y/n prompt; n keeps it", async () => {
      const fx = makeFixture(mode);
      const tmux = boxInTmux(fx, "rm README.md && echo deleted-in-box || echo refused-in-box");
      try {
        const screen = await tmux.waitFor(/allow\?/);
        // asked at the moment of the delete (the pause), or at exit where there is none
        assert.match(screen, /fourwall gate · box \w+ · fs \(via (pause|change-set)\)/);
        assert.match(screen, /delete\s+README\.md/);
        assert.match(screen, new RegExp(`in\\s+${fx.workdir.replace(/[/.]/g, "\\$&")}`));
        assert.match(screen, /\[y\]es\s+\[n\]o/);
        assert.equal(
          existsSync(path.join(fx.workdir, "README.md")),
          true,
          "nothing applied while the question is open",
        );
        tmux.keys("n");
        const end = await tmux.waitFor(/BOX-EXIT=\d+/);
        assert.match(end, /refused-in-box|deleted-in-box/);
        assert.match(end, /BOX-EXIT=0/);
        assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "# project\n");
      } finally {
        tmux.kill();
      }
    });

    it("the seed's test: answering y deletes it", async () => {
      const fx = makeFixture(mode);
      const tmux = boxInTmux(fx, "rm README.md");
      try {
        await tmux.waitFor(/allow\?/);
        tmux.keys("y");
        await tmux.waitFor(/BOX-EXIT=0/);
        assert.equal(existsSync(path.join(fx.workdir, "README.md")), false);
      } finally {
        tmux.kill();
      }
    });

    it("gate exec prompts at the moment, with the command, the directory and why; a = always for this box", async () => {
      const fx = makeFixture(mode);
      const t0 = Date.now();
      const tmux = boxInTmux(
        fx,
        `node ${FOURWALL} gate exec -- touch a.txt; echo "first $?"; node ${FOURWALL} gate exec -- touch a.txt; echo "second $?"`,
      );
      try {
        const screen = await tmux.waitFor(/allow\?/);
        const promptMs = Date.now() - t0;
        assert.match(screen, /command\s+touch a\.txt/);
        assert.match(screen, /why\s+touch is not a command the gate knows to be read-only/);
        assert.match(screen, /\[a\]lways for this box/);
        tmux.keys("a");
        const end = await tmux.waitFor(/BOX-EXIT=\d+/);
        assert.match(end, /first 0/);
        assert.match(end, /second 0/);
        assert.equal((end.match(/allow\?/g) ?? []).length, 1, "always: asked once");
        process.stderr.write(`# prompt visible ${promptMs} ms after the box was started\n`);
      } finally {
        tmux.kill();
      }
    });
  });
}

// Docker: the daemon binds from the host's mount namespace, so the layer is mounted on the host.
describe("approval gate on the docker runtime (root, fourwall's tools image)", {
  skip: dockerdUnavailable() ?? false,
}, () => {
  let docker: DockerBoxes | undefined;
  before(async () => {
    docker = await startDockerBoxes();
  });
  after(async () => docker?.stop());
  const hijack = (approver: string, extra = "") => {
    const fx = dockerFixture("root");
    seedWorkdir(fx, true);
    const before = treeDigest(fx.workdir);
    const run = sh(fx, `${HIJACK}${extra}`, {
      flags: ["-r", "docker", ...docker!.imageFlags, "--approver", approver],
      env: docker!.env,
      timeoutMs: 60_000,
    });
    return { fx, before, run };
  };

  it("the hijack, denied: the workdir is byte-for-byte unchanged, and no layer stays mounted", async () => {
    const { fx, before, run } = hijack("exit 1");
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /hijack done: /);
    assert.equal(treeDigest(fx.workdir), before, `the workdir changed:\n${r.stderr}`);
    assert.match(r.stderr, /kept the originals of \d+ file\(s\)/);
    // this box's layer (other boxes may run on the machine): the one over this workdir
    assert.ok(
      !readFileSync("/proc/self/mountinfo", "utf8").includes(`lowerdir=${fx.workdir},`),
      "the layer is unmounted",
    );
  });

  it("the hijack, approved: the changes and the new files are applied, owned by the workdir's owner", async () => {
    const { fx, run } = hijack("cat > /dev/null; exit 0", "\necho fresh > fresh.txt");
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(path.join(fx.workdir, "notes.txt")), false);
    assert.equal(readFileSync(path.join(fx.workdir, "fresh.txt"), "utf8"), "fresh\n");
    assert.equal(lstatSync(path.join(fx.workdir, "fresh.txt")).uid, USER_UID);
  });
});
