import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

/** `s` as one single-quoted sh word. */
export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** tmux on its own server socket, so a test never touches anyone else's sessions. */
export class Tmux {
  readonly socket = `fourwall-t-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  run(args: string[]) {
    return spawnSync("tmux", ["-L", this.socket, ...args], { encoding: "utf8" });
  }
  start(command: string, cwd: string, size = { cols: 160, rows: 50 }) {
    const r = this.run([
      "new-session",
      "-d",
      "-s",
      "box",
      "-x",
      String(size.cols),
      "-y",
      String(size.rows),
      "-c",
      cwd,
      command,
    ]);
    assert.equal(r.status, 0, r.stderr);
  }
  /** What is on the screen now (the visible rows only: what a human sees without scrolling; wrapped lines joined). */
  visible(): string {
    return this.run(["capture-pane", "-p", "-J", "-t", "box"]).stdout;
  }
  /** The screen and up to 200 rows of scrollback. */
  history(): string {
    return this.run(["capture-pane", "-p", "-J", "-t", "box", "-S", "-200"]).stdout;
  }
  /** The pane's terminal (the caller's terminal of whatever runs in it). */
  paneTty(): string {
    return this.run(["display-message", "-p", "-t", "box", "#{pane_tty}"]).stdout.trim();
  }
  keys(...keys: string[]) {
    this.run(["send-keys", "-t", "box", ...keys]);
  }
  async waitFor(re: RegExp, ms = 30_000, where: "visible" | "history" = "history"): Promise<string> {
    const read = () => (where === "visible" ? this.visible() : this.history());
    for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
      const s = read();
      if (re.test(s)) return s;
    }
    assert.fail(`timed out waiting for ${re} on the terminal:\n${this.history()}`);
  }
  kill() {
    this.run(["kill-server"]);
  }
}
