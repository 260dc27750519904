/**
 * What the box can reach beyond the workdir's top level: every git dir (nested repositories,
 * submodules, worktrees, pointer files, commondir, core.hooksPath), .env files at any depth, shell
 * start-up files, the repository around a monorepo subdir, and the box's own user list.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Mount } from "../../../../src/walls/filesystem/mounts.js";
import { identityFiles } from "../../../../src/walls/filesystem/passwd.js";
import { FilesystemPlanError, planFilesystem } from "../../../../src/walls/filesystem/plan.js";
import { filesystemSchema } from "../../../../src/walls/filesystem/schema.js";
import { fakeHost } from "../../../helpers/fake-host.js";

const HOME = "/home/alice";
const WORK = "/home/alice/proj";
const G = `${WORK}/.git`;
const repo = [
  `${G}/HEAD`,
  `${G}/config`,
  `${G}/hooks/`,
  `${G}/objects/info/`,
  `${G}/refs/heads/`,
  `${WORK}/src/a.ts`,
];

const plan = (host: string[], contents: Record<string, string> = {}, policy: object = {}, workdir = WORK) =>
  planFilesystem(filesystemSchema.parse(policy), { workdir, home: HOME, host: fakeHost(host, {}, contents) });

const readOnly = (mounts: Mount[]) =>
  mounts.filter((m) => m.type === "bind" && !m.writable).map((m) => m.target);
const pinned = (mounts: Mount[]) =>
  mounts.filter((m) => m.type === "bind" && m.writable && m.why.startsWith("pinned")).map((m) => m.target);
/** Guarded: read-only now, or a placeholder stands there (or on a missing parent). */
const guarded = (r: ReturnType<typeof plan>, p: string) =>
  readOnly(r.mounts).includes(p) || r.placeholders.some((ph) => p === ph.path || p.startsWith(`${ph.path}/`));

describe("git dirs the box can reach", () => {
  it("guards every code-bearing name of the workdir's git dir, and pins the git dir", () => {
    const r = plan(repo);
    for (const name of ["config", "hooks", "commondir", "info", "config.worktree", "objects/info/alternates"])
      assert.ok(guarded(r, `${G}/${name}`), name);
    assert.ok(pinned(r.mounts).includes(G), "the .git dir cannot be renamed away and rebuilt");
    // what git writes in normal work stays writable
    for (const name of ["objects", "refs", "index", "HEAD", "logs", "packed-refs"])
      assert.ok(!guarded(r, `${G}/${name}`), name);
    // a missing commondir's placeholder means "this git dir": git keeps working while it stands
    assert.equal(r.placeholders.find((p) => p.path === `${G}/commondir`)?.content, ".\n");
  });

  it("pins come before the read-only islands they hold", () => {
    const { mounts } = plan(repo);
    const pinAt = mounts.findIndex((m) => m.target === G);
    const hooksAt = mounts.findIndex((m) => m.target === `${G}/hooks`);
    assert.ok(pinAt > 0 && hooksAt > pinAt);
  });

  it("guards a nested repository that existed before the run, and its .gitmodules", () => {
    const r = plan([...repo, `${WORK}/lib/.git/HEAD`, `${WORK}/lib/.git/hooks/`, `${WORK}/lib/x.c`]);
    for (const p of ["lib/.git/hooks", "lib/.git/config", "lib/.git/commondir", "lib/.gitmodules"])
      assert.ok(guarded(r, `${WORK}/${p}`), p);
    assert.ok(pinned(r.mounts).includes(`${WORK}/lib/.git`));
  });

  it("guards submodules' and worktrees' git dirs, and the git dir a pointer file names", () => {
    const host = [
      ...repo,
      `${G}/modules/sub/HEAD`,
      `${G}/modules/sub/hooks/`,
      `${G}/modules/a/modules/b/HEAD`,
      `${G}/worktrees/wt1/HEAD`,
      `${G}/worktrees/wt1/commondir`,
    ];
    const r = plan(host, { [`${WORK}/sub/.git`]: "gitdir: ../.git/modules/sub\n" });
    for (const d of ["modules/sub", "modules/a/modules/b", "worktrees/wt1"])
      for (const name of ["hooks", "config", "commondir"])
        assert.ok(guarded(r, `${G}/${d}/${name}`), `${d}/${name}`);
    assert.ok(readOnly(r.mounts).includes(`${WORK}/sub/.git`), "the pointer file cannot be repointed");
  });

  it("follows commondir to the common git dir", () => {
    const host = [...repo.filter((e) => !e.startsWith(G)), `${WORK}/.common/HEAD`, `${G}/HEAD`];
    const r = plan(host, { [`${G}/commondir`]: "../.common\n" });
    assert.ok(readOnly(r.mounts).includes(`${G}/commondir`));
    assert.ok(guarded(r, `${WORK}/.common/config`) && guarded(r, `${WORK}/.common/hooks`));
  });

  it("guards core.hooksPath from the repository's, the user's and the system's config (husky, .githooks)", () => {
    const r = plan([...repo, `${WORK}/.husky/pre-commit`, `${WORK}/.husky/_/h`], {
      [`${G}/config`]: '[core]\n\trepositoryformatversion = 0\n[core]\n\thooksPath = ".husky/_"\n',
    });
    assert.ok(
      readOnly(r.mounts).includes(`${WORK}/.husky`),
      "husky's shims run .husky/<hook>: all of .husky",
    );
    const global = plan(repo, { [`${HOME}/.gitconfig`]: "[core]\n  hookspath = .githooks # team hooks\n" });
    assert.ok(guarded(global, `${WORK}/.githooks`), "a missing hooks dir gets a placeholder");
    const conventional = plan([...repo, `${WORK}/.githooks/pre-push`]);
    assert.ok(
      readOnly(conventional.mounts).includes(`${WORK}/.githooks`),
      ".githooks guarded without hooksPath",
    );
  });

  it("lets allowPersistence opt a git name back in", () => {
    const r = plan(repo, {}, { allowPersistence: [".git/hooks"] });
    assert.ok(!guarded(r, `${G}/hooks`));
    assert.ok(guarded(r, `${G}/config`));
  });
});

describe(".env files at any depth", () => {
  it("masks .env*, *.env anywhere in the workdir, not in node_modules", () => {
    const host = [
      ...repo,
      `${WORK}/.env`,
      `${WORK}/apps/api/.env`,
      `${WORK}/apps/api/prod.env`,
      `${WORK}/apps/api/.env.local`,
      `${WORK}/apps/web/deep/er/x/.envrc`,
      `${WORK}/node_modules/pkg/.env`,
      `${WORK}/apps/api/environment.ts`,
    ];
    const masked = plan(host)
      .mounts.filter((m) => m.type === "empty-file")
      .map((m) => m.target);
    for (const p of [
      ".env",
      "apps/api/.env",
      "apps/api/prod.env",
      "apps/api/.env.local",
      "apps/web/deep/er/x/.envrc",
    ])
      assert.ok(masked.includes(`${WORK}/${p}`), p);
    assert.ok(!masked.includes(`${WORK}/apps/api/environment.ts`));
  });

  it("fails closed past the walk's bound, naming the fix", () => {
    const host = [...repo, ...Array.from({ length: 30 }, (_, i) => `${WORK}/f${i}`)];
    assert.throws(
      () => plan(host, {}, { scanLimit: 10 }),
      (e: unknown) => e instanceof FilesystemPlanError && /scanLimit/.test(e.message),
    );
  });
});

describe("a workdir inside a repository (monorepo subdir)", () => {
  const mono = `${HOME}/mono`;
  const host = [
    `${mono}/.git/HEAD`,
    `${mono}/.git/config`,
    `${mono}/.git/hooks/`,
    `${mono}/apps/api/main.ts`,
    `${mono}/.env`,
  ];
  it("shows the repository read-only so git finds it, with its secrets masked", () => {
    const r = plan(host, {}, {}, `${mono}/apps/api`);
    assert.ok(readOnly(r.mounts).includes(mono));
    assert.ok(r.mounts.some((m) => m.type === "empty-file" && m.target === `${mono}/.env`));
    assert.ok(r.notes.some((n) => n.includes(mono) && n.includes("read-only")));
    assert.deepEqual(r.writable, [`${mono}/apps/api`]);
  });
});

describe("shell start-up files", () => {
  it("keeps existing ones read-only anywhere in the workdir", () => {
    const r = plan([...repo, `${WORK}/docker/home/.bashrc`, `${WORK}/.zshenv`]);
    assert.ok(readOnly(r.mounts).includes(`${WORK}/docker/home/.bashrc`));
    assert.ok(readOnly(r.mounts).includes(`${WORK}/.zshenv`));
  });

  it("with HOME as the workdir: every start-up file, autostart, systemd user units, ~/.local/bin", () => {
    const r = plan([`${HOME}/.profile`, `${HOME}/.bashrc`, `${HOME}/.ssh/id_rsa`], {}, {}, HOME);
    for (const p of [
      ".bashrc",
      ".bash_profile",
      ".zshrc",
      ".zprofile",
      ".zshenv",
      ".bash_login",
      ".bash_logout",
      ".profile",
    ])
      assert.ok(guarded(r, `${HOME}/${p}`), p);
    for (const p of [".config/autostart", ".config/systemd/user", ".local/bin"])
      assert.ok(guarded(r, `${HOME}/${p}`), p);
    // the .bash_profile placeholder must not shadow the user's .profile for the host's login shells
    assert.match(r.placeholders.find((p) => p.path === `${HOME}/.bash_profile`)?.content ?? "", /\.profile/);
  });
});

describe("the box's own user list", () => {
  it("has root, nobody and the box user, nothing else", () => {
    const [passwd, group] = identityFiles({ uid: 70000, gid: 70000, name: "alice", home: HOME });
    assert.ok(passwd?.type === "file" && passwd.target === "/etc/passwd");
    assert.deepEqual(
      passwd.content
        .trim()
        .split("\n")
        .map((l) => l.split(":")[0]),
      ["root", "alice", "nobody"],
    );
    assert.match(passwd.content, /^alice:x:70000:70000:[^:]*:\/home\/alice:/m);
    assert.ok(group?.type === "file" && /^alice:x:70000:$/m.test(group.content));
    const nobody = identityFiles({ uid: 65534, gid: 65534, name: "x", home: "/w" })[0]!;
    assert.ok(nobody.type === "file" && /^nobody:x:65534:65534:nobody:\/w:/m.test(nobody.content));
  });
});
