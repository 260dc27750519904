/**
 * What the classifier knows about programs, by base name. Data with a little code: each entry
 * looks at the arguments (undefined = computed at run time) and says read-only, destructive or
 * unknown, or hands back an inner command to classify (xargs rm, find -exec, env, timeout, ...).
 * When in doubt an entry says unknown: a wrong "read-only" is the one mistake that matters.
 */

export type CommandClass = "read-only" | "destructive" | "unknown";

export interface Verdict {
  class: CommandClass;
  reason: string;
  /** Commands this one runs (argv, words may be undefined when dynamic), classified in turn. */
  inner?: (string | undefined)[][];
  /** A shell script this one runs (sh -c TEXT), parsed and classified in turn. */
  script?: string;
}

type Args = readonly (string | undefined)[];
type Analyzer = (args: Args) => Verdict;

const ro = (reason = "read-only"): Verdict => ({ class: "read-only", reason });
const destroy = (reason: string): Verdict => ({ class: "destructive", reason });
const unknown = (reason: string): Verdict => ({ class: "unknown", reason });

const has = (args: Args, ...flags: string[]) => args.some((a) => a !== undefined && flags.includes(a));
const hasPrefix = (args: Args, ...prefixes: string[]) =>
  args.some((a) => a !== undefined && prefixes.some((p) => a.startsWith(p)));
/** A short-option cluster containing `letter` (e.g. -rf has f), long options excluded. */
const hasShort = (args: Args, letter: string) =>
  args.some((a) => a !== undefined && /^-[A-Za-z0-9]+$/.test(a) && a.includes(letter));
const positional = (args: Args) => args.filter((a) => a === undefined || !a.startsWith("-"));

/** Plain readers: whatever the arguments, they only read files and print. */
const READERS = [
  "ls",
  "cat",
  "head",
  "tail",
  "less",
  "more",
  "grep",
  "egrep",
  "fgrep",
  "zgrep",
  "wc",
  "stat",
  "file",
  "du",
  "df",
  "pwd",
  "echo",
  "printf",
  "true",
  "false",
  ":",
  "which",
  "whereis",
  "type",
  "whoami",
  "id",
  "groups",
  "date",
  "uname",
  "hostname",
  "tree",
  "diff",
  "cmp",
  "comm",
  "cut",
  "tr",
  "basename",
  "dirname",
  "realpath",
  "readlink",
  "jq",
  "yq",
  "nl",
  "od",
  "xxd",
  "hexdump",
  "strings",
  "md5sum",
  "sha1sum",
  "sha256sum",
  "sha512sum",
  "b2sum",
  "cksum",
  "base64",
  "column",
  "fold",
  "paste",
  "join",
  "expand",
  "unexpand",
  "tac",
  "rev",
  "seq",
  "sleep",
  "test",
  "[",
  "ps",
  "free",
  "uptime",
  "printenv",
  "locale",
  "tty",
  "nproc",
  "lsb_release",
  "man",
  "help",
  "exa",
  "eza",
  "bat",
  "batcat",
  "cd",
  "pushd",
  "popd",
  "dirs",
  "export",
  "unset",
  "shift",
  "wait",
  "jobs",
  "history",
  "getconf",
  "arch",
  "lscpu",
  "lsblk",
  "lsof",
  "fmt",
  "pr",
  "numfmt",
  "look",
  "zcat",
  "bzcat",
  "xzcat",
  "zless",
  "tldr",
  "hash",
  "read",
  "ulimit",
  "times",
  "let",
  "local",
  "declare",
  "readonly",
  "typeset",
  "set",
  "shopt",
  "umask",
  "exit",
  "return",
  "break",
  "continue",
  "getopts",
];

/** Known to destroy, overwrite, rename or change permissions, whatever the arguments. */
const DESTROYERS: Record<string, string> = {
  rm: "deletes files",
  rmdir: "deletes directories",
  unlink: "deletes a file",
  shred: "overwrites and deletes files",
  truncate: "truncates files",
  mv: "renames or overwrites files",
  chmod: "changes permissions",
  chown: "changes ownership",
  chgrp: "changes ownership",
  chattr: "changes file attributes",
  setfacl: "changes permissions",
  wipefs: "wipes a device",
  fdisk: "repartitions a disk",
  sfdisk: "repartitions a disk",
  parted: "repartitions a disk",
  srm: "deletes files",
};

/** Programs that run another program: classify what they run. `skip` consumes their own options. */
function wrapper(skip: (args: Args) => number): Analyzer {
  return (args) => {
    const start = skip(args);
    const inner = args.slice(start);
    if (inner.length === 0) return ro("runs nothing");
    return { class: "read-only", reason: "runs a command", inner: [[...inner]] };
  };
}

/** Skips leading options; `withValue` lists options that take the next word. */
function skipOptions(withValue: string[] = [], firstPositionalIsValue = false): (args: Args) => number {
  return (args) => {
    let i = 0;
    while (i < args.length) {
      const a = args[i];
      if (a === undefined) return i;
      if (a === "--") return i + 1;
      if (!a.startsWith("-") || a === "-") break;
      i += withValue.includes(a) ? 2 : 1;
    }
    return firstPositionalIsValue ? i + 1 : i;
  };
}

const envSkip = (args: Args) => {
  let i = 0;
  while (i < args.length) {
    const a = args[i];
    if (a === undefined) return i;
    if (a === "-u" || a === "-C" || a === "--chdir" || a === "--unset") i += 2;
    else if (a.startsWith("-") || /^[A-Za-z_][A-Za-z0-9_]*=/.test(a)) i += 1;
    else break;
  }
  return i;
};

const SHELLS = new Set(["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox-sh"]);

function shell(args: Args): Verdict {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === undefined) return unknown("a shell whose arguments are computed at run time");
    if (a === "-c" || (/^-[a-z]+$/.test(a) && a.includes("c"))) {
      const text = args[i + 1];
      if (text === undefined) return unknown("a shell runs a script computed at run time");
      return { class: "read-only", reason: "runs a shell script", script: text };
    }
    if (a === "-s") return unknown("a shell runs commands from its input (the gate cannot see them)");
    if (!a.startsWith("-") && !a.startsWith("+")) return unknown(`a shell runs the script file ${a}`);
  }
  return unknown("a shell runs commands from its input (the gate cannot see them)");
}

function find(args: Args): Verdict {
  const inner: (string | undefined)[][] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === undefined) continue;
    if (a === "-delete") return destroy("find -delete deletes what it finds");
    if (a === "-exec" || a === "-execdir" || a === "-ok" || a === "-okdir") {
      const cmd: (string | undefined)[] = [];
      for (i++; i < args.length && args[i] !== ";" && args[i] !== "+"; i++) cmd.push(args[i]);
      if (cmd.length === 0) return unknown(`find ${a} without a command`);
      inner.push(cmd);
    }
    if (["-fprint", "-fprint0", "-fprintf", "-fls"].includes(a)) return unknown(`find ${a} writes a file`);
  }
  if (inner.length > 0) return { class: "read-only", reason: "find runs a command on what it finds", inner };
  return ro("find without actions");
}

function fd(args: Args): Verdict {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-x" || a === "--exec" || a === "-X" || a === "--exec-batch") {
      const cmd = args.slice(i + 1).filter((w) => w !== ";");
      return cmd.length > 0
        ? { class: "read-only", reason: "fd runs a command on what it finds", inner: [cmd] }
        : unknown("fd --exec");
    }
    if (a?.startsWith("--exec")) return unknown("fd --exec");
  }
  return ro("fd without --exec");
}

function xargs(args: Args): Verdict {
  const withValue = [
    "-n",
    "-L",
    "-I",
    "-i",
    "-d",
    "-P",
    "-s",
    "-a",
    "-E",
    "-e",
    "--max-args",
    "--max-lines",
    "--delimiter",
    "--max-procs",
    "--arg-file",
    "--replace",
    "--eof",
    "--max-chars",
    "--process-slot-var",
  ];
  let i = 0;
  while (i < args.length) {
    const a = args[i];
    if (a === undefined) return unknown("xargs with computed options");
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-")) break;
    i += withValue.includes(a) ? 2 : 1;
  }
  const cmd = args.slice(i);
  // xargs with no command runs echo; otherwise the command runs with more arguments appended.
  return cmd.length === 0
    ? ro("xargs echo")
    : { class: "read-only", reason: "xargs runs a command", inner: [[...cmd, undefined]] };
}

function sed(args: Args): Verdict {
  if (hasPrefix(args, "-i", "--in-place") || hasShort(args, "i"))
    return destroy("sed -i rewrites files in place");
  // The w and e commands (and s///w, s///e) write files or run commands from inside a script.
  const scripts: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === undefined) return unknown("a sed script computed at run time");
    if (a === "-e" || a === "--expression") {
      const s = args[i + 1];
      if (s === undefined) return unknown("a sed script computed at run time");
      scripts.push(s);
      i++;
    } else if (a === "-f" || a === "--file" || a.startsWith("--file="))
      return unknown("sed runs a script file");
    else if (!a.startsWith("-") && scripts.length === 0) scripts.push(a);
  }
  for (const s of scripts) {
    if (/(^|[;{}\s\d$/!])[wWe](\s|$)/.test(s) || /s(.).*\1.*\1[gpI0-9]*[we]/.test(s))
      return unknown("the sed script writes files or runs commands");
  }
  return ro("sed without -i");
}

function awk(args: Args): Verdict {
  const text = args.filter((a) => a !== undefined).join(" ");
  if (args.some((a) => a === undefined)) return unknown("an awk program computed at run time");
  if (/system\s*\(|\|\s*"|print[^;]*>|getline|-f\b|-i\b|--include|@load/.test(text))
    return unknown("the awk program runs commands or writes files");
  return ro("awk printing only");
}

function rg(args: Args): Verdict {
  if (hasPrefix(args, "--pre", "--pre-glob")) return unknown("rg --pre runs a program on every file");
  return ro();
}

function tee(args: Args): Verdict {
  const files = positional(args);
  if (files.length === 0) return ro("tee to standard output");
  if (has(args, "-a", "--append")) return unknown("tee appends to files");
  return destroy("tee truncates its files");
}

function sort(args: Args): Verdict {
  if (hasPrefix(args, "-o", "--output")) return unknown("sort -o writes a file");
  return ro();
}

function uniq(args: Args): Verdict {
  return positional(args).length > 1 ? unknown("uniq writes its output file") : ro();
}

function dd(args: Args): Verdict {
  return hasPrefix(args, "of=") ? destroy("dd of= overwrites its output") : unknown("dd");
}

function ln(args: Args): Verdict {
  return has(args, "-f", "--force") || hasShort(args, "f")
    ? destroy("ln -f replaces files")
    : unknown("ln makes links");
}

function cp(): Verdict {
  return unknown("cp may overwrite its destination");
}

function perl(args: Args): Verdict {
  if (hasPrefix(args, "-i") || hasShort(args, "i")) return destroy("perl -i rewrites files in place");
  return unknown("perl runs a program");
}

function crontab(args: Args): Verdict {
  return has(args, "-r") ? destroy("crontab -r deletes the crontab") : unknown("crontab");
}

const subcommand =
  (destructive: Record<string, string>, readOnly: string[] = []): Analyzer =>
  (args) => {
    const sub = positional(args)[0];
    if (sub === undefined) return unknown("its subcommand is computed at run time");
    if (destructive[sub]) return destroy(destructive[sub]!);
    if (readOnly.includes(sub)) return ro();
    return unknown(`${sub}`);
  };

/** git: global options, then the subcommand and its flags. */
function git(args: Args): Verdict {
  let i = 0;
  while (i < args.length) {
    const a = args[i];
    if (a === undefined) return unknown("git with computed arguments");
    if (a === "-c" || a.startsWith("--config-env") || a === "--exec-path" || a.startsWith("--exec-path=")) {
      return unknown(`git ${a} can make git run any program`);
    }
    if (
      a === "-C" ||
      a === "--git-dir" ||
      a === "--work-tree" ||
      a === "--namespace" ||
      a === "--super-prefix"
    )
      i += 2;
    else if (a.startsWith("-")) i += 1;
    else break;
  }
  const sub = args[i];
  const rest = args.slice(i + 1);
  if (sub === undefined)
    return i < args.length ? unknown("a git subcommand computed at run time") : ro("git help");
  if (rest.some((a) => a === undefined)) {
    // Computed arguments: only subcommands read-only whatever their arguments stay so.
    if (!["status", "log", "show", "diff", "blame", "grep", "ls-files", "rev-parse"].includes(sub))
      return unknown(`git ${sub} with computed arguments`);
  }
  const pos = positional(rest);
  switch (sub) {
    case "status":
    case "log":
    case "show":
    case "blame":
    case "annotate":
    case "shortlog":
    case "describe":
    case "rev-parse":
    case "rev-list":
    case "ls-files":
    case "ls-tree":
    case "ls-remote":
    case "cat-file":
    case "merge-base":
    case "name-rev":
    case "whatchanged":
    case "reflog-show":
    case "version":
    case "help":
    case "show-ref":
    case "for-each-ref":
    case "count-objects":
    case "check-ignore":
    case "check-attr":
    case "var":
    case "fsck":
    case "verify-commit":
    case "verify-tag":
    case "cherry":
    case "range-diff":
    case "diff-tree":
    case "diff-files":
    case "diff-index":
      if (hasPrefix(rest, "--output", "--ext-diff", "--textconv"))
        return unknown(`git ${sub} with an output file or external program`);
      return ro(`git ${sub}`);
    case "diff":
      if (hasPrefix(rest, "--output", "--ext-diff", "--textconv"))
        return unknown("git diff with an output file or external program");
      return ro("git diff");
    case "grep":
      if (hasPrefix(rest, "-O", "--open-files-in-pager")) return unknown("git grep -O runs a pager program");
      return ro("git grep");
    case "push": {
      if (
        has(rest, "--force", "-f", "--mirror", "--delete", "-d", "--prune", "--force-if-includes") ||
        hasPrefix(rest, "--force-with-lease") ||
        hasShort(rest, "f") ||
        hasShort(rest, "d")
      ) {
        return destroy("git push --force/--delete rewrites or deletes remote history");
      }
      if (pos.some((p) => p?.startsWith("+") || (p?.startsWith(":") && p.length > 1)))
        return destroy("git push +ref/:ref forces or deletes a remote ref");
      return unknown("git push publishes commits");
    }
    case "reset":
      if (has(rest, "--hard", "--merge", "--keep"))
        return destroy("git reset --hard discards uncommitted work");
      return unknown("git reset moves the branch");
    case "clean":
      if (has(rest, "-n", "--dry-run") || hasShort(rest, "n")) return ro("git clean --dry-run");
      return destroy("git clean deletes untracked files");
    case "checkout":
      if (has(rest, "--", "-f", "--force", ".", "-p", "--patch") || hasShort(rest, "f"))
        return destroy("git checkout over files discards their changes");
      return unknown("git checkout switches branches");
    case "restore":
      return destroy("git restore discards changes");
    case "switch":
      if (has(rest, "--discard-changes", "-f", "--force", "-C"))
        return destroy("git switch --discard-changes discards work");
      return unknown("git switch");
    case "branch":
      if (has(rest, "-D", "-d", "--delete", "-M", "-m", "--move", "-C", "-c", "--copy", "-f", "--force"))
        return destroy("git branch -D/-m deletes or renames branches");
      if (
        pos.length === 0 ||
        has(rest, "--list", "-l", "--show-current", "-a", "-r", "--contains", "--merged", "--no-merged")
      )
        return ro("git branch listing");
      return unknown("git branch creates a branch");
    case "tag":
      if (has(rest, "-d", "--delete", "-f", "--force")) return destroy("git tag -d/-f deletes or moves tags");
      if (pos.length === 0 || has(rest, "-l", "--list", "--contains", "--points-at"))
        return ro("git tag listing");
      return unknown("git tag");
    case "stash":
      if (pos[0] === "drop" || pos[0] === "clear") return destroy(`git stash ${pos[0]} deletes stashed work`);
      if (pos[0] === "list" || pos[0] === "show") return ro(`git stash ${pos[0]}`);
      return unknown("git stash");
    case "remote":
      if (pos.length === 0 || pos[0] === "show" || pos[0] === "get-url") return ro("git remote listing");
      return unknown(`git remote ${pos[0]}`);
    case "config":
      if (
        has(rest, "--get", "--get-all", "--get-regexp", "--list", "-l", "--get-urlmatch") ||
        (pos.length <= 1 &&
          !has(
            rest,
            "--unset",
            "--unset-all",
            "--add",
            "--replace-all",
            "--edit",
            "-e",
            "--remove-section",
            "--rename-section",
          ))
      ) {
        return ro("git config (reading)");
      }
      return unknown("git config changes settings");
    case "reflog":
      if (pos[0] === "expire" || pos[0] === "delete")
        return destroy(`git reflog ${pos[0]} deletes recovery points`);
      return ro("git reflog");
    case "rm":
    case "mv":
      return destroy(`git ${sub} deletes or renames tracked files`);
    case "filter-branch":
    case "filter-repo":
    case "prune":
    case "gc":
      return destroy(`git ${sub} rewrites history or deletes objects`);
    case "update-ref":
      return has(rest, "-d") ? destroy("git update-ref -d deletes a ref") : unknown("git update-ref");
    case "worktree":
      if (pos[0] === "list") return ro("git worktree list");
      if (pos[0] === "remove" || pos[0] === "prune")
        return destroy(`git worktree ${pos[0]} deletes a worktree`);
      return unknown("git worktree");
    case "rebase":
      return unknown("git rebase rewrites history");
    default:
      return unknown(`git ${sub}`);
  }
}

export const ANALYZERS: Record<string, Analyzer> = {
  find,
  fd,
  fdfind: fd,
  xargs,
  sed,
  awk,
  gawk: awk,
  mawk: awk,
  rg,
  tee,
  sort,
  uniq,
  dd,
  ln,
  cp,
  perl,
  crontab,
  git,
  env: wrapper(envSkip),
  command: (args) => (has(args, "-v", "-V") ? ro("command -v") : wrapper(skipOptions())(args)),
  builtin: wrapper(skipOptions()),
  exec: wrapper(skipOptions(["-a"])),
  nice: wrapper(skipOptions(["-n", "--adjustment"])),
  nohup: wrapper(skipOptions()),
  time: wrapper(skipOptions(["-f", "-o", "--format", "--output"])),
  timeout: wrapper(skipOptions(["-s", "--signal", "-k", "--kill-after"], true)),
  stdbuf: wrapper(skipOptions(["-i", "-o", "-e"])),
  ionice: wrapper(skipOptions(["-c", "-n", "-p", "-t"])),
  chrt: wrapper(skipOptions([], true)),
  setsid: wrapper(skipOptions()),
  sudo: (args) => ({
    ...wrapper(skipOptions(["-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-U"]))(args),
    class: "unknown",
    reason: "sudo",
  }),
  doas: (args) => ({ ...wrapper(skipOptions(["-u", "-C"]))(args), class: "unknown", reason: "doas" }),
  watch: wrapper(skipOptions(["-n", "--interval", "-d", "--differences"])),
  eval: (args) =>
    args.some((a) => a === undefined)
      ? unknown("eval of text computed at run time")
      : { class: "read-only", reason: "eval", script: args.join(" ") },
  source: () => unknown("source runs a script file"),
  ".": () => unknown(". runs a script file"),
  alias: () => unknown("alias changes what commands mean"),
  trap: () => unknown("trap runs commands later"),
  kubectl: subcommand(
    { delete: "kubectl delete removes resources", drain: "kubectl drain evicts workloads" },
    ["get", "describe", "logs", "version", "explain", "api-resources", "top"],
  ),
  terraform: subcommand(
    { destroy: "terraform destroy removes infrastructure", apply: "terraform apply changes infrastructure" },
    ["plan", "validate", "fmt-check", "version", "show", "output"],
  ),
  docker: subcommand(
    {
      rm: "docker rm deletes containers",
      rmi: "docker rmi deletes images",
      system: "docker system prune deletes data",
      volume: "docker volume can delete data",
    },
    ["ps", "images", "inspect", "logs", "version", "info"],
  ),
  helm: subcommand(
    { uninstall: "helm uninstall removes a release", delete: "helm delete removes a release" },
    ["list", "status", "get", "version", "template"],
  ),
  gh: subcommand(
    { repo: "gh repo can delete or archive repositories", release: "gh release can delete releases" },
    ["status", "auth-status"],
  ),
};

for (const name of READERS) ANALYZERS[name] ??= () => ro();
for (const [name, reason] of Object.entries(DESTROYERS)) ANALYZERS[name] = () => destroy(reason);
for (const name of SHELLS) ANALYZERS[name] = shell;
for (const name of ["mkfs", "mkfs.ext4", "mkfs.xfs", "mkfs.vfat", "mkswap"])
  ANALYZERS[name] = () => destroy("formats a device");

/** Shell builtins (bash runs them before looking at PATH, so a file named like them cannot stand in). */
export const BUILTINS = new Set([
  "cd",
  "echo",
  "printf",
  "pwd",
  "test",
  "[",
  "true",
  "false",
  ":",
  "export",
  "unset",
  "shift",
  "wait",
  "jobs",
  "type",
  "command",
  "builtin",
  "eval",
  "exec",
  "source",
  ".",
  "alias",
  "trap",
  "hash",
  "read",
  "ulimit",
  "times",
  "let",
  "local",
  "declare",
  "readonly",
  "typeset",
  "pushd",
  "popd",
  "dirs",
  "help",
  "history",
  "umask",
  "set",
  "shopt",
  "exit",
  "return",
  "break",
  "continue",
  "kill",
  "getopts",
  "time",
]);
