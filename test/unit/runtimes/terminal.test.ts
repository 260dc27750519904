import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { namespacesLaunchSpec } from "../../../src/runtimes/namespaces.js";
import type { BoxSession } from "../../../src/runtimes/runtime.js";
import { terminalPrefix } from "../../../src/runtimes/terminal.js";
import { testPlan, WORK } from "../../helpers/plan.js";

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
  it("the box daemon's run: the caller's stdio come on the connection, fd 9, stderr to fd 7", () => {
    const s = session({ helper: "/h/fourwall-pty", callerFds: 42 });
    assert.deepEqual(terminalPrefix(s), ["/h/fourwall-pty", "--caller-fds", "9:7", "--"]);
    // the namespaces runtime hands the daemon's fd 42 over as the launcher's fd 9
    const spec = namespacesLaunchSpec(testPlan({ host: [`${WORK}/README.md`] }), s);
    assert.deepEqual(
      spec.extraFds.find((x) => x.use === "pass"),
      { fd: 9, use: "pass", from: 42 },
    );
    // fourwall-pty puts the caller's stderr where the runtime expects fourwall's own
    assert.equal(spec.extraFds.find((x) => x.use === "stderr")?.fd, 7);
    assert.equal(
      namespacesLaunchSpec(
        testPlan({ host: [`${WORK}/README.md`] }),
        session({ helper: "/h/fourwall-pty" }),
      ).extraFds.some((x) => x.use === "pass"),
      false,
    );
  });
});
