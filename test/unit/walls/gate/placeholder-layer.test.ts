/**
 * A layer that only carries the placeholders (issue 12, no trace on the host): the plan makes the
 * layer whenever placeholders stand in the workdir, asked or not; when the policy allows every
 * change, the review at exit asks nothing — not even what a holding layer always asks (exec,
 * symlink-out) — so the box behaves as it did without a layer. Real directories stand in for the
 * layer and the workdir.
 */
import assert from "node:assert/strict";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { AuditLog } from "../../../../src/audit/log.js";
import { Broker } from "../../../../src/walls/gate/broker.js";
import { overlayHelperPath } from "../../../../src/walls/gate/paths.js";
import { planGate } from "../../../../src/walls/gate/plan.js";
import { reviewChangeSet } from "../../../../src/walls/gate/review.js";
import { gateSchema } from "../../../../src/walls/gate/schema.js";
import type { GateRequest } from "../../../../src/walls/gate/types.js";

const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-placeholder-layer-"));
after(() => rmSync(base, { recursive: true, force: true }));

const ALLOW_ALL = gateSchema.parse({ fs: { default: "allow", rules: [] } });
const ctx = { home: "/home/u", presets: [], fourwall: ["fourwall"] };

describe("the layer that carries the placeholders", () => {
  it("is planned whenever placeholders stand in the workdir; it holds only when the policy can refuse", () => {
    const asks = gateSchema.parse({});
    assert.deepEqual(pick(planGate(asks, ctx)), { overlay: true, holds: true, gitHistory: true });
    assert.deepEqual(pick(planGate(ALLOW_ALL, ctx)), { overlay: false, holds: false, gitHistory: false });
    assert.deepEqual(pick(planGate(ALLOW_ALL, { ...ctx, workdirPlaceholders: true })), {
      overlay: true,
      holds: false,
      gitHistory: false,
    });
  });

  for (const holds of [false, true]) {
    it(`${holds ? "a holding layer asks" : "asks nothing"} about an exec chmod and a symlink out (allow-all policy)`, async () => {
      const dir = mkdtempSync(path.join(base, "case-"));
      const upper = path.join(dir, "upper");
      const workdir = path.join(dir, "work");
      mkdirSync(upper);
      mkdirSync(workdir);
      writeFileSync(path.join(workdir, "run.sh"), "echo hi\n", { mode: 0o644 });
      writeFileSync(path.join(upper, "run.sh"), "echo hi\n");
      chmodSync(path.join(upper, "run.sh"), 0o755);
      symlinkSync("/etc/passwd", path.join(upper, "out"));
      const asked: GateRequest[] = [];
      await reviewChangeSet({
        box: "b1",
        upper,
        workdir,
        helper: overlayHelperPath(),
        policy: ALLOW_ALL.fs,
        broker: new Broker({
          box: "b1",
          audit: new AuditLog(undefined),
          approvers: [
            {
              name: "no",
              ask: async (r) => {
                asked.push(r);
                return "no";
              },
            },
          ],
          timeoutMs: 5000,
          always: "off",
        }),
        audit: new AuditLog(undefined),
        gitHistory: false,
        notify: () => {},
        holds,
      });
      const mode = lstatSync(path.join(workdir, "run.sh")).mode & 0o777;
      const linked =
        lstatSync(path.join(workdir, "out"), { throwIfNoEntry: false })?.isSymbolicLink() ?? false;
      if (holds) {
        assert.equal(asked.length, 1);
        assert.equal(mode, 0o644);
        assert.equal(linked, false);
      } else {
        assert.equal(asked.length, 0, "nothing asked");
        assert.equal(mode, 0o755);
        assert.equal(linked, true);
      }
    });
  }
});

const pick = ({ overlay, holds, gitHistory }: ReturnType<typeof planGate>) => ({
  overlay,
  holds,
  gitHistory,
});
