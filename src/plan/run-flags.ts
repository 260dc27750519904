import { RUNTIME_NAMES } from "../core/runtime-names.js";
import type { RunOptions } from "./from-options.js";

/**
 * The flags of `fourwall run` (and of `up`, which shares the box's), defined once: the CLI builds its
 * commander options from this table (cli/run-flags.ts) and the box daemon parses the `run` command
 * lines it takes with it (box/run-request.ts). A flag is either served by the daemon or marked
 * "Node path only" with the reason; a command line with such a flag goes the Node way (the same
 * behaviour, only slower).
 */
export interface RunFlag {
  /** As commander spells it: "-w, --workdir <dir>", "--inbox [port]", "--dry-run". */
  spelling: string;
  /** Where the value lands in RunOptions. */
  key: keyof RunOptions;
  /** value: one (repeating it: the last; the daemon falls back); list: repeatable; optional: [value]; switch: none. */
  arity: "value" | "list" | "optional" | "switch";
  description: string;
  choices?: readonly string[];
  /** box: `run` and `up`; run: `run` only. */
  commands: "box" | "run";
  /** true: the daemon takes it; else why only the Node path does. */
  daemon: true | { nodeOnly: string };
}

export const RUN_FLAGS: readonly RunFlag[] = [
  {
    spelling: "-w, --workdir <dir>",
    key: "workdir",
    arity: "value",
    description: "the one writable directory (default: the current directory)",
    commands: "box",
    daemon: true,
  },
  {
    spelling: "-p, --policy <file>",
    key: "policy",
    arity: "value",
    description: "policy file, YAML or JSON (default: ./fourwall.yaml if present)",
    commands: "box",
    daemon: true,
  },
  {
    spelling: "--preset <name>",
    key: "preset",
    arity: "list",
    description: "add a built-in preset: claude-code | codex | openclaw | node-dev | python-dev",
    commands: "box",
    daemon: true,
  },
  {
    spelling: "-a, --allow <rule>",
    key: "allow",
    arity: "list",
    description: "add an egress allow rule: example.com | *.example.com | example.com:8443",
    commands: "box",
    daemon: true,
  },
  {
    spelling: "--resolve <host=ip>",
    key: "resolve",
    arity: "list",
    description: "pin a host name to an address at the proxy (repeatable)",
    commands: "box",
    daemon: true,
  },
  {
    spelling: "--ro <path>",
    key: "ro",
    arity: "list",
    description:
      "show a host path read-only in the box, e.g. a tool installed under /tmp (repeatable; secrets in it stay hidden)",
    commands: "box",
    daemon: { nodeOnly: "not served by the daemon yet: no daemon test covers read-only host paths" },
  },
  {
    spelling: "--secret <VAR@HOST>",
    key: "secret",
    arity: "list",
    description:
      "keep the host's $VAR outside the box: the box's VAR holds a sentinel the proxy swaps for the real value on requests to HOST (repeatable; HOST must be allowed)",
    commands: "box",
    // the daemon plans with the caller's environment and runs the credentials wing in its supervisor
    daemon: true,
  },
  {
    spelling: "-r, --runtime <name>",
    key: "runtime",
    arity: "value",
    description: "isolation runtime",
    choices: RUNTIME_NAMES,
    commands: "box",
    // taken, planned, and sent the Node way when the plan's runtime is not namespaces (daemon-run.ts)
    daemon: true,
  },
  {
    spelling: "--proxy <backend>",
    key: "proxy",
    arity: "value",
    description: "egress proxy: builtin (default) | squid",
    choices: ["builtin", "squid"],
    commands: "box",
    daemon: { nodeOnly: "squid (a process tree of its own per box) is started by the Node path only" },
  },
  {
    spelling: "--image <name>",
    key: "image",
    arity: "value",
    description: "with --runtime docker: the image to run (default: a tiny local one fourwall builds once)",
    commands: "box",
    daemon: { nodeOnly: "docker runtime only, which the daemon does not serve" },
  },
  {
    spelling: "--audit <file>",
    key: "audit",
    arity: "value",
    description: "append every decision as JSON Lines to this file (never through a symlink)",
    commands: "box",
    daemon: {
      nodeOnly: "the log is opened by the process that runs the box: the caller's, not the daemon's",
    },
  },
  {
    spelling: "--approver <cmd>",
    key: "approver",
    arity: "value",
    description: "approval gate: ask this command (the request as JSON on stdin; exit 0 = yes)",
    commands: "box",
    daemon: true,
  },
  {
    spelling: "--inbox [port]",
    key: "inbox",
    arity: "optional",
    description: "approval gate: serve an approval inbox on 127.0.0.1 (prints its one-time link)",
    commands: "box",
    daemon: { nodeOnly: "the inbox's server and its one-time link belong to the caller's process" },
  },
  {
    spelling: "--dry-run",
    key: "dryRun",
    arity: "switch",
    description: "print the plan instead of running it",
    commands: "run",
    daemon: { nodeOnly: "prints on stdout; the daemon writes only to the caller's stderr" },
  },
  {
    spelling: "--json",
    key: "json",
    arity: "switch",
    description: "with --dry-run: the plan as JSON",
    commands: "run",
    daemon: { nodeOnly: "goes with --dry-run" },
  },
  {
    spelling: "-v, --verbose",
    key: "verbose",
    arity: "switch",
    description: "say what the box is made of before running",
    commands: "run",
    daemon: { nodeOnly: "the plan's description is written by the Node CLI" },
  },
  {
    spelling: "--strict-gate",
    key: "strictGate",
    arity: "switch",
    description:
      "exit 123 when the box exited 0 but some of its changes were kept, not applied (fourwall changes)",
    commands: "run",
    daemon: { nodeOnly: "the daemon does not give the kept-changes exit status" },
  },
];

/** "-w, --workdir <dir>" → ["-w", "--workdir"]. */
export const flagNames = (flag: RunFlag): string[] =>
  flag.spelling
    .split(/[ ,]+/)
    .filter((word) => word.startsWith("-"))
    .map((word) => word.replace(/[<[].*$/, ""));

/** The flag a command-line name (-w, --workdir) stands for. */
export function runFlagNamed(name: string): RunFlag | undefined {
  return RUN_FLAGS.find((flag) => flagNames(flag).includes(name));
}

/**
 * Whether the daemon could have taken a run with these (commander's) options: nothing set but
 * daemon flags. The Node path starts a daemon for the next run only then.
 */
export function daemonTakesOptions(options: Partial<RunOptions>): boolean {
  return RUN_FLAGS.every((flag) => {
    if (flag.daemon === true) return true;
    const value = options[flag.key];
    return value === undefined || value === false || (Array.isArray(value) && value.length === 0);
  });
}

const isEmptyList = (value: unknown) => Array.isArray(value) && value.length === 0;

/**
 * RunOptions → the command line that gives them, from the same table: what a caller that plans with
 * options (prove) passes to `fourwall run` (its daemon path), so both paths build the same box.
 */
export function runFlagsFor(options: Partial<RunOptions>): string[] {
  // an option `run` has no flag for (--env is `mcp wrap`'s) would be dropped silently: refuse it
  for (const [key, value] of Object.entries(options))
    if (!RUN_FLAGS.some((flag) => flag.key === key) && value !== undefined && !isEmptyList(value))
      throw new Error(`runFlagsFor: \`fourwall run\` has no flag for ${key}`);
  const args: string[] = [];
  for (const flag of RUN_FLAGS) {
    const value = options[flag.key];
    if (value === undefined || value === false) continue;
    const name = flagNames(flag).at(-1)!;
    if (flag.arity === "list") for (const v of value as string[]) args.push(name, v);
    else if (flag.arity === "switch" || value === true) args.push(name);
    else args.push(name, String(value));
  }
  return args;
}
