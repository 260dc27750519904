/**
 * Globs in policy paths: only the policy's words are a pattern (a workdir or HOME named with glob
 * characters is data), they match without RegExp or a shell, are bounded, and do what POLICY.md
 * says in hide (every match hidden) and readOnly (every match read-only; no placeholder named "*").
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { policySchema } from "../../../../src/policy/schema.js";
import {
  expandGlob,
  GLOB_MAX_MATCHES,
  hasGlob,
  literalPath,
  policyPathProblem,
} from "../../../../src/walls/filesystem/glob.js";
import type { Mount } from "../../../../src/walls/filesystem/mounts.js";
import { FilesystemPlanError, planFilesystem } from "../../../../src/walls/filesystem/plan.js";
import { filesystemSchema } from "../../../../src/walls/filesystem/schema.js";
import { fakeHost } from "../../../helpers/fake-host.js";

const HOME = "/home/alice";
/** Names full of what sh and RegExp would read as syntax. */
const NASTY = [
  "proj?",
  "proj*",
  "proj[",
  "proj[x]",
  "a]b",
  "{a,b}",
  "$HOME",
  "it's",
  'say "hi"',
  "back\\slash",
  "semi;colon",
  "two words",
  "new\nline",
  "-rf",
  "(x)|y+.^",
];

const plan = (policy: object, workdir: string, host: string[]) =>
  planFilesystem(filesystemSchema.parse(policy), { workdir, home: HOME, host: fakeHost(host) });

const bindTargets = (mounts: Mount[], writable: boolean) =>
  mounts.filter((m) => m.type === "bind" && m.writable === writable).map((m) => m.target);

describe("policy globs", () => {
  it("matches * ? [..] within one name, with escapes, dot-files only explicitly", () => {
    const host = fakeHost([
      "/d/a.txt",
      "/d/b.txt",
      "/d/.h.txt",
      "/d/c.md",
      "/d/x1",
      "/d/x2",
      "/d/xa",
      "/d/*.txt",
      "/d/sub/a.txt",
      "/d/[lit]",
    ]);
    const m = (p: string) => expandGlob("/d", p, host).sort();
    assert.deepEqual(m("*.txt"), ["/d/*.txt", "/d/a.txt", "/d/b.txt"]);
    assert.deepEqual(m(".*.txt"), ["/d/.h.txt"]);
    assert.deepEqual(m("x?"), ["/d/x1", "/d/x2", "/d/xa"]);
    assert.deepEqual(m("x[0-9]"), ["/d/x1", "/d/x2"]);
    assert.deepEqual(m("x[!0-9]"), ["/d/xa"]);
    assert.deepEqual(m("\\*.txt"), ["/d/*.txt"], "an escaped * is the literal name");
    assert.deepEqual(m("\\[lit]"), ["/d/[lit]"]);
    assert.deepEqual(m("*/a.txt"), ["/d/sub/a.txt"]);
    assert.deepEqual(m("nothing*"), []);
    assert.deepEqual(m("missing"), ["/d/missing"], "a literal path comes back whether or not it exists");
    assert.deepEqual(m("a["), ["/d/a["], "an unclosed [ is literal");
    assert.equal(hasGlob("a\\*b"), false);
    assert.equal(literalPath("a\\*b/c\\[d"), "a*b/c[d");
  });

  it("never reads the base directory as a pattern, whatever its name", () => {
    for (const name of NASTY) {
      const workdir = `/w/${name}`;
      // siblings that a pattern made of the workdir's name would match
      const host = [
        `${workdir}/.env`,
        `${workdir}/src/a`,
        "/w/projX/.env",
        "/w/projX/.envrc",
        "/w/proj/x",
        "/w/a/.env",
        "/w/b/.env",
        "/w/x/.env",
      ];
      const p = plan({}, workdir, host);
      const covered = p.mounts.filter((m) => m.type === "empty-file").map((m) => m.target);
      assert.deepEqual(covered, [`${workdir}/.env`], JSON.stringify(name));
      for (const placeholder of p.placeholders)
        assert.ok(placeholder.path.startsWith(`${workdir}/`), `${JSON.stringify(name)}: ${placeholder.path}`);
    }
  });

  it("readOnly globs make every match read-only and stand no placeholder named after the glob", () => {
    const workdir = "/w/p";
    const host = [`${workdir}/dir/a.txt`, `${workdir}/dir/b.txt`, `${workdir}/dir/c.md`];
    const p = plan({ readOnly: ["dir/*.txt"] }, workdir, host);
    const ro = bindTargets(p.mounts, false);
    assert.ok(ro.includes(`${workdir}/dir/a.txt`) && ro.includes(`${workdir}/dir/b.txt`));
    assert.ok(!ro.includes(`${workdir}/dir/c.md`));
    assert.ok(!p.placeholders.some((x) => x.path.includes("*")));
    // nothing matches: nothing to protect (said in the notes), and no literal "*.txt" placeholder
    const none = plan({ readOnly: ["other/*.txt"] }, workdir, host);
    assert.deepEqual(
      none.placeholders.filter((x) => x.path.includes("other")),
      [],
    );
    assert.match(none.notes.join("\n"), /readOnly\[0\].*matches nothing/);
    // an escaped glob character is a literal name: protected before it exists, as any literal path
    const lit = plan({ readOnly: ["dir/\\*.txt"] }, workdir, host);
    assert.deepEqual(
      lit.placeholders.map((x) => x.path),
      [`${workdir}/dir/*.txt`, ...lit.placeholders.slice(1).map((x) => x.path)],
    );
  });

  it("hide globs hide every match; a glob that reaches the workdir or above is an error", () => {
    const workdir = `${HOME}/proj`;
    const host = [`${workdir}/keys/a.pem`, `${workdir}/keys/b.pem`, `${HOME}/x.pem`];
    const p = plan({ hide: ["keys/*.pem", "~/*.pem"] }, workdir, host);
    const covered = p.mounts.filter((m) => m.type === "empty-file").map((m) => m.target);
    for (const f of [`${workdir}/keys/a.pem`, `${workdir}/keys/b.pem`]) assert.ok(covered.includes(f), f);
    // a top-level home entry is simply left out of the rebuilt HOME
    assert.ok(!p.mounts.some((m) => m.target === `${HOME}/x.pem` && m.type === "bind"));
    for (const bad of ["/home/*", "/*", "~/pro?"])
      assert.throws(
        () => plan({ hide: [bad] }, workdir, host),
        (e: unknown) => e instanceof FilesystemPlanError && /hide\[0\].*workdir/.test(e.message),
        bad,
      );
  });

  it("is bounded", () => {
    const many = Array.from({ length: GLOB_MAX_MATCHES + 1 }, (_, i) => `/w/p/f/${i}.log`);
    assert.throws(
      () => plan({ hide: ["f/*.log"] }, "/w/p", many),
      (e: unknown) => e instanceof FilesystemPlanError && /hide\[0\].*more than 1000/.test(e.message),
    );
  });

  it("policy check refuses what cannot be enforced, at its location", () => {
    assert.equal(policyPathProblem("a/*.txt", true), undefined);
    assert.match(policyPathProblem("~/.cache/*", false)!, /globs are not supported/);
    assert.equal(policyPathProblem("~/.cache/\\*", false), undefined);
    const cases: [object, RegExp][] = [
      [{ filesystem: { writable: ["~/a/*"] } }, /filesystem.*writable.*0/],
      [{ filesystem: { scratch: ["x?"] } }, /filesystem.*scratch.*0/],
      [{ filesystem: { readOnly: ["**/x"] } }, /filesystem.*readOnly.*0/],
      [{ filesystem: { hide: ["ok", "../x"] } }, /filesystem.*hide.*1/],
    ];
    for (const [policy, where] of cases) {
      const r = policySchema.safeParse(policy);
      assert.equal(r.success, false, JSON.stringify(policy));
      const issue = r.error!.issues[0]!;
      assert.match(issue.path.join("."), where, JSON.stringify(policy));
    }
    // and the planner says the same when handed such a policy anyway
    assert.throws(
      () =>
        planFilesystem(
          { ...filesystemSchema.parse({}), writable: ["~/a/*"] },
          { workdir: "/w/p", home: HOME, host: fakeHost(["/w/p/"]) },
        ),
      /filesystem\.writable\[0\].*globs/,
    );
  });
});
