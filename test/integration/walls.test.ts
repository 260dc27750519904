/**
 * The isolation and filesystem walls, attacked from inside a real box, for both ways fourwall is
 * launched (root, and an ordinary user). Every check also runs against a deliberately broken box
 * (test/helpers/weak-box.ts) and must see the hole there: a check that cannot fail proves nothing.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type Fixture,
  MODES,
  type Mode,
  makeFixture,
  type Result,
  SECRET,
  sh,
  USER_UID,
} from "../helpers/box.js";
import { type HostCanaries, startHostCanaries } from "../helpers/host-canaries.js";

interface Check {
  name: string;
  /** What the deliberately broken box lacks, per mode (absent: no broken variant in that mode). */
  weaken: Partial<Record<Mode, string[]>>;
  script: (fx: Fixture) => string;
  /** Given the box's result and the host afterwards: undefined when the wall held, else the hole. */
  hole: (r: Result, fx: Fixture) => string | undefined;
  prepare?: (fx: Fixture) => void;
  /** Launch modes where the wall applies (default: both), with the reason it does not elsewhere. */
  onlyIn?: { modes: Mode[]; why: string };
}

const both = (w: string[]) => ({ root: w, user: w });
const leaks = (r: Result) => (r.stdout.includes(SECRET) ? "a planted secret was read" : undefined);

// Host-side canaries the box must not reach.
let canaries: HostCanaries;
let loopbackPort = 0;
let socketPaths: string[] = [];

const checks: Check[] = [
  {
    name: "cannot write to ~/.ssh",
    weaken: both(["home-writable"]),
    script: () => "echo pwn > ~/.ssh/pwn; mkdir -p ~/.ssh; echo pwn > ~/.ssh/authorized_keys",
    hole: (_r, fx) =>
      existsSync(path.join(fx.home, ".ssh/pwn")) || existsSync(path.join(fx.home, ".ssh/authorized_keys"))
        ? "a file appeared in the host's ~/.ssh"
        : undefined,
  },
  {
    name: "cannot read planted secrets (~/.ssh, ~/.aws, ~/.config/gcloud, ~/.netrc)",
    weaken: both(["secrets"]),
    script: () =>
      "cat ~/.ssh/id_* ~/.aws/credentials ~/.config/gcloud/credentials.db ~/.netrc 2>&1; ls -a ~ ~/.ssh 2>&1",
    hole: leaks,
  },
  {
    name: "cannot read .env in the workdir",
    weaken: both(["secrets"]),
    script: () => "cat .env",
    hole: leaks,
  },
  {
    name: "gets no secret variables from the host environment",
    weaken: both(["env"]),
    script: () => "env",
    hole: (r) =>
      r.stdout.includes(SECRET) || r.stdout.includes("SSH_AUTH_SOCK")
        ? "a host secret variable passed"
        : undefined,
  },
  {
    name: "cannot change or delete files outside the workdir",
    weaken: both(["home-writable"]),
    script: (fx) =>
      `echo changed > ${fx.outside}; rm -f ${fx.outside} ~/.bashrc; echo x > /etc/fourwall-pwn; echo x > /usr/fourwall-pwn`,
    hole: (_r, fx) =>
      !existsSync(fx.outside) ||
      readFileSync(fx.outside, "utf8") !== "outside the workdir\n" ||
      existsSync("/etc/fourwall-pwn")
        ? "a host file outside the workdir changed"
        : undefined,
  },
  {
    name: "cannot write through a symlink leading out of the workdir",
    weaken: both(["home-writable"]),
    script: () => "ln -sf ~/.bashrc link && echo evil >> link; ln -sf ~/.ssh/id_ed25519 key && cat key",
    hole: (r, fx) =>
      leaks(r) ??
      (readFileSync(path.join(fx.home, ".bashrc"), "utf8").includes("evil")
        ? "wrote ~/.bashrc through a symlink"
        : undefined),
  },
  {
    name: "cannot reach the host through /proc/<pid>/root or cwd",
    weaken: both(["secrets", "proc"]),
    script: (fx) =>
      `for p in /proc/*/root /proc/*/cwd; do cat $p${fx.home}/.ssh/id_ed25519 2>/dev/null; done; cat /proc/1/root${fx.home}/.ssh/id_ed25519 2>&1`,
    hole: leaks,
  },
  {
    name: "cannot plant git hooks, git config, MCP servers or editor tasks",
    weaken: both(["persistence"]),
    script: () =>
      "mkdir -p .git/hooks; echo evil > .git/hooks/pre-commit; echo '[core] hooksPath=/tmp' >> .git/config; " +
      `echo '{"mcpServers":{"x":{"command":"sh"}}}' > .mcp.json; mkdir -p .vscode; echo '{}' > .vscode/tasks.json; echo evil > .envrc`,
    hole: (_r, fx) => {
      const w = (p: string) => path.join(fx.workdir, p);
      if (existsSync(w(".git/hooks/pre-commit"))) return "created .git/hooks/pre-commit";
      if (readFileSync(w(".git/config"), "utf8").includes("hooksPath")) return "changed .git/config";
      if (existsSync(w(".mcp.json")) || existsSync(w(".vscode")) || existsSync(w(".envrc")))
        return "created a persistence file";
      return undefined;
    },
  },
  {
    name: "has no capabilities, no_new_privs and a seccomp filter",
    weaken: { root: ["caps", "seccomp"], user: ["seccomp"] },
    script: () => "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
    hole: (r) => {
      if (!/CapEff:\s*0+\n/.test(r.stdout)) return "capabilities held";
      if (!/NoNewPrivs:\s*1/.test(r.stdout)) return "no_new_privs off";
      if (!/Seccomp:\s*2/.test(r.stdout)) return "no seccomp filter";
      return undefined;
    },
  },
  {
    name: "runs as an unprivileged uid: root-only host files stay unreadable",
    weaken: { root: ["identity"] },
    script: () => "head -c 64 /etc/shadow && echo READ-SHADOW",
    hole: (r) => (r.stdout.includes("READ-SHADOW") ? "read /etc/shadow" : undefined),
  },
  {
    name: "cannot see host processes",
    weaken: both(["proc"]),
    script: () => "cat /proc/1/comm; ls /proc | grep -c '^[0-9]'",
    hole: (r) => {
      const [comm, count] = r.stdout.trim().split("\n");
      return comm !== "bwrap" || Number(count) > 10
        ? `sees host processes (pid 1 is ${comm}, ${count} pids)`
        : undefined;
    },
  },
  {
    name: "cannot make new namespaces (unshare, user namespaces)",
    weaken: both(["seccomp", "userns"]),
    script: () => "unshare -U true && echo UNSHARED; unshare -r -n true && echo UNSHARED",
    hole: (r) => (r.stdout.includes("UNSHARED") ? "created a namespace" : undefined),
  },
  {
    name: "cannot reach host unix sockets (/run, /tmp)",
    weaken: both(["sockets"]),
    script: () =>
      `/usr/bin/python3 -c '
import socket
for p in ${JSON.stringify(socketPaths)}:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p); print("CONNECTED", p)
    except OSError as e:
        print("refused", p, e.errno)
'`,
    hole: (r) => (r.stdout.includes("CONNECTED") ? "connected to a host socket" : undefined),
  },
  {
    name: "cannot reach the host's loopback services",
    weaken: both(["net"]),
    script: () => `curl -s -m 3 http://127.0.0.1:${loopbackPort}/ ; ip -o link | grep -v ' lo:' | wc -l`,
    hole: (r) => (r.stdout.includes("loopback-canary") ? "reached a host loopback service" : undefined),
  },
  {
    name: "a fork bomb is bounded by the box's pids limit",
    // as root the box's cgroup caps pids too: the broken box lacks both layers
    weaken: { root: ["rlimits", "cgroup"], user: ["rlimits"] },
    prepare: (fx) =>
      writeFileSync(path.join(fx.workdir, "fourwall.yaml"), "isolation:\n  limits:\n    pids: 64\n"),
    script: () =>
      `/usr/bin/python3 -c '
import os, time
n = 0
for i in range(300):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2); os._exit(0)
    n += 1
print("forked", n)
'`,
    hole: (r) => {
      const n = Number(/forked (\d+)/.exec(r.stdout)?.[1] ?? "NaN");
      return !(n < 100) ? `forked ${n} processes past a limit of 64` : undefined;
    },
  },
  {
    name: "memory across many processes is capped for the whole box (cgroup, root mode)",
    weaken: { root: ["cgroup"] },
    onlyIn: {
      modes: ["root"],
      why: "an unprivileged launcher gets no cgroup on this host (no delegation): rlimits only",
    },
    prepare: (fx) =>
      writeFileSync(path.join(fx.workdir, "fourwall.yaml"), "isolation:\n  limits:\n    memory: 300MiB\n"),
    script: () =>
      'for i in 1 2 3 4; do /usr/bin/python3 -c \'import time; b = b"x" * (200 << 20); time.sleep(1.5); print("held")\' & done; wait',
    hole: (r) => {
      const held = (r.stdout.match(/held/g) ?? []).length;
      return held === 4 ? "four processes held 800 MiB under a 300 MiB cap" : undefined;
    },
  },
];

before(async () => {
  canaries = await startHostCanaries("it");
  ({ loopbackPort, socketPaths } = canaries);
});
after(() => canaries.close());

for (const mode of MODES) {
  describe(`walls hold (${mode === "root" ? "launched as root" : `launched as uid ${USER_UID}`})`, () => {
    for (const check of checks) {
      if (check.onlyIn && !check.onlyIn.modes.includes(mode)) {
        it(check.name, (t) => t.skip(check.onlyIn!.why));
        continue;
      }
      it(check.name, async () => {
        const fx = makeFixture(mode);
        check.prepare?.(fx);
        const r = await sh(fx, check.script(fx));
        assert.equal(r.stderr.includes("fourwall:"), false, `fourwall failed: ${r.stderr}`);
        assert.equal(check.hole(r, fx), undefined, `${check.name}\n${r.stdout}\n${r.stderr}`);
      });
      const weaken = check.weaken[mode];
      if (weaken) {
        it(`${check.name} — the check sees the hole in a box without ${weaken.join(" + ")}`, async () => {
          const fx = makeFixture(mode);
          check.prepare?.(fx);
          const r = await sh(fx, check.script(fx), { weaken });
          assert.notEqual(
            check.hole(r, fx),
            undefined,
            `the broken box was not caught\n${r.stdout}\n${r.stderr}`,
          );
        });
      }
    }

    it("writes in the workdir land on the host, owned by the workdir's owner", async () => {
      const fx = makeFixture(mode);
      const r = await sh(fx, "echo made-in-box > out.txt && mkdir -p sub && echo y > sub/f && cat out.txt");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(readFileSync(path.join(fx.workdir, "out.txt"), "utf8"), "made-in-box\n");
      assert.equal(statSync(path.join(fx.workdir, "out.txt")).uid, mode === "root" ? 0 : USER_UID);
    });
  });
}
