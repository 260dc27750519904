import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  daemonRunChoice,
  ownEnvDiffers,
  parseRunRequest,
  replyFrame,
  signalFrames,
} from "../../../src/box/run-request.js";

const body = (...items: string[]) => Buffer.from(items.map((i) => `${i}\0`).join(""));

describe("the box daemon's run protocol", () => {
  it("parses the request fourwall-run sends", () => {
    const r = parseRunRequest(body("V1", "C/work", "A-p", "Ap.yaml", "A--", "Aecho", "Ea=b=c", "EHOME=/h"));
    assert.deepEqual(r, {
      version: "1",
      op: "run",
      cwd: "/work",
      args: ["-p", "p.yaml", "--", "echo"],
      env: { a: "b=c", HOME: "/h" },
    });
  });

  it("reads the operation: up, or run when there is none", () => {
    assert.equal(parseRunRequest(body("V1", "Oup", "C/w", "A--name", "Ab")).op, "up");
    assert.throws(() => parseRunRequest(body("V1", "Odown", "C/w")), /operation/);
  });

  it("refuses a malformed request", () => {
    assert.throws(() => parseRunRequest(Buffer.from("V1\0Cnot-absolute\0")));
    assert.throws(() => parseRunRequest(Buffer.from("V1\0C/x")), /NUL/);
    assert.throws(() => parseRunRequest(body("V1", "C/x", "Zwhat")), /kind/);
  });

  it("takes -p, -w, -a, --preset, --resolve, --approver, --secret, -r and the command, and nothing else", () => {
    const none = { preset: [], allow: [], resolve: [], secret: [] };
    assert.deepEqual(daemonRunChoice(["--", "true"]), { command: ["true"], options: none });
    assert.deepEqual(
      daemonRunChoice([
        "-p",
        "f.yaml",
        "-w",
        "x",
        "-a",
        "x.test",
        "--allow=y.test",
        "--preset",
        "node-dev",
        "--resolve",
        "h=127.0.0.1",
        "--approver",
        "exit 1",
        "--",
        "ls",
        "-l",
      ]),
      {
        command: ["ls", "-l"],
        options: {
          policy: "f.yaml",
          allow: ["x.test", "y.test"],
          preset: ["node-dev"],
          resolve: ["h=127.0.0.1"],
          approver: "exit 1",
          workdir: "x",
          secret: [],
        },
      },
    );
    // options after the command are the command's (commander's passThroughOptions)
    assert.deepEqual(daemonRunChoice(["ls", "-p"]), { command: ["ls", "-p"], options: none });
    for (const args of [
      ["--dry-run", "--", "true"],
      ["--audit", "a.jsonl", "true"],
      ["-pf.yaml", "true"],
      ["--"],
      ["-a"],
      ["-p", "a", "-p", "b", "true"],
    ])
      assert.ok("fallback" in daemonRunChoice(args), args.join(" "));
  });

  it("sends a caller whose own variables differ from the daemon's the Node way", () => {
    const daemon = { PATH: "/bin", HOME: "/a", FOURWALL_SQUID: "/s" };
    assert.equal(ownEnvDiffers(daemon, { PATH: "/usr/bin", HOME: "/b", FOURWALL_SQUID: "/s" }), undefined);
    assert.equal(ownEnvDiffers(daemon, { ...daemon, TMPDIR: "/t" }), "TMPDIR");
    assert.equal(ownEnvDiffers(daemon, { PATH: "/bin", HOME: "/a" }), "FOURWALL_SQUID");
    assert.equal(
      ownEnvDiffers(daemon, { ...daemon, FOURWALL_X: "1" }),
      "FOURWALL_X",
      "only the caller has it",
    );
    assert.equal(ownEnvDiffers(daemon, { ...daemon, FOURWALL_RUN_NO_DAEMON: "1" }), undefined);
  });

  it("frames replies and reads signal frames", () => {
    assert.deepEqual([...replyFrame("X", "3")], [0x58, 1, 0, 0, 0, 0x33]);
    assert.deepEqual(signalFrames(Buffer.from([0x6b, 15, 0x6b, 2, 0x6b])), {
      signals: [15, 2],
      rest: Buffer.from([0x6b]),
      bad: false,
    });
    assert.equal(signalFrames(Buffer.from([0x41, 1])).bad, true);
  });
});
