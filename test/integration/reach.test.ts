/**
 * The filesystem wall beyond the workdir's top level, attacked from inside a real box in both
 * launch modes (issue 13): git dirs the box can reach (commondir, core.hooksPath/husky, nested and bare
 * repositories, submodules, worktree pointer files, renaming .git away), .env files at any depth,
 * credentials no deny list names, the box's own passwd, a monorepo subdir, shell start-up files.
 * Each persistence attack is judged by a real git command ON THE HOST after the box is gone: a
 * marker file appears only if something the box wrote ran. Every check also runs against a box
 * with the protection removed (test/helpers/weak-box.ts) and must see the hole there.
 * The gate approves every change here (gate.fs.default: allow): a user who says yes to all.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import {
  asMode,
  type Fixture,
  MODES,
  type Mode,
  makeFixture,
  type Result,
  runInBox,
  SECRET,
  USER_UID,
} from "../helpers/box.js";

const marker = (fx: Fixture) => path.join(fx.home, "MARKER-ran-on-host");
const hook = (fx: Fixture) => `#!/bin/sh\ntouch ${marker(fx)}\n`;

/** git on the host, as the fixture's owner, the way the user runs it after the box. */
function hostGit(fx: Fixture, cwd: string, args: string[]) {
  const [program, ...rest] = asMode(fx.mode, [
    "git",
    "-c",
    "user.name=host",
    "-c",
    "user.email=host@example.com",
    ...args,
  ]);
  return spawnSync(program!, rest, {
    cwd,
    env: { PATH: fx.env.PATH!, HOME: fx.home, GIT_CONFIG_NOSYSTEM: "1" },
    encoding: "utf8",
  });
}

const ran = (fx: Fixture) => (existsSync(marker(fx)) ? "something the box wrote ran on the host" : undefined);

/** Files the fixture's owner owns (user mode: uid 65534), as a user's checkout would be. */
const own = (fx: Fixture) => {
  if (fx.mode === "user") spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, fx.home]);
};

/** git as root while preparing (the fixture may already belong to uid 65534: root is "dubious" there too). */
const prep = (...args: string[]) => {
  const r = spawnSync("git", ["-c", "safe.directory=*", "-c", "protocol.file.allow=always", ...args], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
};

function commitAll(fx: Fixture, cwd = fx.workdir) {
  prep("-C", cwd, "add", "-A");
  prep("-C", cwd, "-c", "user.name=u", "-c", "user.email=u@e", "commit", "-qm", "init");
}

interface Check {
  name: string;
  weaken: Partial<Record<Mode, string[]>>;
  prepare?: (fx: Fixture) => void;
  script: (fx: Fixture) => string;
  /** After the box: what the host does next (git status, a commit), then the verdict. */
  hole: (r: Result, fx: Fixture) => string | undefined;
  cwd?: (fx: Fixture) => string;
}

const both = (w: string[]) => ({ root: w, user: w });
const APPROVE_ALL = "gate:\n  fs:\n    default: allow\n";

const checks: Check[] = [
  {
    name: "a new .git/commondir pointing at a git dir the box built does not run at the host's git status",
    weaken: both(["git"]),
    script: (fx) =>
      `mkdir -p .git/evil && cp -r .git/objects .git/refs .git/HEAD .git/evil/ 2>/dev/null; printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = touch ${marker(fx)}; false\\n' > .git/evil/config; echo evil > .git/commondir`,
    hole: (_r, fx) => {
      hostGit(fx, fx.workdir, ["status", "--short"]);
      return ran(fx);
    },
  },
  {
    name: "a repository with core.hooksPath (husky) gets no new hook",
    weaken: both(["git"]),
    prepare: (fx) => {
      mkdirSync(path.join(fx.workdir, ".husky", "_"), { recursive: true });
      writeFileSync(path.join(fx.workdir, ".husky", "_", "h"), "#!/bin/sh\n");
      prep("-C", fx.workdir, "config", "core.hooksPath", ".husky/_");
    },
    script: (fx) =>
      `printf '${hook(fx).replace(/\n/g, "\\n")}' > .husky/_/pre-commit; chmod +x .husky/_/pre-commit; printf '${hook(fx).replace(/\n/g, "\\n")}' > .husky/pre-commit`,
    hole: (_r, fx) => {
      hostGit(fx, fx.workdir, ["commit", "-q", "--allow-empty", "-m", "host"]);
      return ran(fx);
    },
  },
  {
    name: "a nested repository that existed before the run gets no hook",
    weaken: both(["git"]),
    prepare: (fx) => {
      prep("init", "-q", path.join(fx.workdir, "lib"));
    },
    script: (fx) =>
      `printf '${hook(fx).replace(/\n/g, "\\n")}' > lib/.git/hooks/pre-commit; chmod +x lib/.git/hooks/pre-commit`,
    hole: (_r, fx) => {
      hostGit(fx, path.join(fx.workdir, "lib"), ["commit", "-q", "--allow-empty", "-m", "host"]);
      return ran(fx);
    },
  },
  {
    name: "a bare repository that existed before the run (no .git in its path) gets no config of the box's",
    weaken: both(["git"]),
    prepare: (fx) => {
      prep("init", "-q", "--bare", path.join(fx.workdir, "docs"));
    },
    script: (fx) =>
      `printf '[core]\\n\\tpager = touch ${marker(fx)}; cat\\n' >> docs/config; printf '${hook(fx).replace(/\n/g, "\\n")}' > docs/hooks/post-update; chmod +x docs/hooks/post-update`,
    hole: (_r, fx) => {
      // git pages only on a terminal: `script` gives it one
      const [program, ...rest] = asMode(fx.mode, ["script", "-qc", "git -p branch -a", "/dev/null"]);
      spawnSync(program!, rest, {
        cwd: path.join(fx.workdir, "docs"),
        env: { PATH: fx.env.PATH!, HOME: fx.home, GIT_CONFIG_NOSYSTEM: "1" },
        stdio: "ignore",
        timeout: 60_000,
      });
      return ran(fx);
    },
  },
  {
    name: "a submodule's git dir (.git/modules/<sub>) gets no hook",
    weaken: both(["git"]),
    prepare: (fx) => {
      const upstream = path.join(fx.base, "upstream");
      prep("init", "-q", upstream);
      prep(
        "-C",
        upstream,
        "-c",
        "user.name=u",
        "-c",
        "user.email=u@e",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "u",
      );
      commitAll(fx);
      prep("-C", fx.workdir, "-c", "protocol.file.allow=always", "submodule", "-q", "add", upstream, "sub");
    },
    script: (fx) =>
      `printf '${hook(fx).replace(/\n/g, "\\n")}' > .git/modules/sub/hooks/pre-commit; chmod +x .git/modules/sub/hooks/pre-commit`,
    hole: (_r, fx) => {
      hostGit(fx, path.join(fx.workdir, "sub"), ["commit", "-q", "--allow-empty", "-m", "host"]);
      return ran(fx);
    },
  },
  {
    name: "a worktree's git dir (named by its .git pointer file) gets no hook, no config",
    weaken: both(["git"]),
    prepare: (fx) => {
      commitAll(fx);
      prep("-C", fx.workdir, "worktree", "add", "-q", "wt");
    },
    // the pointer file repointed at a git dir the box built, whose config runs a command
    script: (fx) =>
      `mkdir -p evilgit && cp -r .git/objects .git/refs .git/HEAD evilgit/ && printf '[core]\\n\\trepositoryformatversion = 0\\n\\tfsmonitor = touch ${marker(fx)}; false\\n' > evilgit/config; printf 'gitdir: %s\\n' "$PWD/evilgit" > wt/.git; printf '${hook(fx).replace(/\n/g, "\\n")}' > .git/worktrees/wt/hooks-note`,
    hole: (_r, fx) => {
      hostGit(fx, path.join(fx.workdir, "wt"), ["status", "--short"]);
      return ran(fx);
    },
  },
  {
    name: "renaming .git away and building a new one does not work",
    weaken: both(["git"]),
    script: (fx) =>
      `mv .git .git-old && mkdir -p .git && cp -r .git-old/objects .git-old/refs .git-old/HEAD .git/ && mkdir .git/hooks && printf '${hook(fx).replace(/\n/g, "\\n")}' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit`,
    hole: (_r, fx) => {
      hostGit(fx, fx.workdir, ["commit", "-q", "--allow-empty", "-m", "host"]);
      return ran(fx);
    },
  },
  {
    name: "cannot read nested .env files (apps/api/.env, apps/api/prod.env)",
    weaken: both(["secrets"]),
    prepare: (fx) => {
      mkdirSync(path.join(fx.workdir, "apps", "api"), { recursive: true });
      writeFileSync(path.join(fx.workdir, "apps", "api", ".env"), `K=${SECRET}\n`);
      writeFileSync(path.join(fx.workdir, "apps", "api", "prod.env"), `K=${SECRET}\n`);
    },
    script: () => "cat apps/api/.env apps/api/prod.env",
    hole: (r) => (r.stdout.includes(SECRET) ? "read a nested .env" : undefined),
  },
  {
    name: "cannot read credentials no deny list names (kaggle, huggingface, rclone, pulumi, m2, gradle, terraformrc)",
    weaken: both(["secrets"]),
    prepare: (fx) => {
      const files = [
        ".kaggle/kaggle.json",
        ".cache/huggingface/token",
        ".config/rclone/rclone.conf",
        ".pulumi/credentials.json",
        ".m2/settings.xml",
        ".gradle/gradle.properties",
        ".terraformrc",
      ];
      for (const f of files) {
        mkdirSync(path.dirname(path.join(fx.home, f)), { recursive: true });
        writeFileSync(path.join(fx.home, f), `${SECRET} ${f}\n`);
      }
    },
    script: () =>
      "cat ~/.kaggle/kaggle.json ~/.cache/huggingface/token ~/.config/rclone/rclone.conf ~/.pulumi/credentials.json ~/.m2/settings.xml ~/.gradle/gradle.properties ~/.terraformrc 2>&1",
    hole: (r) => (r.stdout.includes(SECRET) ? "read an unlisted credential" : undefined),
  },
  {
    name: "the box user has a passwd entry (python pwd, whoami)",
    weaken: { root: ["passwd"] },
    script: () =>
      `python3 -c 'import os, pwd; print("PWNAME=" + pwd.getpwuid(os.getuid()).pw_name)'; grep -c . /etc/passwd`,
    hole: (r) => (/PWNAME=\S+/.test(r.stdout) ? undefined : "getpwuid() failed in the box"),
  },
  {
    name: "the host's user list stays out (only root, nobody and the box user)",
    weaken: both(["passwd"]),
    script: () => "cut -d: -f1 /etc/passwd | tr '\\n' ' '",
    hole: (r) => (/\b(daemon|bin|sys|_apt)\b/.test(r.stdout) ? `host users visible: ${r.stdout}` : undefined),
  },
  {
    name: "git works in a subdirectory of a repository (monorepo), read-only",
    weaken: both(["repo-view"]),
    prepare: (fx) => {
      mkdirSync(path.join(fx.home, "mono", "apps", "api"), { recursive: true });
      writeFileSync(path.join(fx.home, "mono", "apps", "api", "main.ts"), "x\n");
      prep("init", "-q", path.join(fx.home, "mono"));
      commitAll(fx, path.join(fx.home, "mono"));
    },
    cwd: (fx) => path.join(fx.home, "mono", "apps", "api"),
    script: () => "git log --oneline && git status --short && echo GIT-OK",
    hole: (r) => (r.stdout.includes("GIT-OK") ? undefined : `git found no repository: ${r.stdout}`),
  },
  {
    name: "with HOME as the workdir: shell start-up files, autostart, systemd user units, ~/.local/bin stay as they were",
    weaken: both(["persistence"]),
    cwd: (fx) => fx.home,
    script: () =>
      "echo evil >> ~/.bashrc; echo evil > ~/.bash_profile; echo evil > ~/.zshenv; mkdir -p ~/.config/autostart ~/.config/systemd/user ~/.local/bin; echo evil > ~/.config/autostart/x.desktop; echo evil > ~/.config/systemd/user/x.service; echo evil > ~/.local/bin/git",
    hole: (_r, fx) => {
      for (const f of [
        ".bash_profile",
        ".zshenv",
        ".config/autostart/x.desktop",
        ".config/systemd/user/x.service",
        ".local/bin/git",
      ])
        if (
          existsSync(path.join(fx.home, f)) &&
          spawnSync("grep", ["-q", "evil", path.join(fx.home, f)]).status === 0
        )
          return `the box wrote ~/${f}`;
      if (spawnSync("grep", ["-q", "evil", path.join(fx.home, ".bashrc")]).status === 0)
        return "the box changed ~/.bashrc";
      return undefined;
    },
  },
];

for (const mode of MODES) {
  describe(`the filesystem wall's reach (${mode === "root" ? "launched as root" : `launched as uid ${USER_UID}`})`, () => {
    const setUp = (check: Check) => {
      const fx = makeFixture(mode);
      check.prepare?.(fx);
      writeFileSync(path.join(fx.workdir, "fourwall.yaml"), APPROVE_ALL);
      if (check.cwd) writeFileSync(path.join(check.cwd(fx), "fourwall.yaml"), APPROVE_ALL);
      own(fx);
      chmodSync(fx.home, 0o755);
      return fx;
    };
    for (const check of checks) {
      it(check.name, async () => {
        const fx = setUp(check);
        const r = await runInBox(fx, ["/bin/sh", "-c", check.script(fx)], {
          cwd: check.cwd?.(fx),
          timeoutMs: 60_000,
        });
        assert.equal(/fourwall: .*wall/.test(r.stderr), false, `fourwall failed: ${r.stderr}`);
        assert.equal(check.hole(r, fx), undefined, `${check.name}\n${r.stdout}\n${r.stderr}`);
      });
      const weaken = check.weaken[mode];
      if (weaken) {
        it(`${check.name} — the check sees the hole in a box without ${weaken.join(" + ")}`, async () => {
          const fx = setUp(check);
          const r = await runInBox(fx, ["/bin/sh", "-c", check.script(fx)], {
            cwd: check.cwd?.(fx),
            weaken,
            timeoutMs: 60_000,
          });
          assert.notEqual(
            check.hole(r, fx),
            undefined,
            `the broken box was not caught\n${r.stdout}\n${r.stderr}`,
          );
        });
      }
    }
  });
}
