/**
 * No trace on the host (issue 12), launched as root and as uid 65534: the read-only placeholders
 * for persistence files that do not exist yet (.mcp.json, .envrc, .vscode/, .gitmodules,
 * .git/commondir, …) stand in the box's copy-on-write layer only — also when the gate's policy
 * asks nothing (the layer then only carries them: every change flows, nothing is asked). The box
 * sees them and cannot write them; its `git add -A` does not stage them; the host's workdir and its
 * .git never have them (listings and `git status --ignored` unchanged while the box runs), and
 * nothing is left after the run, nor after fourwall is SIGKILLed. Each check also runs against a
 * box that stands them on the host the old way (weak-box.ts --weaken host-placeholders) and sees
 * the hole; a box without the persistence guard writes .mcp.json through. Runtimes: namespaces,
 * gVisor and the microVM in both modes, docker as root.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { which } from "../../src/core/paths.js";
import { vmImage } from "../../src/runtimes/vm.js";
import {
  type Fixture,
  layersOf,
  listDir,
  MODES,
  type Mode,
  makeFixture as makePlainFixture,
  readAudit,
  runInBox,
  startInBox,
  USER_UID,
  waitFor,
} from "../helpers/box.js";
import {
  type DockerBoxes,
  dockerdUnavailable,
  dockerFixture,
  startDockerBoxes,
} from "../helpers/docker-box.js";

const PLACEHOLDERS = [".mcp.json", ".envrc", ".vscode", ".gitmodules", ".claude", ".pre-commit-config.yaml"];
const GIT_PLACEHOLDERS = ["commondir", "config.worktree"];
/** Each a protected name the box tries to create or write: "WROTE name" when it could. */
const ATTEMPTS = [
  ".envrc",
  ".mcp.json",
  ".gitmodules",
  ".claude/settings.json",
  ".vscode/tasks.json",
  ".git/commondir",
  ".git/hooks/x",
];
const TRY_WRITES = `for f in ${ATTEMPTS.join(" ")}; do (echo evil > "$f") 2>/dev/null && echo "WROTE $f"; done
mkdir .idea 2>/dev/null && echo "WROTE .idea"
echo "mcp: $(cat .mcp.json)"
`;

const gitStatus = (dir: string) =>
  spawnSync(
    "git",
    ["-c", "safe.directory=*", "status", "--porcelain", "--ignored", "--untracked-files=all"],
    { cwd: dir, encoding: "utf8" },
  ).stdout;

/**
 * What the host shows of the workdir: its listing, its .git's, and git's own view; `flowed`: names
 * the box's own edits reach the host by while it runs (left out, checked apart).
 */
const hostView = (w: string, flowed: string[] = []) => ({
  top: readdirSync(w)
    .filter((n) => !flowed.includes(n))
    .sort(),
  git: readdirSync(path.join(w, ".git"))
    .filter((n) => !flowed.includes(`.git/${n}`))
    .sort(),
  status: gitStatus(w)
    .split("\n")
    .filter((l) => !flowed.some((n) => l.endsWith(` ${n}`)))
    .join("\n"),
  readme: readFileSync(path.join(w, "README.md"), "utf8"),
});

/** The placeholders the host shows (none, when the box leaves no trace). */
const tracesOn = (w: string) => [
  ...PLACEHOLDERS.filter((n) => existsSync(path.join(w, n))),
  ...GIT_PLACEHOLDERS.filter((n) => existsSync(path.join(w, ".git", n))).map((n) => `.git/${n}`),
  ...[...gitStatus(w).matchAll(/^[!?]{2} (\S+)/gm)]
    .map((m) => m[1]!)
    .filter((p) => PLACEHOLDERS.some((n) => p.startsWith(n))),
];

const ALLOW_ALL = "gate:\n  fs:\n    default: allow\n    rules: []\n";

/**
 * Starts a box that tries the protected names, then waits; returns what the host showed while it
 * ran. `weaken`: the broken box instead.
 */
async function duringRun(
  fx: Fixture,
  flags: string[],
  script: string,
  weaken?: string[],
  flowed: string[] = [],
) {
  const w = fx.workdir;
  const before = hostView(w, flowed);
  const box = startInBox(fx, flags, `${TRY_WRITES}${script}\necho ready\nsleep 30`, weaken ? { weaken } : {});
  assert.ok(await waitFor(() => box.out().includes("ready"), 120_000), box.out());
  return { box, before, during: hostView(w, flowed), traces: tracesOn(w) };
}

const RUNSC = which("runsc", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
interface Rt {
  name: string;
  /** fourwall's flags, and the broken box's, for this runtime. */
  run: () => string[];
  weak: () => string[];
  skip: false | string;
  modes: readonly Mode[];
  fixture?: (mode: Mode) => Fixture;
  /** Only the checks of what this runtime carries its own way run (the others: why not). */
  lite?: string;
}
// Docker: a daemon of the test's own (or the machine's), root only, as gate.test.ts does.
let docker: DockerBoxes | undefined;
const dockerSkip = dockerdUnavailable() ?? false;
/** The runtimes whose placeholders are checked. */
const RUNTIMES: Rt[] = [
  { name: "namespaces", run: () => [], weak: () => [], skip: false, modes: MODES },
  {
    name: "gvisor",
    run: () => ["-r", "gvisor"],
    weak: () => ["--runtime", "gvisor"],
    skip: RUNSC ? false : "runsc is not installed",
    modes: MODES,
  },
  // the microVM (TCG here: a boot takes seconds): its outer namespaces box carries the overlay, 9p
  // exports that view to the guest, whose bwrap binds the placeholder read-only there
  {
    name: "vm",
    run: () => ["-r", "vm"],
    weak: () => ["--runtime", "vm"],
    skip: existsSync(vmImage().kernel) && which("qemu-system-x86_64") ? false : "the microVM is not built",
    modes: MODES,
    // each check boots a guest (emulated here: many seconds); the workdir's placeholders stand in
    // the gate's layer exactly as on namespaces, and lifecycle.test.ts covers its SIGKILL
    lite: "the microVM runs only the checks outside the workdir (a guest boot each)",
  },
  {
    name: "docker",
    run: () => ["-r", "docker", ...docker!.imageFlags],
    weak: () => ["--runtime", "docker", ...docker!.imageFlags],
    skip: dockerSkip,
    modes: ["root"],
    fixture: (mode) => {
      const fx = dockerFixture(mode);
      fx.env.DOCKER_HOST = docker!.env.DOCKER_HOST;
      return fx;
    },
  },
];

for (const rt of RUNTIMES)
  for (const mode of rt.modes) {
    const makeFixture = rt.fixture ?? makePlainFixture;
    const flagsFor = (fx: Fixture, extra: string[] = [], weak = false) => [
      ...(weak ? rt.weak() : rt.run()),
      ...extra,
      "-w",
      fx.workdir,
    ];
    describe(`placeholders leave no trace on the host (${mode}, ${rt.name})`, { skip: rt.skip }, () => {
      if (rt.name === "docker") {
        before(async () => {
          docker = await startDockerBoxes();
        });
        after(async () => docker?.stop());
      }
      const policies =
        rt.name === "namespaces"
          ? (["the gate asks", "the gate allows everything"] as const)
          : (["the gate asks"] as const);
      for (const policy of policies) {
        it(`${policy}: in the box's layer only — read-only there, unseen by its git, never on the host`, {
          skip: rt.lite ?? false,
        }, async () => {
          const fx = makeFixture(mode);
          const w = fx.workdir;
          const excludeBefore = readFileSync(path.join(w, ".git", "info", "exclude"), "utf8");
          const flags = ["--approver", "exit 0"];
          let edits = "";
          if (policy === "the gate allows everything") {
            writeFileSync(path.join(fx.base, "allow.yaml"), ALLOW_ALL);
            flags.splice(0, 2, "--approver", "exit 1", "-p", path.join(fx.base, "allow.yaml"));
            // changes that would be asked about (or held) with a layer that holds: they flow unasked
            edits = "echo more >> README.md; chmod 755 README.md; ln -s /etc/passwd out";
          }
          // namespaces, both modes: an allow-all box writes straight through (a write-through overlay
          // carries the placeholders): its edits are on the host while it runs
          const through = edits !== "" && rt.name === "namespaces";
          const { box, before, during, traces } = await duringRun(
            fx,
            flagsFor(fx, flags),
            `${edits}\ngit add -A && echo "staged: $(git diff --cached --name-only | tr '\\n' ' ')"`,
            undefined,
            // (its git add -A stages into the real index: the masked .env too)
            through ? ["README.md", "out", ".env", ".git/index"] : [],
          );
          if (through) {
            assert.equal(during.readme, "# project\nmore\n", "the edit is on the host while the box runs");
            during.readme = before.readme;
          }
          box.child.kill("SIGTERM");
          await box.closed;
          assert.deepEqual(traces, [], "no placeholder on the host while the box runs");
          assert.deepEqual(
            during.top,
            before.top,
            "the host's workdir listing is unchanged while the box runs",
          );
          assert.deepEqual(during.git, before.git, "so is its .git");
          assert.equal(during.status, before.status, "and its git status --ignored");
          assert.match(box.out(), /mcp: \{\}/, "the box sees the placeholder");
          assert.doesNotMatch(box.out(), /WROTE/, "and cannot write any protected name");
          const staged = /staged: (.*)/.exec(box.out())?.[1] ?? "";
          assert.match(staged, /README\.md/, box.out());
          for (const name of PLACEHOLDERS)
            assert.ok(!staged.includes(name), `the box's git add -A staged ${name}`);
          assert.deepEqual(tracesOn(w), [], "nothing left after the run");
          assert.equal(readFileSync(path.join(w, ".git", "info", "exclude"), "utf8"), excludeBefore);
          if (edits) {
            // nothing asked (the approver would have said no): the edits are on the host
            assert.equal(readFileSync(path.join(w, "README.md"), "utf8"), "# project\nmore\n");
            assert.equal(lstatSync(path.join(w, "README.md")).mode & 0o777, 0o755);
            assert.ok(lstatSync(path.join(w, "out")).isSymbolicLink());
          }
        });
      }

      it("a box that stands them on the host the old way shows them there (the checks see it)", {
        skip: rt.lite ?? false,
      }, async () => {
        const fx = makeFixture(mode);
        const { box, before, during, traces } = await duringRun(fx, flagsFor(fx, [], true), "", [
          "host-placeholders",
        ]);
        box.child.kill("SIGTERM");
        await box.closed;
        assert.doesNotMatch(box.out(), /WROTE/, "the old way protects too");
        assert.ok(traces.includes(".envrc") && traces.includes(".git/commondir"), `traces: ${traces}`);
        assert.notDeepEqual(during.top, before.top);
        assert.notEqual(during.status, before.status);
      });

      for (const weak of [false, true]) {
        it(`SIGKILL of fourwall leaves nothing on the host${weak ? " (the old way: it does)" : ""}`, {
          skip: rt.lite ?? false,
        }, async () => {
          const fx = makeFixture(mode);
          const w = fx.workdir;
          const audit = path.join(fx.home, "audit.jsonl");
          const { box, before } = await duringRun(
            fx,
            flagsFor(fx, weak ? [] : ["--audit", audit], weak),
            "",
            weak ? ["host-placeholders"] : undefined,
          );
          box.child.kill("SIGKILL");
          await box.closed;
          // the reaper outlives fourwall: give it the time it takes (it waits 0.2 s, then cleans)
          await waitFor(() => !weak && tracesOn(w).length === 0, weak ? 3000 : 10_000);
          if (weak) {
            assert.ok(tracesOn(w).includes(".git/commondir"), `left: ${tracesOn(w)}`);
            return;
          }
          assert.doesNotMatch(box.out(), /WROTE/);
          assert.deepEqual(tracesOn(w), []);
          assert.deepEqual(hostView(w), before, "the workdir, its .git and its git status are as before");
          // the box wrote nothing: its layer (<box id>-XXXXXX; root's layers dir is the machine's) is gone too
          const id = readAudit(audit).find((e) => e.event === "box-start")?.box;
          assert.ok(id, "the audit log names the box");
          const mine = () => listDir(layersOf(fx)).filter((n) => n.startsWith(`${id}-`));
          assert.ok(await waitFor(() => mine().length === 0, 10_000), `layer left: ${mine()}`);
        });
      }

      // A writable place outside the workdir with a protected name missing in it (`filesystem.writable`
      // plus `filesystem.readOnly`, as the codex preset's ~/.codex/config.toml), owned by uid 65534
      // (as root: the box uid writes it through an idmap). A write-through overlay carries the
      // placeholder (box/through.ts): the host never lists the name, the box cannot create it, its
      // other writes (a directory renamed in too) land on the host at once, owned by the real owner, with no overlay xattr after, and
      // neither an exit nor a SIGKILL of fourwall leaves the name, a mount or fourwall's directory.
      for (const end of ["exit", "SIGKILL", "weak"] as const)
        it(`a placeholder outside the workdir: never on the host; writes land at once as the owner; ${end === "weak" ? "the old way stands it on the host (the check sees it)" : `${end} leaves nothing`}`, {
          skip: end === "SIGKILL" && rt.lite ? rt.lite : false,
        }, async () => {
          const { fx, ext, policy, script } = outsideSetup(makeFixture(mode));
          const audit = path.join(fx.home, "audit.jsonl");
          const flags =
            end === "weak"
              ? [...rt.weak(), "--policy", policy, "-w", fx.workdir]
              : [...rt.run(), "-p", policy, "--audit", audit, "-w", fx.workdir];
          const box = startInBox(fx, flags, script, end === "weak" ? { weaken: ["host-placeholders"] } : {});
          assert.ok(await waitFor(() => box.out().includes("ready"), 120_000), box.out());
          if (end !== "weak" && mode === "root") unreachableByOthers(fx, audit, rt.name === "docker");
          const during = {
            list: readdirSync(ext).sort(),
            status: gitStatus(ext),
            old: readFileSync(path.join(ext, "old"), "utf8"),
          };
          box.child.kill(end === "SIGKILL" ? "SIGKILL" : "SIGTERM");
          await box.closed;
          assert.doesNotMatch(box.out(), /WROTE-CONFIG/, "the box cannot create the protected name");
          assert.match(box.out(), /box sees: .*config\.toml/, "the box sees the placeholder");
          if (end === "weak") {
            assert.ok(
              during.list.includes("config.toml"),
              `the old way stands it on the host: ${during.list}`,
            );
            assert.match(during.status, /config\.toml/);
            return;
          }
          assert.deepEqual(
            during.list,
            [".git", "d", "old", "renamed"],
            "the host lists nothing new while the box runs",
          );
          assert.equal(
            during.status.split("\n").filter(Boolean).sort().join("\n"),
            [" D gone", " M old", "?? d/f", "?? renamed"].join("\n"),
            "git status --ignored: only the box's own files",
          );
          assert.equal(during.old, "old\nmore\n", "an edit is on the host while the box runs");
          for (const name of ["old", "renamed", "d", "d/f"])
            assert.equal(lstatSync(path.join(ext, name)).uid, USER_UID, `${name} is the real owner's`);
          assert.equal(lstatSync(path.join(ext, "old")).mode & 0o777, 0o600, "a chmod lands");
          // fourwall's directory of the overlays (in the layers dir): removed at exit, or by the reaper
          const id = readAudit(audit).find((e) => e.event === "box-start")?.box;
          assert.ok(id, "the audit log names the box");
          const mine = () => listDir(layersOf(fx)).filter((n) => n.startsWith(`${id}-`));
          assert.ok(await waitFor(() => mine().length === 0, 15_000), `left in the layers dir: ${mine()}`);
          // (overlayfs's opaque mark on the renamed directory is taken off before that directory goes)
          assert.deepEqual(overlayXattrs(ext), [], "no overlay xattr on the real directory or its files");
          const mounted = () => readFileSync("/proc/self/mountinfo", "utf8").includes(ext);
          assert.ok(await waitFor(() => !mounted(), 15_000), "no mount on the host");
          assert.deepEqual(
            readdirSync(ext).sort(),
            [".git", "d", "old", "renamed"],
            "nothing left on the host",
          );
        });

      // The codex preset (no real agent): ~/.codex is its state dir, its config.toml a box-only file
      // the gate binds read-only, hooks.json the gate's hook settings; neither exists on the host.
      it("the codex preset: ~/.codex/config.toml and hooks.json in the box only, ~/.codex writable", {
        // docker cannot bind the gate's agent settings yet (docker.ts): the preset does not run there
        skip:
          rt.name === "docker"
            ? "the docker runtime does not take the gate's agent settings"
            : (rt.lite ?? false),
      }, async () => {
        const fx = makeFixture(mode);
        const codex = path.join(fx.home, ".codex");
        const box = startInBox(
          fx,
          flagsFor(fx, ["--preset", "codex"]),
          `cd ${codex} || exit 1
(echo evil > config.toml) 2>/dev/null && echo WROTE-CONFIG
(echo evil > hooks.json) 2>/dev/null && echo WROTE-HOOKS
grep -q danger-full-access config.toml && echo CONFIG-OK
grep -q PreToolUse hooks.json && echo HOOKS-OK
echo s > session.jsonl
echo ready; sleep 60`,
        );
        let err = "";
        box.child.stderr?.on("data", (d) => (err += d));
        assert.ok(await waitFor(() => box.out().includes("ready") || box.child.exitCode !== null, 120_000));
        assert.match(box.out(), /ready/, `${box.out()}\n${err}`);
        const during = readdirSync(codex).sort();
        box.child.kill("SIGTERM");
        await box.closed;
        assert.match(box.out(), /CONFIG-OK/, box.out());
        assert.match(box.out(), /HOOKS-OK/);
        assert.doesNotMatch(box.out(), /WROTE/);
        assert.deepEqual(during, ["session.jsonl"], "the host's ~/.codex holds the box's file alone");
        assert.equal(
          lstatSync(path.join(codex, "session.jsonl")).uid,
          lstatSync(fx.home).uid,
          "owned by the user",
        );
        assert.deepEqual(readdirSync(codex), ["session.jsonl"], "nothing left");
      });

      it("a box without the persistence guard writes .mcp.json through to the host (the check sees it)", {
        skip: rt.name !== "namespaces",
      }, async () => {
        const fx = makeFixture(mode);
        const r = await runInBox(fx, ["/bin/sh", "-c", "echo evil > .mcp.json && echo WROTE-MCP"], {
          weaken: ["persistence"],
          timeoutMs: 60_000,
        });
        assert.match(r.stdout, /WROTE-MCP/, r.stderr);
        assert.equal(readFileSync(path.join(fx.workdir, ".mcp.json"), "utf8"), "evil\n");
      });
    });
  }

/**
 * The writable place outside the workdir: `ext`, a git repo of uid 65534 holding `old` and `gone`;
 * the policy makes it writable and protects `ext/config.toml`, which does not exist. The box tries
 * the name, lists the place, then creates, appends, renames, chmods, deletes and makes a directory.
 */
function outsideSetup(fx: Fixture) {
  const ext = path.join(fx.base, "ext");
  mkdirSync(ext);
  spawnSync("git", ["init", "-q", ext]);
  writeFileSync(path.join(ext, "old"), "old\n");
  writeFileSync(path.join(ext, "gone"), "gone\n");
  // committed: git status then shows the box's work alone
  spawnSync("git", ["-C", ext, "add", "old", "gone"]);
  spawnSync("git", ["-C", ext, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"]);
  spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, ext]);
  const policy = path.join(fx.base, "ext.yaml");
  writeFileSync(policy, `filesystem:\n  writable: [${ext}]\n  readOnly: [${ext}/config.toml]\n`);
  // (cd, then plain ls: gVisor's stat of an idmapped path itself fails in root mode, EINVAL)
  const script = `cd ${ext} || exit 1
(echo evil > config.toml) 2>/dev/null && echo WROTE-CONFIG
echo "box sees: $(ls | tr '\\n' ' ')"
echo new > new; echo more >> old; mv new renamed; chmod 600 old; rm gone; mkdir d0; mv d0 d; echo f > d/f
echo ready; sleep 60`;
  return { fx, ext, policy, script };
}

/** Every file below `dir` (itself included) carrying an overlayfs xattr (trusted.overlay.*, user.overlay.*). */
function overlayXattrs(dir: string): string[] {
  const r = spawnSync(
    "python3",
    [
      "-c",
      "import os,sys\nfor r,ds,fs in os.walk(sys.argv[1]):\n for n in [r]+[os.path.join(r,f) for f in ds+fs]:\n  x=[a for a in os.listxattr(n,follow_symlinks=False) if '.overlay.' in a]\n  x and print(n,x)",
      dir,
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split("\n").filter(Boolean);
}

/**
 * Root mode, while the box runs: another local user (uid 65534) can neither list fourwall's
 * directory of the overlays (the placeholders, the work dir) nor, for docker, the overlay's mount
 * under the run dir.
 */
function unreachableByOthers(fx: Fixture, audit: string, docker: boolean): void {
  const id = readAudit(audit).find((e) => e.event === "box-start")?.box;
  assert.ok(id, "the audit log names the box");
  const layers = layersOf(fx);
  const mine = listDir(layers)
    .filter((n) => n.startsWith(`${id}-through-`))
    .map((n) => path.join(layers, n, "0"));
  const dockerMounts = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4] ?? "")
    .filter((m) => m.includes(`/fourwall-${id}-`) && /\/through\/\d+$/.test(m));
  assert.ok(mine.length > 0, "the box has a directory of overlays");
  assert.equal(dockerMounts.length, docker ? 1 : 0, "docker's overlay is mounted under its run dir");
  for (const p of [...mine, path.join(mine[0]!, "lower"), ...dockerMounts]) {
    const r = spawnSync("setpriv", [`--reuid=${USER_UID}`, `--regid=${USER_UID}`, "--clear-groups", "ls", p]);
    assert.notEqual(r.status, 0, `uid ${USER_UID} lists ${p}`);
  }
}
