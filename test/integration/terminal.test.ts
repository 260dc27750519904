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
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import {
  chownToMode,
  type Fixture,
  FOURWALL,
  fourwallArgv,
  MODES,
  type Mode,
  makeFixture,
  ROOT,
  USER_UID,
  userArgs,
  WEAK_BOX,
} from "../helpers/box.js";
import { shq, Tmux } from "../helpers/tmux.js";

const SHIM = path.join(ROOT, "bin", "fourwall");
const TSX_LOADER = pathToFileURL(path.join(ROOT, "node_modules", "tsx", "dist", "loader.mjs")).href;

/** The environment line a pane starts with: the fixture's user, a real TERM. */
function envLine(fx: Fixture): string {
  const env = { ...fx.env, TERM: "xterm-256color", NODE_PATH: path.join(ROOT, "node_modules"), PS1: "$ " };
  return ["env", "-i", ...Object.entries(env).map(([k, v]) => `${k}=${shq(v)}`), ...userArgs(fx.mode)].join(
    " ",
  );
}

/** `fourwall run FLAGS -- sh -c SCRIPT` (or the broken box) in a tmux pane; BOX-EXIT=N when it ends. */
function boxInTmux(fx: Fixture, script: string, o: { flags?: string[]; weaken?: string } = {}): Tmux {
  const entry = o.weaken
    ? [process.execPath, "--import", TSX_LOADER, WEAK_BOX, "--weaken", o.weaken, ...(o.flags ?? [])]
    : [process.execPath, FOURWALL, "run", ...(o.flags ?? [])];
  const tmux = new Tmux();
  tmux.start(
    `${envLine(fx)} ${[...entry, "--", "sh", "-c", shq(script)].join(" ")}; echo "BOX-EXIT=$?"; sleep 120`,
    fx.workdir,
  );
  return tmux;
}

/** Processes holding the terminal `tty` open (any fd), with their command lines. */
function holders(tty: string): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const fds = readdirSync(`/proc/${name}/fd`);
      if (fds.some((fd) => readlinkSync(`/proc/${name}/fd/${fd}`) === tty))
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
    // The box deletes README.md, then draws a fake question and leaves a 3-row scroll region at the
    // bottom: an unguarded prompt is drawn inside it, the real list scrolls out, the fake one stays.
    const FORGE = String.raw`rm README.md
printf '\033[2J\033[H┌ fourwall gate · box 00000000 · fs (via change-set)\n│ changes  FAKE-LIST delete 1 file\n│          delete    harmless.tmp\n'
printf '\033[46;48r\033[48;1H'`;
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
        assert.match(screen, /fourwall gate · box [0-9a-f]+ · fs \(via change-set\)/);
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
    // registry.npmjs.org: unguarded, the human reads that above the real "allow?".
    const REDRAW = String.raw`(while :; do printf '\033[H┌ fourwall gate · box 00000000 · net (via egress)\033[K\n│ request  CONNECT registry.npmjs.org:443\033[K\n'; sleep 0.1; done) &
painter=$!
sleep 0.5
curl -s -o /dev/null --max-time 60 https://evil.test/; echo "curl=$?"
kill $painter`;
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
