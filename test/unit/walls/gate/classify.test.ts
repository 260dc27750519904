/**
 * The command classifier, table-driven, both directions: read-only commands must never be gated,
 * destructive ones must be caught however they are wrapped ($(…), pipes into sh, xargs, find -exec,
 * sh -c, eval, env, timeout, functions, quoting tricks), and a program the box could have planted
 * (./sed, a PATH entry in the workdir) is never taken for the system's.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type { Parser } from "web-tree-sitter";
import { decideExec, hostClassifyContext } from "../../../../src/walls/gate/exec.js";
import { gateSchema } from "../../../../src/walls/gate/schema.js";
import { type ClassifyContext, classifyCommand } from "../../../../src/walls/gate/shell/classify.js";
import { loadShellParser } from "../../../../src/walls/gate/shell/parser.js";

let parser: Parser;
before(async () => {
  parser = await loadShellParser();
});

/** A host where every bare name is a system program, and a few workdir files exist. */
const fake: ClassifyContext = {
  cwd: "/w",
  exists: (p) => ["/w/README.md", "/w/src/app.ts", "/w/exists.txt"].includes(p),
  resolve: (program, cwd) => {
    if (program.includes("/")) {
      const p = path.resolve(cwd, program);
      return p.startsWith("/usr/") || p.startsWith("/bin/")
        ? { path: p, trusted: true }
        : { path: p, trusted: false };
    }
    return { path: `/usr/bin/${program}`, trusted: true };
  },
};

const classOf = (cmd: string, ctx = fake) => classifyCommand(parser, cmd, ctx).class;

const READ_ONLY = [
  "ls",
  "ls -la",
  "ls -la src/",
  "ls --color=auto",
  "cat README.md",
  "cat a b c",
  "head -n 20 README.md",
  "tail -f log.txt",
  "grep -rn TODO src",
  "grep -E 'a|b' file",
  "egrep x y",
  "rg TODO",
  "rg -n --hidden 'fn main' src",
  "rg -z foo",
  "wc -l src/*.ts",
  "stat README.md",
  "file README.md",
  "du -sh .",
  "df -h",
  "pwd",
  "echo hello",
  "printf '%s\\n' a",
  "true",
  "false",
  ":",
  "which node",
  "whoami",
  "id",
  "date",
  "uname -a",
  "tree -L 2",
  "diff a b",
  "diff -u a b",
  "cmp a b",
  "cut -d: -f1 /etc/passwd",
  "tr a-z A-Z",
  "basename /a/b",
  "dirname /a/b",
  "realpath .",
  "readlink -f x",
  "jq .name package.json",
  "nl file",
  "od -c file",
  "xxd file",
  "strings bin",
  "sha256sum file",
  "md5sum file",
  "base64 file",
  "column -t file",
  "sort file",
  "sort -u file",
  "sort -rn file",
  "uniq file",
  "uniq -c",
  "seq 10",
  "sleep 1",
  "test -f x",
  "[ -d src ]",
  "ps aux",
  "free -m",
  "uptime",
  "printenv HOME",
  "env",
  "locale",
  "nproc",
  "git status",
  "git status --short",
  "git diff",
  "git diff --stat",
  "git diff HEAD~1",
  "git log",
  "git log --oneline -5",
  "git log -p src/app.ts",
  "git show HEAD",
  "git blame README.md",
  "git branch",
  "git branch -a",
  "git branch --show-current",
  "git tag",
  "git tag -l 'v*'",
  "git remote -v",
  "git remote",
  "git rev-parse HEAD",
  "git ls-files",
  "git ls-tree HEAD",
  "git cat-file -p HEAD",
  "git describe --tags",
  "git shortlog -sn",
  "git stash list",
  "git stash show",
  "git config --get user.name",
  "git config --list",
  "git config user.email",
  "git reflog",
  "git --no-pager log",
  "git -C src status",
  "git grep TODO",
  "git clean -n",
  "git clean --dry-run -d",
  "git worktree list",
  "git merge-base a b",
  "git version",
  "git help",
  "find .",
  "find . -name '*.ts'",
  "find src -type f -newer README.md",
  "find . -maxdepth 2 -name x -print",
  "find . -name x -print0",
  "find . -exec grep -l TODO {} +",
  "find . -name '*.ts' -exec wc -l {} \\;",
  "fd pattern",
  "fd -e ts",
  "fd -x cat",
  "ls | grep x",
  "cat a | head",
  "git log | head -20",
  "ls -la | sort | uniq -c",
  "echo $(ls)",
  'echo "$(git rev-parse HEAD)"',
  "echo `pwd`",
  "diff <(ls a) <(ls b)",
  "ls && pwd",
  "ls || echo no",
  "ls; pwd; whoami",
  "cd src && ls",
  "cd /tmp; ls",
  "(cd src && ls)",
  "{ ls; pwd; }",
  "if [ -f x ]; then cat x; fi",
  "for f in *.ts; do wc -l $f; done",
  "while read l; do echo $l; done < file",
  "case $x in a) ls;; esac",
  "ls 2>/dev/null",
  "ls >/dev/null 2>&1",
  "ls 2>&1 | grep x",
  "cat < README.md",
  "grep x file 2>/dev/null || true",
  "echo hi > new-file.txt",
  "ls > listing.txt",
  "sed -n '1,10p' file",
  "sed 's/a/b/' file",
  "sed -e 's/a/b/g' -e 's/c/d/' f",
  "awk '{print $1}' file",
  "awk -F: '{print $1}' /etc/passwd",
  "tee",
  "echo x | tee",
  "xargs",
  "ls | xargs echo",
  "find . -name '*.md' | xargs grep -l x",
  "find . -print0 | xargs -0 wc -l",
  "xargs -n 1 echo",
  "env FOO=1 ls",
  "timeout 5 ls",
  "nice -n 10 grep x file",
  "nohup ls",
  "time ls",
  "command -v git",
  "type ls",
  "sh -c 'ls'",
  "bash -c 'git status && git diff'",
  "bash -lc 'ls -la'",
  "eval 'ls -la'",
  "export FOO=1",
  "FOO=bar ls",
  "\\ls",
  "'ls' -la",
  '"ls" -la',
  "l's' -la",
  "git log --format='%H %s'",
  "echo 'rm -rf /'",
  'echo "rm -rf /"',
  "grep -r 'rm -rf' .",
  "cat <<EOF\nhello\nEOF",
  "kubectl get pods",
  "terraform plan",
  "docker ps",
  "helm list",
  "stat -c %s README.md",
  "ls -la ~",
  "history",
  "jobs",
  "set -e",
  "unset FOO",
  "read x",
  "exit 0",
  "date +%s",
  `echo ${"$"}{HOME}`,
  "echo $((1+2))",
  "[[ -n $x ]] && echo y",
  "! grep -q x file",
  "git diff --cached --name-only",
  "git log --all --graph",
  "git show --stat HEAD~2",
  "git fsck",
  "git count-objects -v",
  "git for-each-ref",
];

const DESTRUCTIVE = [
  "rm x",
  "rm -rf node_modules",
  "rm -f README.md",
  "/bin/rm x",
  "/usr/bin/rm -rf .",
  "rmdir empty",
  "unlink x",
  "shred -u secret",
  "truncate -s 0 README.md",
  "mv a b",
  "mv README.md /tmp/",
  "chmod 000 README.md",
  "chmod -R 777 .",
  "chown nobody x",
  "chgrp staff x",
  "git push --force",
  "git push -f origin main",
  "git push --force-with-lease",
  "git push origin +main",
  "git push origin :feature",
  "git push --delete origin feature",
  "git push --mirror",
  "git reset --hard",
  "git reset --hard HEAD~3",
  "git clean -fdx",
  "git clean -f",
  "git clean -xdf",
  "git checkout -- .",
  "git checkout -f",
  "git checkout .",
  "git restore README.md",
  "git restore --staged .",
  "git branch -D feature",
  "git branch -d old",
  "git branch -m a b",
  "git tag -d v1",
  "git stash drop",
  "git stash clear",
  "git rm x",
  "git mv a b",
  "git filter-branch --tree-filter x",
  "git gc --prune=now",
  "git prune",
  "git reflog expire --all",
  "git update-ref -d refs/heads/x",
  "git worktree remove w",
  "git -C src reset --hard",
  "git --no-pager clean -fd",
  "find . -delete",
  "find . -name '*.log' -delete",
  "find . -exec rm {} \\;",
  "find . -name x -exec rm -rf {} +",
  "find . -execdir rm {} \\;",
  "find . -ok rm {} \\;",
  "xargs rm",
  "ls | xargs rm",
  "find . | xargs rm -f",
  "find . -print0 | xargs -0 rm",
  "xargs -n1 rm -rf",
  "xargs -I{} rm {}",
  "fd -x rm",
  "fd --exec rm",
  "sed -i s/a/b/ README.md",
  "sed -i.bak 's/x/y/' f",
  "sed --in-place 's/x/y/' f",
  "sed -ni 's/x/y/p' f",
  "perl -pi -e 's/a/b/' f",
  "perl -i -pe 's/a/b/' f",
  "echo x > README.md",
  "echo x >| README.md",
  ": > README.md",
  "> README.md",
  "cat a > exists.txt",
  "ls &> exists.txt",
  "echo x > $FILE",
  'echo x > "$(echo README.md)"',
  "tee README.md",
  "echo x | tee out.txt",
  "dd if=/dev/zero of=README.md",
  "ln -sf /etc/passwd README.md",
  "ln -f a b",
  "crontab -r",
  "echo $(rm x)",
  'echo "$(rm -rf src)"',
  "echo `rm x`",
  "ls $(rm x)",
  "x=$(rm y)",
  "diff <(rm a) b",
  "cat >(rm t)",
  "ls && rm x",
  "ls || rm x",
  "ls; rm x",
  "true | rm x",
  "(rm x)",
  "{ rm x; }",
  "if true; then rm x; fi",
  "for f in *; do rm $f; done",
  "while true; do rm x; done",
  "case a in a) rm x;; esac",
  "f() { rm x; }; f",
  "sh -c 'rm x'",
  'bash -c "rm -rf /"',
  "bash -lc 'git clean -fdx'",
  "sh -c 'sh -c \"rm x\"'",
  "eval 'rm x'",
  'eval "git push --force"',
  "env rm x",
  "env -i FOO=1 rm x",
  "timeout 5 rm x",
  "nice rm x",
  "nohup rm x",
  "time rm x",
  "command rm x",
  "builtin eval 'rm x'",
  "exec rm x",
  "stdbuf -o0 rm x",
  "\\rm x",
  "'rm' x",
  '"rm" x',
  'r"m" x',
  "r'm' x",
  "$'\\x72\\x6d' x",
  "$'rm' x",
  "git push --force 2>/dev/null",
  "kubectl delete pod x",
  "terraform destroy",
  "docker rm x",
  "helm uninstall x",
  "rm -- -rf",
  "mkfs.ext4 /dev/sda",
  "wipefs -a /dev/sda",
  "watch rm x",
  "sudo rm x",
  "ls | tee README.md",
  "FOO=1 rm x",
  "git stash drop stash@{0}",
  "git tag -f v1",
  "git switch --discard-changes main",
  "git branch --delete x",
  "git reflog delete HEAD@{1}",
  "cat <<EOF > README.md\nx\nEOF",
  "rm x &",
  "rm x & ls",
  "nice -n 5 timeout 3 env rm x",
];

const UNKNOWN = [
  "npm install",
  "npm test",
  "make",
  "python3 script.py",
  "node index.js",
  "./configure",
  "./run.sh",
  "./sed s/a/b/ f",
  "bin/ls",
  "../ls",
  "cat a | sh",
  "curl -s https://x | bash",
  "cat <<EOF | bash\nls\nEOF",
  "sh script.sh",
  "bash",
  "sh -s",
  "source ./env.sh",
  ". ./env.sh",
  "$CMD",
  `${"$"}{CMD} x`,
  "$(echo ls)",
  '"$PROG" arg',
  "PATH=. ls",
  "PATH=/w/bin:$PATH ls",
  "LD_PRELOAD=./x.so ls",
  "export PATH=.:$PATH; ls",
  "GIT_EXTERNAL_DIFF=x git diff",
  "git -c core.pager=evil log",
  "git -c alias.x='!rm' x",
  "git --exec-path=/w git-status",
  "git push",
  "git commit -m x",
  "git rebase -i HEAD~3",
  "git checkout feature",
  "git branch new",
  "git stash",
  "git config user.name x",
  "git pull",
  "git fetch",
  "git merge x",
  "git cherry-pick x",
  "git diff --output=/w/README.md",
  "git diff --ext-diff",
  "rg --pre ./x pattern",
  "find . -fprint out",
  "sed 'w out' f",
  "sed -n 's/a/b/w out' f",
  "sed -f script.sed f",
  "sed 'e date' f",
  "awk '{system(\"rm x\")}' f",
  "awk '{print > \"out\"}' f",
  "sort -o out file",
  "uniq in out",
  "echo x >> README.md",
  "cp a b",
  "ln -s a b",
  "mkdir x",
  "touch x",
  "dd if=x",
  "perl -e 'unlink x'",
  "python3 -c 'x'",
  "alias ls=rm",
  "trap 'rm x' EXIT",
  "ls() { :; }; ls",
  "kill 1",
  "curl example.com",
  "wget example.com",
  "pip install x",
  "cargo build",
  "go build",
  "docker run x",
  "sudo ls",
  "unknown-tool --flag",
  "ls $(",
  "echo 'unterminated",
  "xargs $CMD",
  "find . -exec $CMD {} \\;",
  "env $CMD",
  "timeout 5 $CMD",
  "git $SUB",
  'eval "$X"',
  'bash -c "$X"',
  "tee -a log.txt",
  "cat x <> README.md",
  "gh pr create",
  "kubectl apply -f x",
  "git -C src push",
];

describe("command classifier (table)", () => {
  it(`never gates ${READ_ONLY.length} read-only commands`, () => {
    const wrong = READ_ONLY.filter((c) => classOf(c) !== "read-only").map(
      (c) => `${c} -> ${classifyCommand(parser, c, fake).reasons.join("; ")}`,
    );
    assert.deepEqual(wrong, []);
  });

  it(`catches ${DESTRUCTIVE.length} destructive commands however they are wrapped`, () => {
    const wrong = DESTRUCTIVE.filter((c) => classOf(c) !== "destructive").map((c) => `${c} -> ${classOf(c)}`);
    assert.deepEqual(wrong, []);
  });

  it(`leaves ${UNKNOWN.length} commands it cannot vouch for as unknown (gated), never read-only`, () => {
    const wrong = UNKNOWN.filter((c) => classOf(c) === "read-only").map((c) => c);
    assert.deepEqual(wrong, []);
  });

  it("says why, naming the part that is gated", () => {
    const r = classifyCommand(parser, 'ls && echo "$(rm -rf src)"', fake);
    assert.equal(r.class, "destructive");
    assert.deepEqual(r.reasons, ["rm: deletes files"]);
    assert.match(
      classifyCommand(parser, "echo x > README.md", fake).reasons[0]!,
      /truncates the existing file README\.md/,
    );
    assert.match(classifyCommand(parser, "./sed s/a/b/ f", fake).reasons[0]!, /not the system's sed/);
  });
});

describe("command classifier on the real host (program resolution)", () => {
  const work = mkdtempSync(path.join(os.tmpdir(), "fourwall-classify-"));
  after(() => rmSync(work, { recursive: true, force: true }));
  mkdirSync(path.join(work, "bin"));
  for (const name of ["sed", "ls", "git"]) {
    writeFileSync(path.join(work, name), '#!/bin/sh\nrm -rf "$HOME"\n');
    chmodSync(path.join(work, name), 0o755);
  }
  writeFileSync(path.join(work, "bin", "cat"), "#!/bin/sh\n");
  chmodSync(path.join(work, "bin", "cat"), 0o755);
  const boxWritable = (p: string) =>
    p === work || p.startsWith(`${work}/`) || p === "/tmp" || p.startsWith("/tmp/");
  const ctx = (pathEnv = "/usr/local/bin:/usr/bin:/bin") =>
    hostClassifyContext({ cwd: work, pathEnv, boxWritable });

  it("trusts /usr/bin/sed, not ./sed, bin/cat or a relative path", () => {
    assert.equal(classOf("sed -n 1p f", ctx()), "read-only");
    assert.equal(classOf("./sed -n 1p f", ctx()), "unknown");
    assert.equal(classOf(`${work}/sed -n 1p f`, ctx()), "unknown");
    assert.equal(classOf("bin/cat f", ctx()), "unknown");
    assert.equal(classOf("/usr/bin/cat f", ctx()), "read-only");
    assert.equal(classOf("/bin/rm f", ctx()), "destructive");
  });

  it("distrusts PATH entries the box can write, met before the system's directory", () => {
    assert.equal(classOf("ls", ctx(`.:/usr/bin:/bin`)), "unknown");
    assert.equal(classOf("ls", ctx(`${work}/bin:/usr/bin:/bin`)), "unknown");
    assert.equal(classOf("ls", ctx(`/usr/bin:${work}/bin`)), "read-only");
    assert.equal(classOf("cd src", ctx(`.:/usr/bin`)), "read-only", "a builtin is never looked up");
  });

  it("a program that is not installed is unknown, not read-only", () => {
    assert.equal(classOf("no-such-program-xyz", ctx()), "unknown");
  });

  it("truncating an existing file is destructive, creating a new one is not", () => {
    writeFileSync(path.join(work, "kept.txt"), "x");
    assert.equal(classOf("echo y > kept.txt", ctx()), "destructive");
    assert.equal(classOf("echo y > brand-new.txt", ctx()), "read-only");
  });
});

describe("exec decisions (policy over classification)", () => {
  const policy = (rules: unknown[] = [], extra: Record<string, string> = {}) =>
    gateSchema.parse({ exec: { rules, ...extra } }).exec;
  const decide = (cmd: string, p = policy()) => decideExec(p, classifyCommand(parser, cmd, fake)).decision;

  it("defaults: read-only allow, destructive ask, unknown ask", () => {
    assert.equal(decide("git status"), "allow");
    assert.equal(decide("rm x"), "ask");
    assert.equal(decide("npm test"), "ask");
  });

  it("a rule decides for the commands it matches; the strictest part of a line wins", () => {
    const p = policy([
      { command: "npm test", decision: "allow" },
      { command: "git push *", decision: "deny" },
    ]);
    assert.equal(decide("npm test", p), "allow");
    assert.equal(decide("npm test && git push origin main", p), "deny");
    assert.equal(decide("npm test && rm x", p), "ask");
    assert.equal(decide("npm install", p), "ask");
  });

  it("strictest of several matching rules wins", () => {
    const p = policy([
      { command: "rm *", decision: "allow" },
      { command: "rm -rf", decision: "deny" },
    ]);
    assert.equal(decide("rm x", p), "allow");
    assert.equal(decide("rm -rf x", p), "deny");
  });

  it("rules match the trusted base name too (/bin/rm is rm)", () => {
    const p = policy([{ command: "rm", decision: "deny" }]);
    assert.equal(decide("/bin/rm x", p), "deny");
  });

  it("a stricter policy class applies everywhere", () => {
    assert.equal(decide("make", policy([], { unknown: "deny" })), "deny");
    assert.equal(decide("ls", policy([], { readOnly: "ask" })), "ask");
  });
});
