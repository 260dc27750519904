/**
 * One rule for a box name wherever one is taken: the Node side (checkBoxName, boxDir, readBox,
 * listBoxes) and bin/fourwall's sh fast path, which must hand every name the rule refuses to Node
 * (which refuses it) instead of turning it into a path.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import { checkBoxName, isBoxName } from "../../../src/box/name.js";
import { boxDir, readBox } from "../../../src/box/persistent.js";

const GOOD = ["a", "box1", "my-box", "my_box.2", "A", "0", "a..b", "x".repeat(63)];
const BAD = [
  "",
  ".",
  "..",
  "../x",
  "../../x",
  "a/b",
  "/abs",
  ".hidden",
  "-rf",
  "--help",
  "a b",
  "a;b",
  "a$b",
  "a*",
  "a?",
  "[a]",
  "a\nb",
  "é",
  "x".repeat(64),
];

describe("box names", () => {
  test("the rule", () => {
    for (const name of GOOD) assert.equal(isBoxName(name), true, name);
    for (const name of BAD) {
      assert.equal(isBoxName(name), false, JSON.stringify(name));
      assert.throws(() => checkBoxName(name), /bad box name/);
      assert.throws(() => boxDir(name), /bad box name/, "a bad name never becomes a path");
      assert.equal(readBox(name), undefined);
    }
  });

  test("bin/fourwall's fast path enters only boxes with a valid name", () => {
    // A copy of the shim beside a fake native helper and a fake node: each says who was called.
    const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-name-"));
    try {
      chmodSync(base, 0o755);
      mkdirSync(path.join(base, "pkg/bin"), { recursive: true });
      mkdirSync(path.join(base, "pkg/native/build"), { recursive: true });
      mkdirSync(path.join(base, "fakebin"));
      copyFileSync(
        path.resolve(import.meta.dirname, "../../../bin/fourwall"),
        path.join(base, "pkg/bin/fourwall"),
      );
      const fake = (file: string, word: string) =>
        writeFileSync(file, `#!/bin/sh\necho ${word}\n`, { mode: 0o755 });
      fake(path.join(base, "pkg/native/build/fourwall-enter"), "ENTER");
      fake(path.join(base, "fakebin/node"), "NODE");
      // uid 65534 with its own runtime dir: the shim's state dir is then under our temp dir.
      const runtime = path.join(base, "run");
      const boxes = path.join(runtime, "fourwall/boxes");
      mkdirSync(boxes, { recursive: true });
      const plant = (dir: string) => {
        mkdirSync(dir, { recursive: true });
        writeFileSync(path.join(dir, "info.json"), "{}");
      };
      spawnSync("chmod", ["-R", "a+rwX", base]);
      const shim = (name: string) =>
        spawnSync(
          "setpriv",
          [
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "env",
            `PATH=${path.join(base, "fakebin")}:/usr/bin:/bin`,
            `XDG_RUNTIME_DIR=${runtime}`,
            "/bin/sh",
            path.join(base, "pkg/bin/fourwall"),
            "exec",
            name,
            "--",
            "true",
          ],
          { encoding: "utf8" },
        ).stdout.trim();
      for (const name of GOOD) {
        plant(path.join(boxes, name));
        assert.equal(shim(name), "ENTER", name);
      }
      for (const name of BAD) {
        // wherever the name would lead, a stale record is waiting there
        const lands = path.resolve(boxes, name || ".");
        if (lands.startsWith(`${base}/`)) plant(lands);
        assert.equal(shim(name), "NODE", JSON.stringify(name));
      }
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
