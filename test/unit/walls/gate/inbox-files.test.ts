/**
 * The inbox answers a change-set file by file: each file's line, sides and diff are escaped on the
 * server; the page answers with indexes of the files to apply, which become exactly those paths.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InboxApprover, inboxFiles } from "../../../../src/walls/gate/approvers/inbox.js";
import type { GateRequest } from "../../../../src/walls/gate/types.js";

const request: GateRequest = {
  id: "r1",
  box: "b",
  kind: "fs",
  summary: "overwrite 2 files",
  cwd: "/w",
  why: ["held"],
  via: "change-set",
  alwaysAllowed: false,
  time: new Date(0).toISOString(),
  changes: [
    { op: "overwrite", path: "a\x1b[2J.txt", diff: "--- a/a\n+++ b/a\n@@ -1 +1 @@\n-x\n+y\u202E\n" },
    { op: "delete", path: "b.txt", diffNote: "binary: no diff" },
  ],
};

describe("the inbox, file by file", () => {
  it("every value of a file is escaped on the server", () => {
    const files = inboxFiles(request);
    assert.equal(files[0]!.line, "overwrite a\\e[2J.txt");
    assert.equal(files[0]!.diff.at(-1), "+y\\u{202E}");
    assert.equal(files[1]!.note, "binary: no diff");
  });

  it("an answer of indexes applies exactly those paths; a bad index is refused", async () => {
    const inbox = new InboxApprover();
    const url = new URL(await inbox.start());
    try {
      const first = await fetch(url, { redirect: "manual" });
      const cookie = first.headers.get("set-cookie")!.split(";")[0]!;
      const session = cookie.split("=")[1]!;
      const asked = inbox.ask(request, new AbortController().signal);
      const post = (answer: unknown) =>
        fetch(new URL("/answer", url), {
          method: "POST",
          headers: { cookie, "X-Fourwall-Session": session, "Content-Type": "application/json" },
          body: JSON.stringify({ id: "r1", answer }),
        });
      assert.equal((await post({ approve: [5] })).status, 400);
      assert.equal((await post({ approve: ["b.txt"] })).status, 400, "paths are never taken from the page");
      assert.equal((await post({ approve: [1] })).status, 200);
      assert.deepEqual(await asked, { approve: ["b.txt"] });
    } finally {
      await inbox.close();
    }
  });
});
