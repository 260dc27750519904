import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { boxSight } from "../../../../src/walls/filesystem/index.js";
import { planRlimits } from "../../../../src/walls/isolation/index.js";
import { limitsSchema } from "../../../../src/walls/isolation/schema.js";
import { HOME, testPlan, WORK } from "../../../helpers/plan.js";

const HOST = [
  `${WORK}/`,
  `${HOME}/.ssh/id_ed25519`,
  "/tmp/tools/bin/agent",
  "/tmp/tools/.env",
  `${HOME}/tools/x`,
];

describe("filesystem.readOnly outside the workdir (--ro)", () => {
  it("binds a path the box would not see read-only", () => {
    const fs = testPlan({
      host: HOST,
      policy: { filesystem: { readOnly: ["/tmp/tools", "~/tools"] } },
    }).filesystem;
    assert.ok(fs.mounts.some((m) => m.type === "bind" && m.target === "/tmp/tools" && !m.writable));
    assert.ok(fs.mounts.some((m) => m.type === "bind" && m.target === `${HOME}/tools` && !m.writable));
    assert.deepEqual(boxSight(fs.mounts, "/tmp/tools/bin/agent"), {
      seen: true,
      hostPath: "/tmp/tools/bin/agent",
    });
    assert.ok(!fs.writable.includes("/tmp/tools"));
  });

  it("leaves a path the box already sees alone, and notes a missing one", () => {
    const fs = testPlan({
      host: HOST,
      policy: { filesystem: { readOnly: ["/usr", "/tmp/none"] } },
    }).filesystem;
    assert.ok(!fs.mounts.some((m) => m.type === "bind" && m.target === "/usr"));
    assert.ok(fs.notes.some((n) => /\/tmp\/none skipped: it does not exist/.test(n)));
  });

  it("refuses a secret", () => {
    assert.throws(
      () => testPlan({ host: HOST, policy: { filesystem: { readOnly: ["~/.ssh"] } } }),
      /is a secret/,
    );
  });
});

describe("filesystem.state", () => {
  it("is writable like filesystem.writable (made on the host before planning)", () => {
    const fs = testPlan({
      host: [...HOST, `${HOME}/.claude/`, `${HOME}/.claude.json`],
      policy: { filesystem: { state: ["~/.claude/", "~/.claude.json"] } },
    }).filesystem;
    assert.deepEqual(fs.writable, [WORK, `${HOME}/.claude`, `${HOME}/.claude.json`]);
  });
});

describe("planRlimits", () => {
  const limits = limitsSchema.parse({});
  it("sets RLIMIT_DATA only where no cgroup caps memory (it breaks V8's reservations)", () => {
    assert.deepEqual(
      planRlimits(limits).find((r) => r.name === "data"),
      { name: "data", value: 32 * 2 ** 30 },
    );
    assert.ok(!planRlimits(limits, { cgroupCapsMemory: true }).some((r) => r.name === "data"));
  });
});
