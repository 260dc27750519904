/**
 * Files fourwall writes at a path the caller names (--audit here; --junit, k8s --out and the bench
 * go through the same src/core/output-file.ts): another local user who plants a symlink or a file of
 * their own at that path in a shared sticky directory (like /tmp) must not get fourwall (root, or
 * another user) to write into a file the victim can write. Both launch modes; the old way of opening
 * (a plain append) is shown writing through the link, so the check sees the hole.
 */
import assert from "node:assert/strict";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { MODES, type Mode, makeFixture, runInBox, USER_UID } from "../helpers/box.js";

/** A shared sticky world-writable directory of the test's own (what /tmp is). */
const shared = mkdtempSync(path.join(os.tmpdir(), "fwtest-sticky-"));
chmodSync(shared, 0o1777);
after(() => rmSync(shared, { recursive: true, force: true }));

const victimUid = (mode: Mode) => (mode === "root" ? 0 : USER_UID);
/** The attacker: nobody when the victim is root, uid 65533 when it is 65534. */
const attackerUid = (mode: Mode) => (mode === "root" ? USER_UID : USER_UID - 1);

/** A file only the victim may write, and the attacker's link to it at `name` in the shared dir. */
function plantLink(mode: Mode, name: string) {
  const target = path.join(shared, `${name}.victim`);
  writeFileSync(target, "the victim's own file\n", { mode: 0o600 });
  chownSync(target, victimUid(mode), victimUid(mode));
  const link = path.join(shared, name);
  symlinkSync(target, link);
  // a symlink's owner is whoever made it: the attacker
  chownSync(link, attackerUid(mode), attackerUid(mode));
  return { target, link };
}

for (const mode of MODES) {
  describe(`--audit at a path another user prepared (${mode})`, () => {
    it("a symlink planted at the path is refused (exit 125, the path named), its target unchanged", async () => {
      const { target, link } = plantLink(mode, `audit-link-${mode}.jsonl`);
      const r = await runInBox(makeFixture(mode), ["true"], { flags: ["--audit", link] });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, new RegExp(`${link.replaceAll(".", "\\.")} is a symbolic link`));
      assert.equal(readFileSync(target, "utf8"), "the victim's own file\n");
    });

    it("the old open (a plain append) writes through the same link: the check above sees that hole", () => {
      const { target, link } = plantLink(mode, `audit-old-${mode}.jsonl`);
      appendFileSync(link, '{"event":"old"}\n', { mode: 0o600 });
      assert.notEqual(readFileSync(target, "utf8"), "the victim's own file\n");
    });

    it("a file another user planted in the sticky directory is refused; one's own is appended to", async () => {
      const planted = path.join(shared, `audit-planted-${mode}.jsonl`);
      writeFileSync(planted, "", { mode: 0o666 });
      chownSync(planted, attackerUid(mode), attackerUid(mode));
      chmodSync(planted, 0o666); // writable by the victim: only the owner check stands in the way
      const fx = makeFixture(mode);
      const r = await runInBox(fx, ["true"], { flags: ["--audit", planted] });
      assert.equal(r.code, 125, r.stderr);
      assert.match(r.stderr, /belongs to uid \d+, in a directory anyone can write/);
      assert.equal(readFileSync(planted, "utf8"), "");

      const own = path.join(shared, `audit-own-${mode}.jsonl`);
      const first = await runInBox(fx, ["true"], { flags: ["--audit", own] });
      assert.equal(first.code, 0, first.stderr);
      const second = await runInBox(fx, ["true"], { flags: ["--audit", own] });
      assert.equal(second.code, 0, second.stderr);
      const boxes = new Set(
        readFileSync(own, "utf8")
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l).box),
      );
      assert.equal(boxes.size, 2, "both runs appended to the caller's own file");
    });
  });
}
