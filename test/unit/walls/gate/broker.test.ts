/**
 * The broker and its non-interactive approvers, for real: the approver command is a real shell
 * command, the gate socket a real unix socket, the audit log a real file. Fail closed is checked
 * for every way an answer can fail to come.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { AuditLog } from "../../../../src/audit/log.js";
import { CommandApprover } from "../../../../src/walls/gate/approvers/command.js";
import { Broker, type NewRequest } from "../../../../src/walls/gate/broker.js";
import { decideFs, decideNet, pathGlobRegex, strictest } from "../../../../src/walls/gate/rules.js";
import { DEFAULT_FS_RULES, gateSchema } from "../../../../src/walls/gate/schema.js";
import { startGate } from "../../../../src/walls/gate/service.js";
import { askGate, parseSocketRequest } from "../../../../src/walls/gate/socket.js";
import type { Approver } from "../../../../src/walls/gate/types.js";
import { readAudit } from "../../../helpers/box.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-gate-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const auditFile = () => path.join(dir, `audit-${n++}.jsonl`);
const lines = readAudit;

const req = (over: Partial<NewRequest> = {}): NewRequest => ({
  kind: "exec",
  summary: "rm -rf build",
  command: "rm -rf build",
  cwd: "/work",
  why: ["rm: deletes files"],
  via: "gate-exec",
  ...over,
});

const broker = (
  approvers: Approver[],
  file = auditFile(),
  extra: Partial<ConstructorParameters<typeof Broker>[0]> = {},
) =>
  new Broker({ box: "b1", audit: new AuditLog(file), approvers, timeoutMs: 5000, always: "box", ...extra });

describe("gate rules", () => {
  it("strictest wins: deny > ask > allow", () => {
    assert.equal(strictest(["allow", "ask"], "allow"), "ask");
    assert.equal(strictest(["allow", "deny", "ask"], "allow"), "deny");
    assert.equal(strictest([], "ask"), "ask");
  });

  it("path globs: * within a name, ** across directories", () => {
    assert.ok(pathGlobRegex(".git/**").test(".git/objects/ab/cdef"));
    assert.ok(pathGlobRegex("*.log").test("x.log"));
    assert.ok(!pathGlobRegex("*.log").test("a/x.log"));
    assert.ok(pathGlobRegex("**/*.log").test("a/b/x.log"));
    assert.ok(pathGlobRegex("**/*.log").test("x.log"));
    assert.ok(!pathGlobRegex("dist/**").test("distant"));
  });

  it("fs defaults: git's own bookkeeping flows, deleting it and every other change asks", () => {
    const fs = gateSchema.parse({}).fs;
    assert.equal(decideFs(fs.rules, fs.default, ".git/index", "overwrite").decision, "allow");
    assert.equal(decideFs(fs.rules, fs.default, ".git/objects/ab/cd", "delete").decision, "ask");
    assert.equal(decideFs(fs.rules, fs.default, "README.md", "delete").decision, "ask");
    assert.equal(decideFs(fs.rules, fs.default, "src/a.ts", "overwrite").decision, "ask");
    assert.equal(fs.rules.length, DEFAULT_FS_RULES.length);
  });

  it("fs: the strictest matching rule wins over a broader allow", () => {
    const rules = gateSchema.parse({
      fs: {
        rules: [
          { path: "dist/**", decision: "allow" },
          { path: "dist/keep/**", ops: ["delete"], decision: "deny" },
        ],
      },
    }).fs.rules;
    assert.equal(decideFs(rules, "ask", "dist/a.js", "delete").decision, "allow");
    assert.equal(decideFs(rules, "ask", "dist/keep/x", "delete").decision, "deny");
    assert.equal(decideFs(rules, "ask", "dist/keep/x", "overwrite").decision, "allow");
  });

  it("net: unmatched hosts ask, rules allow or deny, methods narrow a rule", () => {
    const rules = gateSchema.parse({
      net: {
        rules: [
          { host: "*.example.com", decision: "allow" },
          { host: "api.example.com", methods: ["POST"], decision: "deny" },
        ],
      },
    }).net.rules;
    assert.equal(decideNet(rules, "unknown.test", "GET"), "ask");
    assert.equal(decideNet(rules, "www.example.com", "GET"), "allow");
    assert.equal(decideNet(rules, "api.example.com", "GET"), "allow");
    assert.equal(decideNet(rules, "api.example.com", "POST"), "deny");
    assert.equal(decideNet(rules, "example.com", "GET"), "ask", "*.example.com is subdomains only");
  });
});

describe("broker", () => {
  it("policy allow and deny never ask anyone", async () => {
    let asked = 0;
    const b = broker([
      {
        name: "x",
        ask: async () => {
          asked++;
          return "yes";
        },
      },
    ]);
    assert.equal((await b.decide(req(), "allow")).by, "policy");
    assert.equal((await b.decide(req(), "deny")).decision, "deny");
    assert.equal(asked, 0);
  });

  it("CI mode: no approver means deny, with a clear message, and the message is said to the human", async () => {
    const said: string[] = [];
    const b = broker([], auditFile(), { notify: (l) => said.push(l) });
    const a = await b.decide(req(), "ask");
    assert.equal(a.decision, "deny");
    assert.equal(a.by, "no-approver");
    assert.match(a.reason, /nobody to ask \(no terminal, no --approver, no --inbox\)/);
    assert.match(said[0]!, /rm -rf build/);
  });

  it("the approver command gets the request as JSON on stdin; exit 0 = yes, else no", async () => {
    const seen = path.join(dir, "seen.json");
    const yes = broker([new CommandApprover(`cat > ${seen}; exit 0`)]);
    assert.equal((await yes.decide(req(), "ask")).decision, "allow");
    const got = JSON.parse(readFileSync(seen, "utf8"));
    assert.equal(got.command, "rm -rf build");
    assert.equal(got.cwd, "/work");
    assert.deepEqual(got.why, ["rm: deletes files"]);
    assert.equal((await broker([new CommandApprover("exit 1")]).decide(req(), "ask")).decision, "deny");
    assert.equal((await broker([new CommandApprover("kill -9 $$")]).decide(req(), "ask")).decision, "deny");
    assert.equal(
      (await broker([new CommandApprover("/no/such/approver")]).decide(req(), "ask")).decision,
      "deny",
    );
  });

  it("a timeout is a deny, and the approver is killed", async () => {
    const t0 = performance.now();
    const a = await broker([new CommandApprover("sleep 30")], auditFile(), { timeoutMs: 300 }).decide(
      req(),
      "ask",
    );
    assert.equal(a.decision, "deny");
    assert.equal(a.by, "timeout");
    assert.ok(performance.now() - t0 < 3000);
  });

  it("an approver that throws is a no (fail closed)", async () => {
    const a = await broker([{ name: "broken", ask: async () => Promise.reject(new Error("boom")) }]).decide(
      req(),
      "ask",
    );
    assert.equal(a.decision, "deny");
    assert.match(a.reason, /boom/);
  });

  it('"always" holds for the same request for this box only, never for another', async () => {
    let asked = 0;
    const approver: Approver = { name: "human", ask: async () => (asked++ === 0 ? "always" : "no") };
    const b = broker([approver]);
    assert.equal((await b.decide(req(), "ask")).decision, "allow");
    const again = await b.decide(req(), "ask");
    assert.equal(again.decision, "allow");
    assert.equal(again.by, "always");
    assert.equal(
      (await b.decide(req({ command: "rm -rf src", summary: "rm -rf src" }), "ask")).decision,
      "deny",
    );
    const other = broker([approver]);
    assert.equal((await other.decide(req(), "ask")).decision, "deny", "a new box asks again");
  });

  it('"always" is a plain yes when the policy turns it off, and for change-sets', async () => {
    let asked = 0;
    const approver: Approver = {
      name: "human",
      ask: async () => {
        asked++;
        return "always";
      },
    };
    const b = broker([approver], auditFile(), { always: "off" });
    await b.decide(req(), "ask");
    await b.decide(req(), "ask");
    assert.equal(asked, 2);
  });

  it("the first answer wins when several approvers are asked; the others are told to stop", async () => {
    let aborted = false;
    const slow: Approver = {
      name: "slow",
      ask: (_r, signal) =>
        new Promise((resolve) =>
          signal.addEventListener("abort", () => {
            aborted = true;
            resolve("no");
          }),
        ),
    };
    const a = await broker([slow, new CommandApprover("exit 0")]).decide(req(), "ask");
    assert.equal(a.decision, "allow");
    assert.equal(a.by, "approver-command");
    assert.ok(aborted);
  });

  it("every request and decision is in the audit log, with who decided and how", async () => {
    const file = auditFile();
    await broker([new CommandApprover("exit 0")], file).decide(req(), "ask");
    const [request, decision] = lines(file);
    assert.equal(request.event, "request");
    assert.equal(request.wall, "gate");
    assert.equal(request.command, "rm -rf build");
    assert.equal(request.policy, "ask");
    assert.equal(decision.event, "decision");
    assert.equal(decision.decision, "allow");
    assert.equal(decision.by, "approver-command");
    assert.equal(decision.id, request.id);
    assert.equal(typeof decision.ms, "number");
  });
});

describe("gate socket", () => {
  it("validates what the box sends; there is no field for a decision", () => {
    assert.equal(typeof parseSocketRequest("nope"), "string");
    assert.equal(typeof parseSocketRequest('{"op":"exec","command":"","cwd":"/"}'), "string");
    assert.equal(typeof parseSocketRequest('{"op":"exec","command":"ls","cwd":"rel"}'), "string");
    const ok = parseSocketRequest(
      '{"op":"exec","command":"ls","cwd":"/w","via":"claude-hook","decision":"allow"}',
    );
    assert.deepEqual(ok, { op: "exec", command: "ls", cwd: "/w", via: "claude-hook" });
  });

  it("host classifies and decides: read-only flows, destructive asks the approver, nobody = deny", async () => {
    const socketPath = path.join(dir, "gate.sock");
    const file = auditFile();
    const policy = gateSchema.parse({});
    const gate = await startGate({
      box: "b2",
      policy,
      audit: new AuditLog(file),
      approvers: [new CommandApprover("grep -q '\"git push' && exit 0; exit 1")],
      mounts: [],
      boxPath: "/usr/bin:/bin",
      socketPath,
    });
    try {
      const ask = (command: string) =>
        askGate(socketPath, { op: "exec", command, cwd: dir, via: "gate-exec" });
      assert.deepEqual(await ask("git status"), {
        decision: "allow",
        by: "policy",
        reason: "allowed by the gate policy",
      });
      assert.equal((await ask("rm -rf x")).decision, "deny");
      assert.equal((await ask("git push --force")).decision, "allow");
      const bad = await new Promise<string>((resolve) => {
        import("node:net").then(({ createConnection }) => {
          const c = createConnection(socketPath);
          let out = "";
          c.on("data", (d) => (out += d));
          c.on("close", () => resolve(out));
          c.end("garbage\n");
        });
      });
      assert.match(bad, /"decision":"deny"/);
    } finally {
      await gate.close();
    }
    assert.equal(
      (await askGate(socketPath, { op: "exec", command: "ls", cwd: "/", via: "x" })).decision,
      "deny",
      "no gate = deny",
    );
  });
});
