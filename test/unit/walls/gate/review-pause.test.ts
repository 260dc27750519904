/**
 * The review at exit after the pause at the action (pure enough: real directories standing in for
 * the layer and the workdir, no overlay): a change a human approved at the action is applied without
 * a second question; one not approved still asks; a change already applied early is no change.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { AuditLog } from "../../../../src/audit/log.js";
import { Broker } from "../../../../src/walls/gate/broker.js";
import { overlayHelperPath } from "../../../../src/walls/gate/paths.js";
import { reviewChangeSet } from "../../../../src/walls/gate/review.js";
import { gateSchema } from "../../../../src/walls/gate/schema.js";
import type { Approver, GateRequest } from "../../../../src/walls/gate/types.js";

const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-review-pause-"));
after(() => rmSync(base, { recursive: true, force: true }));

/** An approver that says no and remembers what it was asked. */
function recorder(): Approver & { asked: GateRequest[] } {
  const asked: GateRequest[] = [];
  return {
    name: "recorder",
    asked,
    ask: async (r) => {
      asked.push(r);
      return "no";
    },
  };
}

type AtAction = { op: string; path: string; to?: string }[];

/** The review at exit of `upper` over `workdir`, with a recording approver that says no. */
async function reviewAt(upper: string, workdir: string, approvedAtAction: AtAction) {
  const approver = recorder();
  const result = await reviewChangeSet({
    box: "b1",
    upper,
    workdir,
    helper: overlayHelperPath(),
    policy: gateSchema.parse({}).fs,
    broker: new Broker({
      box: "b1",
      audit: new AuditLog(undefined),
      approvers: [approver],
      timeoutMs: 5000,
      always: "off",
    }),
    audit: new AuditLog(undefined),
    gitHistory: false,
    notify: () => {},
    approvedAtAction,
  });
  return { result, approver };
}

async function review(approvedAtAction: AtAction) {
  const dir = mkdtempSync(path.join(base, "case-"));
  const upper = path.join(dir, "upper");
  const workdir = path.join(dir, "work");
  mkdirSync(upper);
  mkdirSync(workdir);
  // the box rewrote both files after the run started; one was approved at the action
  for (const name of ["approved.txt", "other.txt"]) {
    writeFileSync(path.join(workdir, name), "before\n");
    writeFileSync(path.join(upper, name), "after\n");
  }
  // applied early by the pause: identical in the layer and on the host, so no change at all
  writeFileSync(path.join(workdir, "synced.txt"), "same\n");
  writeFileSync(path.join(upper, "synced.txt"), "same\n");
  const { result, approver } = await reviewAt(upper, workdir, approvedAtAction);
  return { result, approver, workdir };
}

describe("the review after the pause", () => {
  it("a change approved at the action is applied without asking again; the others still ask", async () => {
    const { result, approver, workdir } = await review([{ op: "overwrite", path: "approved.txt" }]);
    assert.equal(readFileSync(path.join(workdir, "approved.txt"), "utf8"), "after\n");
    assert.equal(readFileSync(path.join(workdir, "other.txt"), "utf8"), "before\n", "refused at exit");
    assert.deepEqual(
      approver.asked.flatMap((r) => r.changes!.map((c) => `${c.op} ${c.path}`)),
      ["overwrite other.txt"],
    );
    assert.equal(result.applied, 1);
  });

  it("an approval is keyed to the path and the kind of change", async () => {
    const { approver, workdir } = await review([{ op: "delete", path: "approved.txt" }]);
    assert.equal(readFileSync(path.join(workdir, "approved.txt"), "utf8"), "before\n");
    assert.equal(approver.asked[0]!.changes!.length, 2);
  });

  it("an approved rename covers that rename to that name only, never a bare delete of its source", {
    skip: process.getuid?.() !== 0 && "whiteouts (mknod 0:0) need root",
  }, async () => {
    const run = async (atNewName: (p: string) => void) => {
      const dir = mkdtempSync(path.join(base, "rename-"));
      const upper = path.join(dir, "upper");
      const workdir = path.join(dir, "work");
      mkdirSync(upper);
      mkdirSync(workdir);
      writeFileSync(path.join(workdir, "notes.txt"), "notes\n");
      spawnSync("mknod", [path.join(upper, "notes.txt"), "c", "0", "0"]);
      atNewName(path.join(upper, "notes.md"));
      const { approver } = await reviewAt(upper, workdir, [
        { op: "rename", path: "notes.txt", to: "notes.md" },
      ]);
      return { approver, workdir };
    };
    // the file reached its new name: the rename, not asked again
    const moved = await run((p) => writeFileSync(p, "notes\n"));
    assert.deepEqual(moved.approver.asked, []);
    assert.equal(readFileSync(path.join(moved.workdir, "notes.md"), "utf8"), "notes\n");
    // a symlink out in its place: the source's delete and the symlink are asked (no: both kept)
    const swapped = await run((p) => symlinkSync("/root/.ssh/authorized_keys", p));
    assert.deepEqual(
      swapped.approver.asked.flatMap((r) => r.changes!.map((c) => `${c.op} ${c.path}`)).sort(),
      ["delete notes.txt", "symlink-out notes.md"],
    );
    assert.equal(readFileSync(path.join(swapped.workdir, "notes.txt"), "utf8"), "notes\n");
  });
});
