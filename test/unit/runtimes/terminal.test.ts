import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BoxSession } from "../../../src/runtimes/runtime.js";
import { terminalPrefix } from "../../../src/runtimes/terminal.js";

const session = (terminal?: BoxSession["terminal"]): BoxSession => ({
  runDir: "/r",
  emptyFile: "/r/empty",
  netDir: "/r/net",
  cgroupDirs: [],
  terminal,
});

describe("terminalPrefix: every runtime's launcher starts under fourwall-pty", () => {
  it("with fourwall's control socket", () => {
    assert.deepEqual(terminalPrefix(session({ helper: "/h/fourwall-pty", control: "/r/tty/c.sock" })), [
      "/h/fourwall-pty",
      "--control",
      "/r/tty/c.sock",
      "--",
    ]);
  });
  it("without a terminal to relay: setsid only", () => {
    assert.deepEqual(terminalPrefix(session({ helper: "/h/fourwall-pty" })), ["/h/fourwall-pty", "--"]);
  });
  it("detached (the microVM): no relay, no control", () => {
    assert.deepEqual(terminalPrefix(session({ helper: "/h/fourwall-pty", control: "/c", detach: true })), [
      "/h/fourwall-pty",
      "--detach",
      "--",
    ]);
  });
  it("none set (a runtime tested alone)", () => assert.deepEqual(terminalPrefix(session()), []));
});
