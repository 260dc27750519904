import { createHash } from "node:crypto";
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTwoFilesPatch } from "diff";
import pc from "picocolors";
import { superviseBox } from "../box/supervisor.js";
import { EXIT_BOX_FAILED } from "../core/errors.js";
import { makeOwnedDir } from "../core/owned-dir.js";
import { packageRoot } from "../core/paths.js";
import {
  type Change,
  CLIENTS,
  type Client,
  ConfigError,
  type ConfigFile,
  configFiles,
  installText,
  type Rewrite,
  sameDocument,
  uninstallText,
} from "../mcp/config.js";
import { serverDirectory } from "../mcp/entry.js";
import { planFromOptions, type RunOptions } from "../plan/from-options.js";
import { runtimeFor } from "../runtimes/index.js";
import { failClosed, openAudit } from "./run.js";

// `fourwall mcp wrap|install|uninstall`. In `wrap`, stdout belongs to the server's JSON-RPC: every
// word fourwall says goes to stderr (the supervisor's summaries already do), the gate's terminal
// approver asks on /dev/tty, and a pty is given only to the fds that are terminals (never a pipe).

export interface WrapOptions extends RunOptions {
  env: string[];
  /** Seconds the server has to end after SIGTERM before its box is killed. */
  grace: string;
}

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;

/**
 * The wrapped server's one writable directory: --workdir, else the directory it is given on its
 * command line, else the current directory, unless that is "/" (clients such as Claude Desktop
 * start servers there): then a directory of its own in HOME, kept between runs
 * (~/.local/share/fourwall/mcp/KEY, KEY a hash of the command line: in HOME, which the box reaches
 * in root mode too; fourwall's state and cache dirs are hidden from boxes, /run and /tmp are the box's own).
 */
export function wrapWorkdir(command: string[], options: { workdir?: string }, cwd: string): string {
  if (options.workdir) return path.resolve(cwd, options.workdir);
  const given = serverDirectory(command, isDir);
  if (given) return given;
  if (cwd !== "/") return cwd;
  const key = createHash("sha256").update(command.join("\0")).digest("hex").slice(0, 16);
  const home = process.env.HOME ?? os.homedir();
  const scratch = path.join(home, ".local", "share", "fourwall", "mcp", key);
  const owner = statSync(home);
  makeOwnedDir(scratch, owner);
  return scratch;
}

/** `fourwall mcp wrap -- SERVER…`: one stdio MCP server in a box of its own; its exit status. */
export async function mcpWrapCommand(command: string[], options: WrapOptions): Promise<number> {
  const grace = Number(options.grace);
  if (!Number.isFinite(grace) || grace < 0) {
    process.stderr.write(`fourwall: --grace ${options.grace}: not a number of seconds (e.g. --grace 5)\n`);
    return EXIT_BOX_FAILED;
  }
  let audit: ReturnType<typeof openAudit> | undefined;
  try {
    const workdir = wrapWorkdir(command, options, process.cwd());
    const { plan } = await planFromOptions(command, { ...options, workdir });
    audit = openAudit(options.audit);
    return await superviseBox(plan, runtimeFor(plan.runtime, { image: options.image }), {
      audit,
      gate: { approver: options.approver, inbox: options.inbox },
      graceMs: grace * 1000,
    });
  } catch (error) {
    return failClosed(error);
  } finally {
    audit?.close();
  }
}

export interface InstallOptions {
  client: string[];
  config: string[];
  policy?: string;
  dryRun?: true;
}

/** The files to rewrite: --config FILE…, else every known location of the chosen clients that exists. */
function chosenFiles(options: InstallOptions): ConfigFile[] | string {
  const clients = options.client.length > 0 ? options.client : CLIENTS;
  const unknown = clients.filter((c) => !CLIENTS.includes(c as Client));
  if (unknown.length > 0) return `unknown client ${unknown.join(", ")}: one of ${CLIENTS.join(", ")}`;
  if (options.config.length > 0)
    return options.config.map((f) => {
      const p = path.resolve(f);
      const client: Client = p.endsWith(".toml")
        ? "codex"
        : path.basename(p) === "claude_desktop_config.json"
          ? "claude-desktop"
          : "claude-code";
      return { client, path: p, format: client === "codex" ? "toml" : "json" };
    });
  return configFiles(os.homedir(), process.cwd(), process.env).filter(
    (f) => clients.includes(f.client) && existsSync(f.path),
  );
}

const backupOf = (file: string) => `${file}.fourwall-backup`;

/** Replaces a file's content in one step (a client reading it never sees half), keeping its mode. */
function replaceFile(file: string, text: string): void {
  const mode = statSync(file).mode & 0o7777;
  const tmp = `${file}.fourwall-${process.pid}`;
  writeFileSync(tmp, text, { mode, flag: "wx" }); // never through a planted link
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

function describe(change: Change): string {
  const where = change.scope === "mcpServers" || change.scope === "mcp_servers" ? "" : ` (${change.scope})`;
  if (change.action === "skipped") return `  ${pc.dim("skipped")}   ${change.server}${where}: ${change.why}`;
  const workdir = change.workdir ? pc.dim(` workdir ${change.workdir}`) : "";
  return `  ${change.action === "wrapped" ? pc.green("wrapped") : pc.yellow("unwrapped")} ${change.server}${where}${workdir}`;
}

function report(file: ConfigFile, before: string, result: Rewrite, dryRun: boolean): void {
  process.stdout.write(`${pc.bold(file.path)} (${file.client})\n`);
  if (result.changes.length === 0) process.stdout.write("  no MCP servers listed\n");
  for (const c of result.changes) process.stdout.write(`${describe(c)}\n`);
  if (dryRun && result.text !== before)
    process.stdout.write(
      createTwoFilesPatch(file.path, file.path, before, result.text, "now", "after install"),
    );
}

/** `fourwall mcp install`: every listed server of each client's config runs through `mcp wrap`. */
export function mcpInstallCommand(options: InstallOptions): number {
  const files = chosenFiles(options);
  if (typeof files === "string") return fail(files, "fourwall mcp install --help");
  if (files.length === 0)
    return fail(
      "no MCP client config found (.mcp.json here, ~/.claude.json, Claude Desktop's, ~/.codex/config.toml)",
      "pass --config FILE",
    );
  const policy = options.policy ? path.resolve(options.policy) : undefined;
  if (policy && !existsSync(policy))
    return fail(`policy file ${policy} does not exist`, "pass an existing --policy FILE");
  try {
    for (const file of files) {
      const before = readFileSync(file.path, "utf8");
      const result = installText(file, before, {
        fourwall: path.join(packageRoot(), "bin", "fourwall"),
        ...(policy ? { policy } : {}),
        isDir,
      });
      report(file, before, result, options.dryRun === true);
      if (options.dryRun || result.text === before) continue;
      // The copy from before fourwall: kept from the first install (a later one wraps new servers only).
      if (!existsSync(backupOf(file.path)))
        writeFileSync(backupOf(file.path), before, { mode: 0o600, flag: "wx" });
      replaceFile(file.path, result.text);
      process.stdout.write(
        `  backup ${backupOf(file.path)}; undo: fourwall mcp uninstall --config ${file.path}\n`,
      );
    }
    return 0;
  } catch (error) {
    if (error instanceof ConfigError)
      return fail(error.message, "fix the file, or leave it out with --client / --config");
    throw error;
  }
}

/**
 * `fourwall mcp uninstall`: every wrapped server back to its own command line. When the file holds
 * just what install left (nothing else edited since), the backup is put back byte for byte and
 * removed; otherwise the entries are unwrapped in place and the backup is kept.
 */
export function mcpUninstallCommand(options: InstallOptions): number {
  const files = chosenFiles(options);
  if (typeof files === "string") return fail(files, "fourwall mcp uninstall --help");
  try {
    for (const file of files) {
      const now = readFileSync(file.path, "utf8");
      const result = uninstallText(file, now);
      report(file, now, result, options.dryRun === true);
      if (options.dryRun) continue;
      const backup = backupOf(file.path);
      const saved = existsSync(backup) ? readFileSync(backup, "utf8") : undefined;
      if (saved !== undefined && sameDocument(file, saved, result.text)) {
        if (saved !== now) replaceFile(file.path, saved);
        rmSync(backup);
        process.stdout.write("  restored from the backup, byte for byte\n");
      } else if (result.text !== now) {
        replaceFile(file.path, result.text);
        if (saved !== undefined)
          process.stdout.write(`  edited since install: unwrapped in place; the backup stays at ${backup}\n`);
      }
    }
    return 0;
  } catch (error) {
    if (error instanceof ConfigError)
      return fail(error.message, "fix the file, or leave it out with --client / --config");
    throw error;
  }
}

function fail(message: string, fix: string): number {
  process.stderr.write(`${pc.red(`fourwall: ${message}`)}\n  fix: ${fix}\n`);
  return EXIT_BOX_FAILED;
}
