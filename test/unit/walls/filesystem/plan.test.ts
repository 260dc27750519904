import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Mount } from "../../../../src/walls/filesystem/mounts.js";
import { FilesystemPlanError, planFilesystem } from "../../../../src/walls/filesystem/plan.js";
import { filesystemSchema } from "../../../../src/walls/filesystem/schema.js";
import { fakeHost } from "../../../helpers/fake-host.js";

const HOME = "/home/alice";
const WORK = "/home/alice/proj";
const baseHost = [
  `${HOME}/.ssh/id_ed25519`,
  `${HOME}/.aws/credentials`,
  `${HOME}/.config/gcloud/credentials.db`,
  `${HOME}/.config/nvim/init.lua`,
  `${HOME}/.bashrc`,
  `${HOME}/.netrc`,
  `${HOME}/.docker-link->/srv/docker`,
  `${HOME}/agent.sock=socket`,
  `${WORK}/src/main.ts`,
  `${WORK}/.env`,
  `${WORK}/.env.production`,
  `${WORK}/.git/hooks/`,
  `${WORK}/.git/config`,
  "/run/docker.sock=socket",
  "/tmp/.X11-unix/X0=socket",
  "/var/tmp/",
  "/srv/docker/",
];

const plan = (policy: object = {}, host = baseHost, opts: Partial<{ workdir: string; home: string }> = {}) =>
  planFilesystem(filesystemSchema.parse(policy), {
    workdir: opts.workdir ?? WORK,
    home: opts.home ?? HOME,
    host: fakeHost(host),
  });

const targets = (mounts: Mount[], pred: (m: Mount) => boolean) => mounts.filter(pred).map((m) => m.target);
const bindsOf = (mounts: Mount[]) =>
  mounts.filter((m): m is Extract<Mount, { type: "bind" }> => m.type === "bind");

describe("filesystem plan", () => {
  it("starts from a read-only root, the box's own /proc and /dev", () => {
    const { mounts } = plan();
    assert.deepEqual(mounts[0], {
      type: "bind",
      source: "/",
      target: "/",
      writable: false,
      why: "the host, read-only",
    });
    assert.ok(mounts.some((m) => m.type === "proc") && mounts.some((m) => m.type === "dev"));
  });

  it("makes exactly the workdir writable (and pins, onto themselves, the dirs that hold read-only islands)", () => {
    const result = plan();
    assert.deepEqual(result.writable, [WORK]);
    assert.deepEqual(
      bindsOf(result.mounts)
        .filter((b) => b.writable && b.why !== "pinned: cannot be renamed away")
        .map((b) => b.target),
      [WORK],
    );
    for (const pin of bindsOf(result.mounts).filter((b) => b.writable && b.target !== WORK)) {
      assert.equal(pin.source, pin.target);
      assert.ok(pin.target.startsWith(`${WORK}/`), pin.target);
    }
    assert.equal(result.cwd, WORK);
  });

  it("covers every socket directory with an empty tmpfs", () => {
    const tmpfs = targets(plan().mounts, (m) => m.type === "tmpfs");
    for (const dir of ["/run", "/tmp", "/var/tmp", "/dev/shm"]) assert.ok(tmpfs.includes(dir), dir);
  });

  it("shows only an allowlist of HOME: secrets and everything unlisted are not there at all", () => {
    const { mounts } = plan();
    const all = targets(mounts, () => true);
    assert.ok(bindsOf(mounts).some((b) => b.target === `${HOME}/.bashrc` && !b.writable));
    for (const gone of [".ssh", ".aws", ".netrc", ".config", ".config/nvim", "agent.sock", ".docker-link"])
      assert.ok(!all.includes(`${HOME}/${gone}`), gone);
  });

  it("hides credentials no deny list names (the allowlist, not the list, decides)", () => {
    const host = [
      ...baseHost,
      `${HOME}/.kaggle/kaggle.json`,
      `${HOME}/.cache/huggingface/token`,
      `${HOME}/.config/rclone/rclone.conf`,
      `${HOME}/.pulumi/credentials.json`,
      `${HOME}/.m2/settings.xml`,
      `${HOME}/.gradle/gradle.properties`,
      `${HOME}/.terraformrc`,
    ];
    const all = targets(plan({}, host).mounts, () => true);
    for (const p of [".kaggle", ".cache", ".config", ".pulumi", ".m2", ".gradle", ".terraformrc"])
      assert.ok(!all.some((t) => t === `${HOME}/${p}` || t.startsWith(`${HOME}/${p}/`)), p);
  });

  it("adds the policy's homeVisible entries and PATH dirs under HOME, still covering secrets inside", () => {
    const host = [...baseHost, `${HOME}/.nvm/versions/node/v20/bin/node`, `${HOME}/tools/bin/x`];
    const result = planFilesystem(filesystemSchema.parse({ homeVisible: [".config"] }), {
      workdir: WORK,
      home: HOME,
      host: fakeHost(host),
      pathEnv: `/usr/bin:${HOME}/tools/bin`,
    });
    const ro = bindsOf(result.mounts)
      .filter((b) => !b.writable)
      .map((b) => b.target);
    for (const p of [".config", ".nvm", "tools/bin"]) assert.ok(ro.includes(`${HOME}/${p}`), p);
    assert.deepEqual(
      result.mounts.find((m) => m.target === `${HOME}/.config/gcloud`),
      { type: "tmpfs", target: `${HOME}/.config/gcloud`, readOnly: true, why: "secret hidden" },
    );
  });

  it("gives the box a sanitised ~/.gitconfig: no credential helper, include or token", () => {
    const gitconfig = [
      "[user]\n\tname = Alice\n\temail = a@example.com",
      "[credential]\n\thelper = store",
      '[credential "https://github.com"]\n\thelper = !gh auth git-credential',
      "[include]\n\tpath = ~/.secret-gitconfig",
      '[http "https://git.corp"]\n\textraHeader = Authorization: Bearer SECRET1',
      '[url "https://SECRET2@github.com/"]\n\tinsteadOf = https://github.com/',
      "[alias]\n\tst = status\n\tgithubToken = SECRET3",
    ].join("\n");
    const host = fakeHost(baseHost, {}, { [`${HOME}/.gitconfig`]: gitconfig });
    const result = planFilesystem(filesystemSchema.parse({}), { workdir: WORK, home: HOME, host });
    const file = result.mounts.find((m) => m.target === `${HOME}/.gitconfig`);
    assert.ok(file && file.type === "file");
    assert.match(file.content, /name = Alice/);
    assert.match(file.content, /st = status/);
    assert.match(file.content, /directory = \*/);
    for (const gone of ["helper =", "secret-gitconfig", "SECRET1", "SECRET2", "SECRET3"])
      assert.ok(!file.content.includes(gone), gone);
  });

  it("masks .env files in the workdir unless the policy opts in", () => {
    const masked = targets(plan().mounts, (m) => m.type === "empty-file");
    assert.deepEqual(masked.sort(), [`${WORK}/.env`, `${WORK}/.env.production`]);
    assert.deepEqual(
      targets(plan({ allowDotEnv: true }).mounts, (m) => m.type === "empty-file"),
      [],
    );
  });

  it("keeps existing persistence paths read-only and stands placeholders on missing ones", () => {
    const result = plan();
    const ro = bindsOf(result.mounts)
      .filter((b) => !b.writable && b.target.startsWith(WORK))
      .map((b) => b.target);
    assert.ok(ro.includes(`${WORK}/.git/hooks`));
    assert.ok(ro.includes(`${WORK}/.git/config`));
    const placeholders = result.placeholders.map((p) => p.path);
    for (const name of [".mcp.json", ".vscode", ".envrc", ".gitmodules", ".claude"]) {
      assert.ok(placeholders.includes(`${WORK}/${name}`), name);
      assert.ok(ro.includes(`${WORK}/${name}`), `${name} read-only`);
    }
    assert.equal(result.placeholders.find((p) => p.path.endsWith(".mcp.json"))?.content, "{}\n");
    assert.equal(new Set(placeholders).size, placeholders.length, "no placeholder twice");
  });

  it("stands placeholders on the root's tool config and keeps nested existing ones read-only", () => {
    const host = [
      ...baseHost,
      `${WORK}/crates/a/.cargo/config.toml`,
      `${WORK}/pkgs/web/.npmrc`,
      `${WORK}/pkgs/web/lefthook.yml`,
      `${WORK}/node_modules/x/.npmrc`,
      `${WORK}/src/notes.toml`,
    ];
    const result = plan({}, host);
    const placeholders = result.placeholders.map((p) => p.path);
    for (const name of [".npmrc", ".yarnrc.yml", ".cargo", "mise.toml", ".mise.toml", ".devcontainer.json"])
      assert.ok(placeholders.includes(`${WORK}/${name}`), name);
    const ro = bindsOf(result.mounts)
      .filter((b) => !b.writable)
      .map((b) => b.target);
    for (const rel of ["crates/a/.cargo/config.toml", "pkgs/web/.npmrc", "pkgs/web/lefthook.yml"])
      assert.ok(ro.includes(`${WORK}/${rel}`), `${rel} read-only`);
    assert.ok(!ro.includes(`${WORK}/node_modules/x/.npmrc`), "dependencies are not walked");
    assert.ok(!ro.includes(`${WORK}/src/notes.toml`));
    assert.deepEqual(result.toolConfigs.sort(), [
      `${WORK}/crates/a/.cargo/config.toml`,
      `${WORK}/pkgs/web/.npmrc`,
      `${WORK}/pkgs/web/lefthook.yml`,
    ]);
  });

  it("guards a bare git dir (HEAD, objects/, refs/: no .git in its path) like a repository's", () => {
    const host = [...baseHost, `${WORK}/docs/HEAD`, `${WORK}/docs/objects/`, `${WORK}/docs/refs/`];
    const result = plan({}, host);
    assert.deepEqual(result.bareGitDirs, [`${WORK}/docs`]);
    const placeholders = result.placeholders.map((p) => p.path);
    assert.ok(placeholders.includes(`${WORK}/docs/config`), "its config cannot be created");
    assert.ok(placeholders.includes(`${WORK}/docs/hooks`));
    assert.ok(
      bindsOf(result.mounts).some((b) => b.target === `${WORK}/docs` && b.writable),
      "pinned",
    );
  });

  it("lets the policy opt a persistence path back in", () => {
    const result = plan({ allowPersistence: [".vscode"] });
    assert.ok(!result.placeholders.some((p) => p.path.endsWith(".vscode")));
  });

  it("does not guard git paths when the workdir is no repository", () => {
    const host = baseHost.filter((e) => !e.includes("/.git/"));
    const result = plan({}, host);
    assert.ok(!result.placeholders.some((p) => p.path.includes(".git")));
  });

  it("guards a .git file (a worktree pointer)", () => {
    const host = [...baseHost.filter((e) => !e.includes("/.git/")), `${WORK}/.git`];
    assert.ok(bindsOf(plan({}, host).mounts).some((b) => b.target === `${WORK}/.git` && !b.writable));
  });

  it("puts covers after the binds they cover", () => {
    const { mounts } = plan({ writable: ["~/.config"] });
    const writableAt = mounts.findIndex(
      (m) => m.type === "bind" && m.writable && m.target === `${HOME}/.config`,
    );
    const coverAt = mounts.findIndex((m) => m.target === `${HOME}/.config/gcloud`);
    assert.ok(writableAt > 0 && coverAt > writableAt);
  });

  it("covers secrets inside the workdir when the workdir is HOME", () => {
    const { mounts } = plan({}, baseHost, { workdir: HOME });
    assert.ok(mounts.some((m) => m.target === `${HOME}/.ssh` && m.type === "tmpfs" && m.readOnly));
    assert.ok(mounts.some((m) => m.target === `${HOME}/.netrc` && m.type === "empty-file"));
  });

  it("expands globs in the policy's hide list", () => {
    const host = [...baseHost, `${WORK}/keys/a.pem`, `${WORK}/keys/b.pem`, `${WORK}/keys/readme`];
    const covered = targets(plan({ hide: ["keys/*.pem"] }, host).mounts, (m) => m.type === "empty-file");
    assert.ok(covered.includes(`${WORK}/keys/a.pem`) && covered.includes(`${WORK}/keys/b.pem`));
    assert.ok(!covered.includes(`${WORK}/keys/readme`));
  });

  it("refuses what it cannot enforce, naming the field", () => {
    const cases: [object, RegExp][] = [
      [{ hide: ["~/**/id_rsa"] }, /filesystem\.hide\[0\].*\*\*/],
      [{ hide: ["../x"] }, /filesystem\.hide\[0\].*\.\./],
      [{ hide: ["~bob/.ssh"] }, /filesystem\.hide\[0\]/],
      [{ hide: ["/home"] }, /filesystem\.hide\[0\].*workdir/],
      [{ writable: ["/"] }, /filesystem\.writable\[0\]/],
    ];
    // (the schema refuses most of these already, for `policy check`; the planner must too)
    const unchecked = (policy: object) =>
      planFilesystem(
        { ...filesystemSchema.parse({}), ...policy },
        { workdir: WORK, home: HOME, host: fakeHost(baseHost) },
      );
    for (const [policy, message] of cases) {
      assert.throws(
        () => unchecked(policy),
        (e: unknown) => e instanceof FilesystemPlanError && message.test(e.message),
        JSON.stringify(policy),
      );
    }
    // started in / : the fix is where fourwall is started, not a policy entry
    assert.throws(
      () => plan({}, baseHost, { workdir: "/" }),
      (e: unknown) =>
        e instanceof FilesystemPlanError && /cd into your project's directory|--workdir/.test(e.fix ?? ""),
    );
    assert.throws(() => plan({}, baseHost, { workdir: "/nope" }), /not a directory/);
  });

  it("makes preset writable paths that do not exist a note, not a mount", () => {
    const result = plan({ writable: ["~/.claude"] });
    assert.deepEqual(result.writable, [WORK]);
    assert.ok(result.notes.some((n) => n.includes(".claude")));
  });

  it("gives scratch paths under HOME a tmpfs even when they do not exist", () => {
    const { mounts } = plan({ scratch: ["~/.cache"] });
    assert.ok(mounts.some((m) => m.type === "tmpfs" && m.target === `${HOME}/.cache`));
  });

  it("honours tmp: false with a read-only empty /tmp", () => {
    const tmp = plan({ tmp: false }).mounts.find((m) => m.target === "/tmp");
    assert.deepEqual(tmp, {
      type: "tmpfs",
      target: "/tmp",
      readOnly: true,
      why: "private and empty: hides host sockets",
    });
  });
});

describe("filesystem plan: fourwall's own installation", () => {
  it("stays visible read-only when it lives under a directory the box gets empty (/tmp), and only then", () => {
    const host = [...baseHost, "/tmp/ci-clone/bin/fourwall.js", "/opt/fourwall/bin/fourwall.js"];
    const under = planFilesystem(filesystemSchema.parse({}), {
      workdir: WORK,
      home: HOME,
      host: fakeHost(host),
      fourwallRoot: "/tmp/ci-clone",
    });
    const tmpAt = under.mounts.findIndex((m) => m.type === "tmpfs" && m.target === "/tmp");
    const selfAt = under.mounts.findIndex(
      (m) => m.type === "bind" && m.target === "/tmp/ci-clone" && !m.writable,
    );
    assert.ok(selfAt > tmpAt && tmpAt >= 0, "bound read-only after /tmp's tmpfs");
    const elsewhere = planFilesystem(filesystemSchema.parse({}), {
      workdir: WORK,
      home: HOME,
      host: fakeHost(host),
      fourwallRoot: "/opt/fourwall",
    });
    assert.ok(
      !elsewhere.mounts.some((m) => m.target === "/opt/fourwall"),
      "already visible through the read-only root",
    );
  });
});
