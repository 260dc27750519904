import assert from "node:assert/strict";
import { closeSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import { OutputFileError, openOutputFile, writeOutputFile } from "../../../src/core/output-file.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "fwtest-output-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("output files at a caller-named path", () => {
  test("never through a symlink: refused with the path named, the target untouched", () => {
    const target = path.join(dir, "target");
    writeFileSync(target, "keep\n");
    const link = path.join(dir, "link");
    symlinkSync(target, link);
    for (const open of [() => openOutputFile(link, "append"), () => writeOutputFile(link, "x")])
      assert.throws(
        open,
        (e: Error) => e instanceof OutputFileError && e.message.startsWith(`${link} is a symbolic link`),
      );
    assert.equal(readFileSync(target, "utf8"), "keep\n");
  });

  test("append keeps what is there; replace empties it", () => {
    const file = path.join(dir, "log");
    writeFileSync(file, "a\n");
    const fd = openOutputFile(file, "append");
    writeSync(fd, "b\n");
    closeSync(fd);
    assert.equal(readFileSync(file, "utf8"), "a\nb\n");
    writeOutputFile(file, "c\n");
    assert.equal(readFileSync(file, "utf8"), "c\n");
  });

  test("a directory is no output file", () => {
    assert.throws(() => openOutputFile(dir, "append"));
  });
});
