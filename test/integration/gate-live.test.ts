/**
 * The live layer (issue 12), in real boxes launched as root and as uid 65534: while the box runs,
 * a new file is on the host within 2 s, a later change to it follows, one the box removes again
 * goes; a change to a file that existed before, a new repository and a symlink out stay in the
 * layer; the box's own view stays what it wrote (the host's copies in the overlay's lower layer
 * change nothing it sees); at the end only the old file is asked about.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { chownToMode, MODES, makeFixture, readAudit, startInBox, waitFor } from "../helpers/box.js";

/** Steps the box takes, each announced on stdout, 3 s apart (the test polls the host meanwhile). */
const BOX_SCRIPT = String.raw`
set -e
# an append (no O_TRUNC): the pause at the action lets it by, the layer holds it for the review
echo old-changed >> README.md
mkdir -p out sub && echo first > out/new.txt && ln -s /etc keys && git init -q sub
echo step1
sleep 3
echo second >> out/new.txt && echo gone > out/gone.txt
echo step2
sleep 3
rm out/gone.txt
echo step3
sleep 3
echo "view: $(cat out/new.txt | tr '\n' ' ')$(ls out | tr '\n' ' ')"
`;

for (const mode of MODES) {
  describe(`gate live layer (${mode})`, () => {
    it("new files reach the host within 2 s while the box runs; old files wait for the review", async () => {
      const fx = makeFixture(mode);
      const w = fx.workdir;
      const audit = path.join(fx.base, "audit.jsonl");
      const request = path.join(fx.base, "request.json");
      chownToMode(fx, fx.base);
      const box = startInBox(fx, ["--approver", `cat > ${request}; exit 1`, "--audit", audit], BOX_SCRIPT);
      const file = path.join(w, "out", "new.txt");
      const read = (p: string) => (existsSync(p) ? readFileSync(p, "utf8") : undefined);
      try {
        assert.ok(await waitFor(() => box.out().includes("step1"), 30_000), box.out());
        const t0 = Date.now();
        assert.ok(await waitFor(() => read(file) === "first\n", 2000), "the new file on the host within 2 s");
        const latency = Date.now() - t0;
        assert.equal(read(path.join(w, "README.md")), "# project\n", "an old file's change waits");
        assert.ok(!existsSync(path.join(w, "keys")), "a symlink out waits");
        assert.ok(!existsSync(path.join(w, "sub", ".git")), "a new repository waits");
        // (a tick may leave the rest to the next one when it runs over its budget: wait, do not sample)
        assert.ok(
          await waitFor(() => existsSync(path.join(w, "sub")), 2000),
          "the directory around it flows",
        );
        assert.ok(await waitFor(() => box.out().includes("step2"), 10_000), box.out());
        assert.ok(await waitFor(() => read(file) === "first\nsecond\n", 2000), "a later change follows");
        assert.ok(await waitFor(() => read(path.join(w, "out", "gone.txt")) === "gone\n", 2000));
        assert.ok(await waitFor(() => box.out().includes("step3"), 10_000), box.out());
        assert.ok(await waitFor(() => !existsSync(path.join(w, "out", "gone.txt")), 2000), "removed again");
        process.stderr.write(`# ${mode}: new file on the host ${latency} ms after the box wrote it\n`);
      } finally {
        const code = await Promise.race([
          box.closed,
          new Promise((r) => setTimeout(() => r("late"), 30_000)),
        ]);
        if (code === "late") box.child.kill("SIGKILL");
      }
      assert.equal(await box.closed, 0);
      assert.match(box.out(), /view: first second new\.txt/, "the box sees what it wrote, nothing more");
      const asked = JSON.parse(readFileSync(request, "utf8"));
      const ops = asked.changes.map((c: { op: string; path: string }) => `${c.op} ${c.path}`).sort();
      assert.deepEqual(ops, ["new-repo sub/.git", "overwrite README.md", "symlink-out keys"]);
      assert.equal(read(path.join(w, "README.md")), "# project\n", "refused: the original stays");
      assert.equal(read(file), "first\nsecond\n");
      const live = readAudit(audit).filter((e) => e.event === "live");
      assert.ok(
        live.some((e) => e.applied.includes("out/new.txt")),
        JSON.stringify(live),
      );
      assert.deepEqual(
        live.flatMap((e) => e.failures),
        [],
      );
    });
  });
}
