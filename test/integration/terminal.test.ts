/**
 * The caller's terminal, attacked from inside the box, on real terminals (tmux: send-keys,
 * capture-pane), in both launch modes; each attack also against a box with the protection removed
 * (weak-box.ts --weaken terminal / prompt-hold / prompt-reset / prompt-escape, and fourwall-enter
 * built with FOURWALL_UNSAFE_SHARED_TERMINAL) to show the test sees the hole:
 *   - the prompt cannot be forged: a screen the box left (fake list, scroll region), a name with
 *     60 newlines, a box redrawing the screen while the egress prompt waits;
 *   - no box process holds the caller's terminal (`run`, `exec`), and a child an `exec` left
 *     behind cannot read the keys typed into the caller's shell after exec returned;
 *   - `run` and `exec` still pass keys, output, exit status and Ctrl-C through, and `run` without a
 *     terminal is byte-exact.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  boxInTmux,
  chownToMode,
  type Fixture,
  FOURWALL,
  fourwallArgv,
  MODES,
  makeFixture,
  ROOT,
  userArgs,
  weakEnter,
} from "../helpers/box.js";
import { shq, Tmux } from "../helpers/tmux.js";

const SHIM = path.join(ROOT, "bin", "fourwall");

/** The environment line a pane starts with: the fixture's user, a real TERM. */
function envLine(fx: Fixture): string {
  const env = { ...fx.env, TERM: "xterm-256color", NODE_PATH: path.join(ROOT, "node_modules"), PS1: "$ " };
  return ["env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${shq(v)}`), ...userArgs(fx.mode)].join(
    " ",
  );
}

/**
 * Processes holding the terminal `tty` open (any fd), with their command lines. Compared by device
 * and inode, not by name: a box's own pty can have the same /dev/pts/N name in its devpts.
 */
function holders(tty: string): { pid: number; cmdline: string }[] {
  const want = statSync(tty);
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fds = readdirSync(`/proc/${name}/fd`);
      const same = (fd: string) => {
        try {
          const st = statSync(`/proc/${name}/fd/${fd}`);
          return st.dev === want.dev && st.ino === want.ino;
        } catch {
          return false;
        }
      };
      if (fds.some(same))
        out.push({
          pid: Number(name),
          cmdline: readFileSync(`/proc/${name}/cmdline`, "utf8").replaceAll("\0", " "),
        });
    } catch {}
  }
  return out;
}

for (const mode of MODES) {
  describe(`the terminal prompt cannot be forged (${mode}, tmux)`, () => {
    // The box draws a fake question and leaves a 3-row scroll region at the bottom, then deletes
    // README.md (asked at that moment by the pause, or at exit without it): an unguarded prompt is
    // drawn inside the region, the real list scrolls out, the fake one stays.
    const FORGE = String.raw`printf '\033[2J\033[H┌ fourwall gate · box 00000000 · fs (via change-set)\n│ changes  FAKE-LIST delete 1 file\n│          delete    harmless.tmp\n'
printf '\033[46;48r\033[48;1H'
rm README.md`;
    const forged = async (weaken?: string) => {
      const fx = makeFixture(mode);
      const tmux = boxInTmux(fx, FORGE, { weaken });
      try {
        const screen = await tmux.waitFor(/allow\?/, 30_000, "visible");
        await sleep(300); // anything still to be drawn
        return { fx, tmux, screen: tmux.visible() || screen };
      } catch (error) {
        tmux.kill();
        throw error;
      }
    };
    it("a fake list and a scroll region left by the box: the real question is whole on screen, the fake one gone", async () => {
      const { fx, tmux, screen } = await forged();
      try {
        assert.match(screen, /fourwall gate · box [0-9a-f]+ · fs \(via (pause|change-set)\)/);
        assert.match(screen, /delete\s+README\.md/);
        assert.match(screen, /allow\? \[y\]es\s+\[n\]o/);
        assert.doesNotMatch(
          screen,
          /FAKE-LIST|harmless\.tmp/,
          "what the box drew is not beside the question",
        );
        tmux.keys("n");
        await tmux.waitFor(/BOX-EXIT=\d+/);
        assert.equal(readFileSync(path.join(fx.workdir, "README.md"), "utf8"), "# project\n");
      } finally {
        tmux.kill();
      }
    });
    it("(broken: no terminal reset) the test sees the forged screen", async () => {
      const { tmux, screen } = await forged("prompt-reset");
      tmux.kill();
      assert.ok(/FAKE-LIST/.test(screen) && !/delete\s+README\.md/.test(screen), screen);
    });

    // The rename target holds 60 newlines: raw, they push the question's first lines off a 50-row screen.
    // (61 lines: $(…) drops the last newline, 60 stay in the name)
    const RENAME = `mv README.md "$(printf 'a\\n%.0s' $(seq 61))end"`;
    it("a name with 60 newlines is one escaped line: the title, the change and allow? are all on screen", async () => {
      const fx = makeFixture(mode);
      const tmux = boxInTmux(fx, RENAME);
      try {
        const screen = await tmux.waitFor(/allow\?/, 30_000, "visible");
        assert.match(screen, /fourwall gate · box [0-9a-f]+ · fs/);
        assert.match(screen, /rename\s+README\.md → (a\\n){60}aend/);
        tmux.keys("n");
        await tmux.waitFor(/BOX-EXIT=\d+/);
        assert.ok(existsSync(path.join(fx.workdir, "README.md")));
      } finally {
        tmux.kill();
      }
    });
    it("(broken: raw names) the test sees the question pushed off screen", async () => {
      const fx = makeFixture(mode);
      const tmux = boxInTmux(fx, RENAME, { weaken: "prompt-escape" });
      try {
        const screen = await tmux.waitFor(/allow\?/, 30_000, "visible");
        assert.doesNotMatch(screen, /fourwall gate · box/, "the title scrolled away");
      } finally {
        tmux.kill();
      }
    });

    // egress.unknown: ask; while fourwall asks about evil.test, the box keeps repainting the top
    // of the screen (where the question's title and request are) with a request for
    // registry.npmjs.org: unguarded, the human reads that above the real "allow?". The painter is
    // gone before curl's status is printed (a last repaint would move the cursor over it).
    const REDRAW = String.raw`(while :; do printf '\033[H┌ fourwall gate · box 00000000 · net (via egress)\033[K\n│ request  CONNECT registry.npmjs.org:443\033[K\n'; sleep 0.1; done) &
painter=$!
sleep 0.5
curl -s -o /dev/null --max-time 60 https://evil.test/; rc=$?
kill $painter; wait $painter 2>/dev/null
echo "curl=$rc"`;
    const redraw = async (weaken?: string) => {
      const fx = makeFixture(mode);
      const policy = path.join(fx.base, "ask.yaml");
      writeFileSync(policy, "egress:\n  unknown: ask\n");
      chownToMode(fx, policy);
      const tmux = boxInTmux(fx, REDRAW, { weaken, flags: ["--policy", policy] });
      try {
        await tmux.waitFor(/allow\? \[y\]es/, 30_000, "visible"); // the real question is up
        const screens: string[] = [];
        for (let i = 0; i < 10; i++, await sleep(100)) screens.push(tmux.visible());
        return { tmux, screens };
      } catch (error) {
        tmux.kill();
        throw error;
      }
    };
    it("egress ask: a box repainting the screen does not show while the question waits", async () => {
      const { tmux, screens } = await redraw();
      try {
        for (const s of screens) {
          assert.match(s, /request\s+CONNECT evil\.test:443/);
          assert.doesNotMatch(s, /registry\.npmjs\.org/);
        }
        tmux.keys("n");
        const end = await tmux.waitFor(/BOX-EXIT=\d+/);
        assert.match(end, /curl=\d+/);
      } finally {
        tmux.kill();
      }
    });
    it("(broken: box output not held) the test sees the repainted question", async () => {
      const { tmux, screens } = await redraw("prompt-hold");
      tmux.kill();
      assert.ok(
        screens.some((s) => /registry\.npmjs\.org/.test(s)),
        screens.at(-1),
      );
    });
  });

  describe(`the box never holds the caller's terminal (${mode}, tmux)`, () => {
    const MARK = "sleep 1234.5";
    const boxHolders = async (weaken?: string) => {
      const fx = makeFixture(mode);
      const tmux = boxInTmux(fx, `${MARK} & ${MARK}; echo done`, { weaken });
      try {
        const tty = tmux.paneTty();
        for (let i = 0; i < 100 && !holders(tty).some((h) => h.cmdline.includes("fourwall")); i++)
          await sleep(100);
        let marked: number[] = [];
        for (let i = 0; i < 100 && marked.length < 2; i++, await sleep(100))
          marked = readdirSync("/proc")
            .filter(
              (p) =>
                /^\d+$/.test(p) && readFileSafe(`/proc/${p}/cmdline`).replaceAll("\0", " ").trim() === MARK,
            )
            .map(Number);
        assert.equal(marked.length, 2, "the box's two sleeps are running");
        return holders(tty).filter((h) => h.cmdline.trim() === MARK);
      } finally {
        tmux.kill();
      }
    };
    it("run: no process of the box has the caller's terminal open", async () => {
      assert.deepEqual(await boxHolders(), []);
    });
    it("(broken: no terminal of its own) the test sees the box holding it", async () => {
      assert.notDeepEqual(await boxHolders("terminal"), []);
    });
  });
}

function readFileSafe(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}

/** A box's state directory, as bin/fourwall finds it (the fixtures set no XDG_RUNTIME_DIR). */
const boxDirOf = (fx: Fixture, name: string) =>
  fx.mode === "root"
    ? `/run/fourwall/boxes/${name}`
    : path.join(fx.home, ".local/state/fourwall/boxes", name);

/** fourwall-enter as it was: the caller's session and terminal, nothing ends what it starts. */
const sharedTerminalEnter = () => weakEnter("FOURWALL_UNSAFE_SHARED_TERMINAL");

function fw(fx: Fixture, args: string[], input = "") {
  const argv = [...userArgs(fx.mode), SHIM, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), {
    cwd: fx.workdir,
    env: fx.env,
    input,
    encoding: "utf8",
    timeout: 30_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * A child of an `exec` (its stdin: the terminal it was given as stderr; sh gives a background job
 * /dev/null): its own process group, then (after exec has returned) the foreground of
 * the terminal it was given (TIOCSPGRP) and a read of whatever is typed there, kept in stolen.txt.
 */
const STEAL = `import os, signal, time
signal.signal(signal.SIGTTOU, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
try: os.setpgid(0, 0)
except OSError: pass
time.sleep(1.5)
try: os.tcsetpgrp(0, os.getpgrp())
except OSError: pass
open("took.txt", "w").close()
data = b""
try: data = os.read(0, 200)
except OSError: pass
open("stolen.txt", "wb").write(data)
`;

for (const mode of MODES) {
  describe(`fourwall exec and the caller's terminal (${mode}, tmux)`, () => {
    const fx = makeFixture(mode);
    const name = `term-${mode}-${process.pid}`;
    const shell = (): Tmux => {
      const tmux = new Tmux();
      tmux.start(`${envLine(fx)} bash --norc --noprofile`, fx.workdir);
      return tmux;
    };
    let up = false;
    const ensureUp = () => {
      if (up) return;
      writeFileSync(path.join(fx.workdir, "steal.py"), STEAL);
      chownToMode(fx, path.join(fx.workdir, "steal.py"));
      const r = fw(fx, ["up", "--name", name]);
      assert.equal(r.code, 0, r.stderr);
      up = true;
    };
    after(() => {
      if (up) fw(fx, ["down", name]);
    });

    const stealAfterExec = async (enter: string[]) => {
      ensureUp();
      const mark = randomBytes(4).toString("hex");
      fw(fx, ["exec", name, "--", "rm", "-f", "stolen.txt", "took.txt"]);
      const tmux = shell();
      try {
        await sleep(300);
        tmux.keys(`${enter.join(" ")} sh -c 'python3 steal.py <&2 & echo started'; echo EXEC-RC=$?`, "Enter");
        await tmux.waitFor(/EXEC-RC=0/);
        // the child has tried to take the terminal (a loaded host can take seconds to start python)
        // (checked on the host: the live layer lands a new file there within about a second)
        const took = path.join(fx.workdir, "took.txt");
        for (let i = 0; i < 100 && !existsSync(took); i++) await sleep(200);
        tmux.keys(`echo typed-${mark}`, "Enter");
        await sleep(1500);
        const screen = tmux.history();
        const stolen = fw(fx, ["exec", name, "--", "cat", "stolen.txt"]).stdout;
        return { mark, screen, stolen };
      } finally {
        tmux.kill();
      }
    };
    it("a child an exec left behind, taking the terminal's foreground, reads nothing typed after exec returned", async () => {
      const { mark, screen, stolen } = await stealAfterExec([SHIM, "exec", name, "--"]);
      assert.match(screen, new RegExp(`^typed-${mark}$`, "m"), "the caller's shell got the keys");
      assert.doesNotMatch(stolen, new RegExp(mark), "the box did not");
    });
    it("(broken: exec shares the caller's terminal and session) the test sees the keys stolen", async () => {
      const r = await stealAfterExec([sharedTerminalEnter(), boxDirOf(fx, name), "--"]);
      const { mark, stolen } = r;
      assert.match(stolen, new RegExp(mark), JSON.stringify({ screen: r.screen.slice(-600) }));
    });

    const execHolders = async (enter: string[]) => {
      ensureUp();
      const tmux = shell();
      try {
        await sleep(300);
        const tty = tmux.paneTty();
        tmux.keys(`${enter.join(" ")} sleep 1234.6; echo EXEC-RC=$?`, "Enter");
        let held: { pid: number; cmdline: string }[] = [];
        for (let i = 0; i < 60; i++, await sleep(100)) {
          const running = readdirSync("/proc").some(
            (p) =>
              /^\d+$/.test(p) &&
              readFileSafe(`/proc/${p}/cmdline`).replaceAll("\0", " ").trim() === "sleep 1234.6",
          );
          if (running) {
            held = holders(tty).filter((h) => h.cmdline.trim() === "sleep 1234.6");
            break;
          }
        }
        tmux.keys("C-c");
        await tmux.waitFor(/EXEC-RC=130/);
        return held;
      } finally {
        tmux.kill();
      }
    };
    it("exec: the command does not hold the caller's terminal, and Ctrl-C reaches it (130)", async () => {
      assert.deepEqual(await execHolders([SHIM, "exec", name, "--"]), []);
    });
    it("(broken: exec shares the caller's terminal) the test sees the command holding it", async () => {
      assert.notDeepEqual(await execHolders([sharedTerminalEnter(), boxDirOf(fx, name), "--"]), []);
    });

    it("exec passes keys, output and the exit status through its terminal", async () => {
      ensureUp();
      const tmux = shell();
      try {
        await sleep(300);
        tmux.keys(`${SHIM} exec ${name} -- sh -c 'read x; echo "got:$x"; exit 3'; echo EXEC-RC=$?`, "Enter");
        await sleep(800);
        tmux.keys("hello-exec", "Enter");
        const screen = await tmux.waitFor(/EXEC-RC=\d+/);
        assert.match(screen, /^got:hello-exec$/m);
        assert.match(screen, /EXEC-RC=3/);
      } finally {
        tmux.kill();
      }
    });
  });

  describe(`fourwall run passes the terminal through (${mode}, tmux)`, () => {
    it("keys, output and the exit status; Ctrl-C reaches the box's command", async () => {
      const fx = makeFixture(mode);
      const tmux = boxInTmux(
        fx,
        `read x; echo "got:$x"; trap 'echo got-int; exit 42' INT; echo ready; sleep 100 & wait`,
      );
      try {
        await sleep(1500);
        tmux.keys("hello-run", "Enter");
        await tmux.waitFor(/ready/);
        tmux.keys("C-c");
        const screen = await tmux.waitFor(/BOX-EXIT=\d+/);
        assert.match(screen, /^got:hello-run$/m);
        // Ctrl-C reached the box: the trap's 42, or 130 when bwrap's own process (in the box's
        // foreground process group, as it was in the caller's before) ended on the same SIGINT
        // first and took the box with it before the trap could finish (known, docs/THREAT-MODEL.md)
        assert.match(screen, /BOX-EXIT=(42|130)/);
      } finally {
        tmux.kill();
      }
    });
    it("without a terminal, run pipes stdin to stdout byte-exact and returns the status", () => {
      const fx = makeFixture(mode);
      const data = randomBytes(1 << 20);
      const argv = fourwallArgv(fx.mode, ["run", "--", "sh", "-c", "cat; exit 7"]);
      const r = spawnSync(argv[0]!, argv.slice(1), {
        cwd: fx.workdir,
        env: fx.env,
        input: data,
        timeout: 60_000,
      });
      assert.equal(r.status, 7, String(r.stderr));
      const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
      assert.equal(sha(r.stdout), sha(data));
    });
  });
}

for (const mode of MODES) {
  describe(`the caller's terminal is given back (${mode}, tmux)`, () => {
    const MARK = "sleep 1234.7";
    const cmdlineOf = (pid: number) => readFileSafe(`/proc/${pid}/cmdline`).replaceAll("\0", " ").trim();
    /** Every process below `root` now (by parent pid, from /proc/PID/stat). */
    const descendantsOf = (root: number): number[] => {
      const children = new Map<number, number[]>();
      for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
        const stat = readFileSafe(`/proc/${p}/stat`);
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        children.set(ppid, [...(children.get(ppid) ?? []), Number(p)]);
      }
      const out: number[] = [];
      for (let queue = [root]; queue.length > 0; ) {
        const next = children.get(queue.shift()!) ?? [];
        out.push(...next);
        queue.push(...next);
      }
      return out;
    };
    const pidsOf = (cmdline: (c: string) => boolean) =>
      readdirSync("/proc")
        .filter(
          (p) => /^\d+$/.test(p) && cmdline(readFileSafe(`/proc/${p}/cmdline`).replaceAll("\0", " ").trim()),
        )
        .map(Number);
    // The job bash sees is `sh`, which ends normally: bash keeps whatever mode it finds (it puts
    // its own back only after a job killed by a signal, which would hide a raw terminal).
    const givenBack = async (sig: NodeJS.Signals, alsoRelay = false) => {
      const fx = makeFixture(mode);
      const tmux = new Tmux();
      tmux.start(`${envLine(fx)} bash --norc --noprofile`, fx.workdir);
      try {
        await sleep(300);
        // (after fourwall's death the relay restores the mode within moments: sh waits a second
        // before it ends, so that bash does not save the mode of that moment as its own)
        tmux.keys(`sh -c 'node ${FOURWALL} run -- ${MARK}; rc=$?; sleep 1; echo RUN-RC=$rc'`, "Enter");
        for (let i = 0; i < 100 && pidsOf((c) => c === MARK).length === 0; i++) await sleep(100);
        const fourwall = pidsOf((c) => c.startsWith("node ") && c.includes(`fourwall.js run -- ${MARK}`));
        assert.equal(fourwall.length, 1, "fourwall runs the box");
        // this box's relays only (other tests' boxes run on this machine too): fourwall's descendants
        const relay = descendantsOf(fourwall[0]!).filter((p) => cmdlineOf(p).includes("fourwall-pty"));
        // the relay first when it dies too: killed after fourwall, it could still restore the mode
        if (alsoRelay) for (const pid of relay) process.kill(pid, "SIGKILL");
        process.kill(fourwall[0]!, sig);
        await tmux.waitFor(/RUN-RC=\d+/);
        const ours = () => [
          ...pidsOf((c) => c === MARK),
          ...relay.filter((p) => cmdlineOf(p).includes("fourwall-pty")),
        ];
        for (let i = 0; i < 60 && ours().length > 0; i++) await sleep(100);
        const left = ours();
        tmux.keys(
          "stty -a | tr ' ' '\\n' | grep -x -e '-\\?icanon' -e '-\\?echo' | tr '\\n' ' '; echo MODE-DONE",
          "Enter",
        );
        const screen = await tmux.waitFor(/^-?icanon -?echo MODE-DONE/m);
        return { left, screen };
      } finally {
        tmux.kill();
      }
    };
    for (const sig of ["SIGTERM", "SIGKILL"] as const)
      it(`fourwall ended by ${sig}: the terminal is back in its mode, nothing of the box is left`, async () => {
        const { left, screen } = await givenBack(sig);
        assert.deepEqual(left, [], "nothing left");
        assert.match(screen, /^icanon echo MODE-DONE/m, "canonical mode and echo are back");
      });
    it("(broken: the relay SIGKILLed too, the documented worst case) the test sees the raw terminal", async () => {
      const { screen } = await givenBack("SIGKILL", true);
      assert.match(screen, /^-icanon -echo MODE-DONE/m);
    });
  });
}
