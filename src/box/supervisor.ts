import { spawnSync } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pc from "picocolors";
import type { AuditLog } from "../audit/log.js";
import { WallError } from "../core/errors.js";
import { isUnder, nativeHelperPath } from "../core/paths.js";
import type { Trace } from "../core/trace.js";
import { type BoxPlan, withBoxUid } from "../plan/plan.js";
import type { BoxSession, RunningBox, Runtime } from "../runtimes/runtime.js";
import {
  type AskRequest,
  type CredentialEvent,
  type EgressEvent,
  isUnreachable,
  type ProxyCredentialOptions,
  type ProxyHandle,
  summaryRow,
} from "../walls/egress/index.js";
import { realHost, resolveGitEntry, scanTrees, type TreeScan } from "../walls/filesystem/index.js";
import type { KeptChangeSet } from "../walls/gate/index.js";
import {
  addressSpaceHint,
  BOX_UID_COUNT,
  BOX_UID_FIRST,
  createBoxCgroup,
  dataLimit,
  removeBoxCgroup,
} from "../walls/isolation/index.js";
import type { GateOptions, GateSession } from "./gate.js";
import { EXIT_CHANGES_KEPT, keptLine } from "./kept.js";
import { type Reaper, standPlaceholders, startReaper } from "./reaper.js";
import { detachedTerminal, openTerminalControl, type TerminalControl } from "./terminal.js";
import {
  planThrough,
  removeThrough,
  settingsMountPoints,
  standThrough,
  type Through,
  throughCarrier,
  throughHome,
} from "./through.js";

type AskHook = (request: AskRequest) => Promise<boolean>;

/** Starts the box's egress backend (builtin or squid) on the socket bound into the box; WallError if it cannot. */
async function startEgressProxy(
  plan: BoxPlan,
  socketPath: string,
  onDecision: (e: EgressEvent) => void,
  say: (text: string) => void,
  ask?: AskHook,
  credentials?: ProxyCredentialOptions,
  squidDir?: string,
  openSquidPortForTests?: boolean,
): Promise<ProxyHandle> {
  const { startEgressBackend } = await import("../walls/egress/proxy/backend.js");
  // Transparent mode says what it cannot capture (wildcards, address rules, wide port ranges).
  for (const note of plan.network.transparent?.notes ?? []) say(`fourwall: transparent egress: ${note}\n`);
  try {
    return await startEgressBackend({
      plan: plan.egress,
      box: plan.id,
      socketPath,
      socketMode: 0o666,
      // squid's own dir, outside the run dir (which stays closed to squid's uid); the builtin
      // proxy keeps no files (its dir beside the socket's, inside the run dir, is never made)
      stateDir: squidDir ?? path.join(path.dirname(path.dirname(socketPath)), plan.egress.proxy),
      onDecision,
      ask,
      credentials,
      ...(openSquidPortForTests ? { openSquidPortForTests } : {}),
    });
  } catch (error) {
    const squid = plan.egress.proxy === "squid";
    throw new WallError(
      "egress",
      `the ${squid ? "squid" : "egress"} proxy could not start: ${(error as Error).message}`,
      squid
        ? "apt-get install squid-openssl (npm run setup does), or use the builtin proxy"
        : "run `fourwall doctor`",
    );
  }
}

/**
 * The credentials wing's set-up (the run's CA in memory, its bundle in the net dir, the live swap
 * table); undefined when the policy has no credentials or input gate. WallError when it cannot.
 */
async function startCredentials(
  plan: BoxPlan,
  netDir: string,
  onEvent: (e: CredentialEvent) => void,
  say: (text: string) => void,
): Promise<ProxyCredentialOptions | undefined> {
  for (const note of plan.credentials?.notes ?? []) say(`fourwall: ${note}\n`);
  if (!plan.credentials?.terminates) return undefined;
  const { prepareCredentials } = await import("../walls/egress/credentials/runtime.js");
  try {
    return await prepareCredentials(plan.egress, plan.credentials, plan.id, netDir, onEvent);
  } catch (error) {
    throw new WallError(
      "egress",
      `credentials: ${(error as Error).message}`,
      "see docs/credentials.md (or remove egress.credentials / egress.input)",
    );
  }
}

/** Counts of what the swap did, kept for the summary at exit (bounded: one entry per key). */
class CredentialTally {
  readonly swaps = new Map<string, number>();
  readonly refused = new Map<string, number>();
  add(e: CredentialEvent): void {
    const names = (e.names ?? []).join(",");
    if (e.action === "swap") {
      const key = `${names} → ${e.host}`;
      this.swaps.set(key, (this.swaps.get(key) ?? 0) + 1);
    } else if ((e.action === "refuse" || e.action === "input-blocked") && this.refused.size < 1000) {
      const key = `${e.reason}${names ? ` (${names})` : ""}: ${e.method ?? ""} ${e.host}:${e.port}${e.path ?? ""}`;
      this.refused.set(key, (this.refused.get(key) ?? 0) + 1);
    }
  }
  get size(): number {
    return this.swaps.size + this.refused.size;
  }
}

/** What the swap did, said once at exit: per entry, requests that got the secret, and every refusal. */
function credentialSummary({ swaps, refused }: CredentialTally): string {
  const lines = [
    ...[...swaps].map(([k, n]) => `  swapped ${n}× ${k}`),
    ...[...refused].slice(0, 15).map(([k, n]) => `  REFUSED ${n > 1 ? `${n}× ` : ""}${k}`),
  ];
  return lines.length === 0 ? "" : `fourwall: credentials:\n${lines.join("\n")}\n`;
}

/** One screen at most: what the box tried to reach and was refused, most frequent first, each with its fix. */
export function blockedSummary(blocked: Map<string, number>, what = "egress blocked"): string {
  const rows = [...blocked.entries()].sort((a, b) => b[1] - a[1]);
  const shown = rows.slice(0, 15).map(([row, n]) => `  ${n > 1 ? `${n}× ` : ""}${row}`);
  const more = rows.length > 15 ? [`  … and ${rows.length - 15} more (see --audit)`] : [];
  return `fourwall: ${what} ${rows.reduce((t, [, n]) => t + n, 0)} request(s):\n${[...shown, ...more].join("\n")}\n`;
}

/**
 * Waits for every start-up step, even after one has failed (so cleanup sees all that did start),
 * then throws the first failure in the given order.
 */
async function allStarted(steps: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) throw failed.reason;
}

const FORWARDED: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"];

export interface SuperviseOptions {
  audit: AuditLog;
  /** No summary of blocked requests at exit. */
  quiet?: boolean;
  /** Called once the command runs (persistent boxes record how to enter it). */
  onStarted?: (box: RunningBox, session: BoxSession, plan: BoxPlan) => void;
  /** Called once the box has ended, before cleanup. */
  onExit?: () => void;
  /** Pass fourwall's own signals to the box (default). A daemon hosting many boxes says no. */
  forwardSignals?: boolean;
  /** Approval gate: who is asked (--approver, --inbox, the terminal). */
  gate?: GateOptions;
  /** Tests only (weak-box.ts host-placeholders): placeholders outside the workdir on the host, no write-through overlay. */
  hostPlaceholders?: boolean;
  /** Tests only (weak-box.ts squid-auth): squid's 127.0.0.1 port without its proxy credential. */
  openSquidPortForTests?: boolean;
  /**
   * After a terminating signal (SIGTERM, SIGINT, SIGHUP) is passed on, how long the command has to
   * end before the box is killed (MCP clients expect a stdio server to go within a grace period).
   * Unset: the command decides when to end.
   */
  graceMs?: number;
  /** Changes were kept, not applied (their change-set); the daemon hands it to `down`. */
  onKept?: (kept: KeptChangeSet) => void;
  /** --strict-gate: exit EXIT_CHANGES_KEPT (when the box itself exited 0) if changes were kept. */
  strictGate?: boolean;
  /** Where fourwall's own messages go (default: its stderr; the daemon's `run`: the caller's). */
  say?: (text: string) => void;
  /** The daemon's `run`: fourwall-run's connection, which carries the caller's stdio to the box. */
  callerFds?: number;
  /** Step timings (FOURWALL_TRACE). */
  trace?: Trace;
  /**
   * The exit status is final and nothing the caller can observe changes any more (the gate has
   * reviewed and applied, its mount points are gone, no placeholder is left for the reaper to
   * remove): the daemon's `run` replies here; the private clean-up (cgroup, run dir, layer, reaper)
   * follows. Not called when something observable is still to change: then the caller waits.
   */
  onSettled?: (code: number) => void;
}

const TERMINATING = new Set<NodeJS.Signals>(["SIGTERM", "SIGINT", "SIGHUP"]);

/**
 * Runs one box to completion: makes the run dir and placeholders, arms the reaper, launches the
 * runtime, forwards signals to the command, and removes everything on every exit path.
 * Returns the command's exit status; throws WallError (nothing ran) when a wall cannot be built.
 */
/**
 * Repositories the box made (a `.git` entry, or a directory shaped like a git dir, that the plan
 * did not find, anywhere in the workdir; bounded
 * like the plan's walk): the filesystem wall cannot guard them, so name them at exit, with their
 * hooks and config, before a human runs git there.
 */
function newRepositories(plan: BoxPlan, scan: TreeScan): string[] {
  const known = new Set([...plan.filesystem.gitEntries, ...plan.filesystem.bareGitDirs]);
  const found = [...scan.gitEntries, ...scan.bareGitDirs].filter((e) => !known.has(e));
  return found.flatMap((entry) => {
    const gitDir = resolveGitEntry(realHost, entry);
    if (!gitDir) return [entry];
    const hooks = realHost
      .readdir(path.join(gitDir, "hooks"))
      .filter((name) => !name.endsWith(".sample"))
      .map((name) => path.join(gitDir, "hooks", name));
    return [
      entry,
      ...hooks,
      ...(realHost.kind(path.join(gitDir, "config")) === "file" ? [path.join(gitDir, "config")] : []),
    ];
  });
}

/**
 * Placeholders that hold more than the reaper recognises as its own (empty, `{}`): `.git/commondir`
 * holding "." and a `.bash_profile` that sources `.profile`. Removed here when still unchanged, only
 * under the workdir's lock taken exclusively (no other box on this workdir is up and relying on
 * them; one starting now waits for the lock). A SIGKILLed fourwall leaves them (inert: see
 * docs/filesystem.md) until the next box on the workdir exits.
 */
function removeContentPlaceholders(placeholders: BoxPlan["filesystem"]["placeholders"], list: string): void {
  const lock = list.replace(/\.placeholders$/, ".lock");
  for (const p of placeholders) {
    if (p.kind !== "file" || p.content === "" || p.content === "{}\n") continue;
    // flock(1) -n: if any box still holds the shared lock, leave it for the last one out
    spawnSync(
      "flock",
      [
        "-x",
        "-n",
        lock,
        "sh",
        "-c",
        '[ "$(cat -- "$1")" = "$2" ] && rm -f -- "$1"',
        "sh",
        p.path,
        p.content.replace(/\n$/, ""),
      ],
      { stdio: "ignore" },
    );
  }
}

/** The plan's generated files (`file` mounts: the box's /etc/passwd, its ~/.gitconfig), readable by the box uid. */
function writeGeneratedFiles(plan: BoxPlan, runDir: string): void {
  const files = plan.filesystem.mounts.filter((m) => m.type === "file");
  if (files.length === 0) return;
  mkdirSync(path.join(runDir, "files"), { mode: 0o711 });
  for (const m of files) writeFileSync(path.join(runDir, "files", m.name), m.content, { mode: 0o444 });
}

/**
 * The run dir is reachable by its launcher and, in root mode, by the box's group (bwrap runs as the
 * box uid and binds the empty file and generated files from here): never by another local user, who
 * could otherwise read the box's passwd and gitconfig or learn its socket paths.
 */
function guardRunDir(runDir: string, plan: BoxPlan): void {
  if (plan.identity.mode === "root") {
    chownSync(runDir, 0, plan.identity.gid);
    // squid (Debian's proxy user) has a dir of its own outside this one: nobody else walks here
    chmodSync(runDir, 0o710);
  } else chmodSync(runDir, 0o700);
}

export async function superviseBox(
  planned: BoxPlan,
  runtime: Runtime,
  options: SuperviseOptions,
): Promise<number> {
  let plan = planned;
  const step = (label: string) => options.trace?.step(label);
  // 0700 (mkdtemp's) until the box's uid is known; then guardRunDir opens it to the box's group.
  const runDir = mkdtempSync(path.join(os.tmpdir(), `fourwall-${plan.id}-`));
  const emptyFile = path.join(runDir, "empty");
  writeFileSync(emptyFile, "", { mode: 0o444 });
  const netDir = path.join(runDir, "net");
  mkdirSync(netDir, { mode: 0o700 });
  // squid's files: a dir of its own (squid's uid only, as root), never a way into the run dir
  const squidDir =
    plan.egress.proxy === "squid"
      ? mkdtempSync(path.join(os.tmpdir(), `fourwall-${plan.id}-squid-`))
      : undefined;
  const cgroup = plan.identity.mode === "root" ? createBoxCgroup(plan.id, plan.boxLimits) : undefined;
  // No cgroup after all (no memory controller, a read-only cgroupfs): RLIMIT_DATA caps memory again.
  if (!cgroup && !plan.rlimits.some((r) => r.name === "data"))
    plan = { ...plan, rlimits: [...plan.rlimits, dataLimit(plan.boxLimits.memoryBytes)] };
  const session: BoxSession = {
    runDir,
    emptyFile,
    netDir,
    cgroupDirs: cgroup?.dirs ?? [],
    ...(options.trace ? { trace: options.trace } : {}),
  };
  const say = options.say ?? ((text: string) => process.stderr.write(text));
  let terminal: TerminalControl | undefined;
  const blocked = new Map<string, number>();
  const unreachable = new Map<string, number>();
  const credentialTally = new CredentialTally();
  const handlers = new Map<NodeJS.Signals, () => void>();
  let proxy: ProxyHandle | undefined;
  let reaper: Reaper | undefined;
  let placeholderList: string | undefined;
  let gate: GateSession | undefined;
  let grace: NodeJS.Timeout | undefined;
  // With the gate's layer over the workdir, the placeholders inside it stand in the layer (no
  // trace on the host: walls/gate/placeholders.ts, placeholdersInLayer). The others go, where the
  // runtime can (throughCarrier: namespaces, gvisor and vm, both modes; docker), into write-through
  // overlays over their writable directories (box/through.ts): the box's writes land in the real
  // directory, the placeholder exists in its mount namespace only. So do the mount points of the
  // gate's agent settings the agent does not have yet (~/.codex/hooks.json); not carried, bwrap
  // makes those on the host as before (box/gate.ts removes them). Also the
  // workdir's, when the gate holds nothing (its layer would only carry them: the box then writes
  // straight through) or has no layer (a persistent box). Only what is left stands on the host.
  const cwd = plan.filesystem.cwd;
  const carrier = throughCarrier(runtime.name, plan.identity.mode);
  const settingsPoints = settingsMountPoints(plan, (p) => existsSync(p));
  const home =
    carrier !== undefined &&
    plan.filesystem.placeholders.length + settingsPoints.length > 0 &&
    !options.hostPlaceholders &&
    existsSync(nativeHelperPath("overlay"))
      ? throughHome(carrier)
      : undefined;
  // (namespaces only: elsewhere the gate's layer carries the workdir's, tested so)
  const carryWorkdir =
    home !== undefined &&
    runtime.name === "namespaces" &&
    (!plan.gate.holds || options.gate?.layer === false) &&
    home.canCarry(cwd);
  if (carryWorkdir && plan.gate.overlay && !plan.gate.holds)
    plan = { ...plan, gate: { ...plan.gate, overlay: false } };
  const layered = plan.gate.overlay && options.gate?.layer !== false;
  const outsideLayer = plan.filesystem.placeholders.filter(
    (p) => !(layered && p.path !== cwd && isUnder(p.path, cwd)),
  );
  const throughPlan = home
    ? planThrough(
        [...outsideLayer, ...settingsPoints],
        cwd,
        (p) => existsSync(p),
        home.canCarry,
        carryWorkdir,
      )
    : { groups: [], host: outsideLayer };
  const hostPlaceholders = throughPlan.host.filter((p) => !settingsPoints.includes(p));
  let through: Through | undefined;
  step("run dir and cgroup made");
  /** Whether the reaper or the content check below would still change a placeholder on the host. */
  const placeholdersPending = () => {
    if (!placeholderList) return hostPlaceholders.length > 0;
    if (hostPlaceholders.some((p) => p.kind === "file" && p.content !== "" && p.content !== "{}\n"))
      return true;
    return (statSync(placeholderList, { throwIfNoEntry: false })?.size ?? 0) > 0;
  };
  let outcome: number | undefined;
  const cleanup = async () => {
    clearTimeout(grace);
    for (const [sig, handler] of handlers) process.off(sig, handler);
    void proxy?.close();
    await gate?.close();
    step("gate closed (layer removed)");
    terminal?.close();
    if (outcome !== undefined && options.onSettled && !placeholdersPending()) {
      options.onSettled(outcome);
      step("settled: the exit status is sent");
    }
    if (through) removeThrough(through);
    // docker's write-through overlays under the run dir have the real directory as their upper:
    // never removed through (the runtime unmounts them after the container; this is the backstop)
    for (const i of session.through?.carrier === "host" ? session.through.mounts.keys() : [])
      spawnSync("umount", ["-l", path.join(runDir, "through", String(i))], { stdio: "ignore" });
    await Promise.all([
      removeBoxCgroup(cgroup),
      rm(runDir, { recursive: true, force: true }),
      ...(squidDir ? [rm(squidDir, { recursive: true, force: true })] : []),
    ]);
    step("cgroup, run dir (and squid's dir) removed");
    await reaper?.release(); // placeholders: the last box out on this workdir removes them
    step("reaper done");
    if (placeholderList) removeContentPlaceholders(hostPlaceholders, placeholderList);
  };
  try {
    options.audit.write({
      box: plan.id,
      wall: "isolation",
      event: "box-start",
      runtime: runtime.name,
      command: plan.command,
      identity: plan.identity.mode,
    });
    // Gate and proxy do not depend on each other: start them together (their processes, module
    // loads and sockets overlap). The box launches only once both are up, so its
    // first request never races the proxy and the gate is open before anything can ask it.
    const onDecision = (event: EgressEvent) => {
      options.audit.write({ wall: "egress", event: "decision", ...event });
      if (event.decision === "deny") {
        // a name that does not resolve was not blocked: it is summed up apart, as unreachable
        const rows = isUnreachable(event.reason) ? unreachable : blocked;
        const key = summaryRow(event);
        rows.set(key, (rows.get(key) ?? 0) + 1);
      }
    };
    // Credentials: every swap and refusal in the audit log (entry names and hosts, never a value).
    const onCredential = (event: CredentialEvent) => {
      credentialTally.add(event);
      options.audit.write({ wall: "egress", event: "credential", ...event });
    };
    const askNet: AskHook = (request) => (gate ? gate.askNet(request) : Promise.resolve(false));
    // The reaper first: as root it also gives the box a uid of its own (held while the box lives),
    // which the box's files, its layer and its proxy socket's directory then belong to.
    const id = plan.identity;
    const reaped = await startReaper(
      plan.filesystem.cwd,
      runDir,
      session.cgroupDirs,
      undefined,
      id.mode === "root" && !id.pinned ? { first: BOX_UID_FIRST, count: BOX_UID_COUNT } : undefined,
      squidDir,
    );
    step("reaper holds the workdir lock (and the box uid)");
    reaper = reaped.reaper;
    placeholderList = reaped.list;
    if (reaped.uid !== undefined) plan = withBoxUid(plan, reaped.uid);
    guardRunDir(runDir, plan);
    standPlaceholders(hostPlaceholders, reaped.list);
    if (home && throughPlan.groups.length > 0) {
      through = standThrough(throughPlan.groups, home.layers, plan.id, runDir, cwd, carrier!, plan.identity);
      session.through = {
        carrier: through.carrier,
        args: through.args,
        hide: through.hide,
        mounts: through.mounts,
      };
    }
    writeGeneratedFiles(plan, runDir);
    // Only the box's uid (and root) may reach the proxy socket: other local users cannot borrow it.
    if (plan.identity.mode === "root") chownSync(netDir, plan.identity.uid, plan.identity.gid);
    // The box's own session and terminal: every runtime's launcher starts under fourwall-pty.
    // The daemon's `run` has no terminal of its own: the caller's (if any) comes with its fds.
    terminal = options.callerFds === undefined ? await openTerminalControl(runDir) : await detachedTerminal();
    session.terminal = {
      ...terminal.spec,
      ...(options.callerFds === undefined ? {} : { callerFds: options.callerFds }),
    };
    step("placeholders, generated files, terminal");
    const screen = terminal;
    await allStarted([
      import("./gate.js")
        .then(({ openGateSession }) =>
          openGateSession(plan, session, { audit: options.audit, options: options.gate, screen, say }),
        )
        .then((opened) => {
          gate = opened;
          step("gate up");
        }),
      startCredentials(plan, netDir, onCredential, say)
        .then((credentials) =>
          startEgressProxy(
            plan,
            path.join(netDir, "proxy.sock"),
            onDecision,
            say,
            askNet,
            credentials,
            squidDir,
            options.openSquidPortForTests,
          ),
        )
        .then((started) => {
          proxy = started;
          step("proxy up");
        }),
    ]);
    const box = await runtime.launch(plan, session);
    step("box ready: the command starts");
    options.onStarted?.(box, session, plan);
    for (const sig of options.forwardSignals === false ? [] : FORWARDED) {
      // The box has a session (and, on a terminal, a pty) of its own: Ctrl-C typed on the caller's
      // terminal reaches it through its pty, never through fourwall. A signal fourwall gets is
      // passed on to the command.
      const handler = () => {
        box.signal(sig);
        if (options.graceMs !== undefined && TERMINATING.has(sig) && !grace)
          grace = setTimeout(() => box.signal("SIGKILL"), options.graceMs);
      };
      handlers.set(sig, handler);
      process.on(sig, handler);
    }
    const { code } = await box.exit;
    step("command exited");
    // The box is gone: stop the proxy now, so every decision (squid's log included) is in before the summary.
    await proxy!.close();
    step("proxy closed");
    options.onExit?.();
    options.audit.write({ box: plan.id, wall: "isolation", event: "box-exit", code });
    const kept = await gate!.finish(); // the copy-on-write layer's change-set: new files in, destructive ones asked
    step("gate finished (change-set reviewed and applied)");
    const after = scanTrees(realHost, [plan.filesystem.cwd]);
    const made = newRepositories(plan, after);
    step("new repositories looked for");
    if (made.length > 0) {
      options.audit.write({ box: plan.id, wall: "filesystem", event: "new-repositories", paths: made });
      say(
        `fourwall: the box created git repositories (their hooks and config are not guarded); review them before running git here:\n${made.map((h) => `  ${h}`).join("\n")}\n`,
      );
    }
    const knownTools = new Set(plan.filesystem.toolConfigs);
    const tools = after.toolConfigs.filter((f) => !knownTools.has(f));
    if (tools.length > 0) {
      options.audit.write({ box: plan.id, wall: "filesystem", event: "new-tool-config", paths: tools });
      say(
        `fourwall: the box created tool config that makes host tools run programs (npm, cargo, mise, ...); review it before running them here:\n${tools.map((h) => `  ${h}`).join("\n")}\n`,
      );
    }
    if (blocked.size > 0 && !options.quiet) say(blockedSummary(blocked));
    if (unreachable.size > 0 && !options.quiet)
      say(blockedSummary(unreachable, "egress could not reach (not blocked)"));
    const hint = addressSpaceHint(code, plan.rlimits);
    if (hint && !options.quiet) say(hint);
    if (credentialTally.size > 0 && !options.quiet) say(credentialSummary(credentialTally));
    if (kept) {
      // last, and loud: what the human must not miss
      options.onKept?.(kept);
      say(`${pc.bold(pc.yellow(keptLine(kept)))}\n`);
      if (options.strictGate && code === 0) {
        outcome = EXIT_CHANGES_KEPT;
        return outcome;
      }
    }
    outcome = code;
    return code;
  } finally {
    await cleanup();
  }
}
