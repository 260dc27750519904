import path from "node:path";
import { type Entry, unwrapEntry, type WrapContext, wrapEntry } from "./entry.js";
import { parseToml, replaceTomlServers } from "./toml.js";

/**
 * The MCP clients' config files and their rewriting: every listed server wrapped (install) or
 * restored (uninstall). Pure: text in, text and a list of what changed out; the CLI reads, backs
 * up and writes.
 */

export type Client = "claude-code" | "claude-desktop" | "codex";
export const CLIENTS: Client[] = ["claude-code", "claude-desktop", "codex"];

export interface ConfigFile {
  client: Client;
  path: string;
  format: "json" | "toml";
}

/** Where each client keeps its servers (Linux): the project's file first, then the user's. */
export function configFiles(
  home: string,
  cwd: string,
  env: Record<string, string | undefined> = {},
): ConfigFile[] {
  const xdg = env.XDG_CONFIG_HOME || path.join(home, ".config");
  const codexHome = env.CODEX_HOME || path.join(home, ".codex");
  return [
    { client: "claude-code", path: path.join(cwd, ".mcp.json"), format: "json" },
    { client: "claude-code", path: path.join(home, ".claude.json"), format: "json" },
    {
      client: "claude-desktop",
      path: path.join(xdg, "Claude", "claude_desktop_config.json"),
      format: "json",
    },
    { client: "codex", path: path.join(codexHome, "config.toml"), format: "toml" },
  ];
}

/** What became of one server. */
export interface Change {
  server: string;
  /** Where in the file: "mcpServers", "projects[/p].mcpServers", "mcp_servers". */
  scope: string;
  action: "wrapped" | "unwrapped" | "skipped";
  why?: string;
  workdir?: string;
}

export interface Rewrite {
  text: string;
  changes: Change[];
}

export class ConfigError extends Error {}

/** A file's server maps, each with the directory its servers belong to (project scopes). */
interface ServerMap {
  scope: string;
  servers: Record<string, Entry>;
  projectDir?: string;
  /** Puts a rewritten map back in the document. */
  set(servers: Record<string, Entry>): void;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

function jsonMaps(file: ConfigFile, doc: Record<string, unknown>): ServerMap[] {
  const maps: ServerMap[] = [];
  if (isObject(doc.mcpServers))
    maps.push({
      scope: "mcpServers",
      servers: doc.mcpServers as Record<string, Entry>,
      // .mcp.json is a project's: its servers work on that project
      ...(path.basename(file.path) === ".mcp.json" ? { projectDir: path.dirname(file.path) } : {}),
      set: (s) => {
        doc.mcpServers = s;
      },
    });
  // ~/.claude.json also holds per-project servers (claude mcp add --scope local)
  if (file.client === "claude-code" && isObject(doc.projects))
    for (const [dir, project] of Object.entries(doc.projects))
      if (isObject(project) && isObject(project.mcpServers))
        maps.push({
          scope: `projects[${dir}].mcpServers`,
          servers: project.mcpServers as Record<string, Entry>,
          projectDir: dir,
          set: (s) => {
            project.mcpServers = s;
          },
        });
  return maps;
}

/** The indentation a JSON file uses (two spaces if it cannot tell), so a rewrite keeps its look. */
function jsonIndent(text: string): string | number {
  const m = /^[{[]\s*\n([ \t]+)\S/.exec(text);
  return m ? m[1]! : 2;
}

function parseJson(file: ConfigFile, text: string): Record<string, unknown> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file.path}: not valid JSON (${(error as Error).message})`);
  }
  if (!isObject(doc)) throw new ConfigError(`${file.path}: not a JSON object`);
  return doc;
}

type EntryEdit = (
  name: string,
  entry: Entry,
  map: { scope: string; projectDir?: string },
) => Change & { entry?: Entry };

function rewrite(file: ConfigFile, text: string, edit: EntryEdit): Rewrite {
  const changes: Change[] = [];
  if (file.format === "json") {
    const doc = parseJson(file, text);
    let touched = false;
    for (const map of jsonMaps(file, doc)) {
      const out: Record<string, Entry> = {};
      for (const [name, entry] of Object.entries(map.servers)) {
        const { entry: next, ...change } = isObject(entry)
          ? edit(name, entry, map)
          : { server: name, scope: map.scope, action: "skipped" as const, why: "not an object" };
        changes.push(change);
        out[name] = next ?? entry;
        touched ||= next !== undefined;
      }
      map.set(out);
    }
    if (!touched) return { text, changes };
    return { text: JSON.stringify(doc, null, jsonIndent(text)) + (text.endsWith("\n") ? "\n" : ""), changes };
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text);
  } catch (error) {
    throw new ConfigError(`${file.path}: not valid TOML (${(error as Error).message})`);
  }
  const servers = isObject(doc.mcp_servers) ? doc.mcp_servers : {};
  const replaced: Record<string, Entry> = {};
  for (const [name, entry] of Object.entries(servers)) {
    const { entry: next, ...change } = isObject(entry)
      ? edit(name, entry, { scope: "mcp_servers" })
      : { server: name, scope: "mcp_servers", action: "skipped" as const, why: "not a table" };
    changes.push(change);
    if (next) replaced[name] = next;
  }
  if (Object.keys(replaced).length === 0) return { text, changes };
  return { text: replaceTomlServers(text, replaced), changes };
}

/** Every local server of the file wrapped in `fourwall mcp wrap` (those already wrapped left alone). */
export function installText(file: ConfigFile, text: string, ctx: Omit<WrapContext, "projectDir">): Rewrite {
  return rewrite(file, text, (server, entry, map) => {
    const outcome = wrapEntry(entry, { ...ctx, ...(map.projectDir ? { projectDir: map.projectDir } : {}) });
    if (outcome.action === "skip") return { server, scope: map.scope, action: "skipped", why: outcome.why };
    return {
      server,
      scope: map.scope,
      action: "wrapped",
      entry: outcome.entry,
      ...(outcome.workdir ? { workdir: outcome.workdir } : {}),
    };
  });
}

/** Every wrapped server of the file back to its own command line. */
export function uninstallText(file: ConfigFile, text: string): Rewrite {
  return rewrite(file, text, (server, entry, map) => {
    const original = unwrapEntry(entry);
    if (!original) return { server, scope: map.scope, action: "skipped", why: "not wrapped" };
    return { server, scope: map.scope, action: "unwrapped", entry: original };
  });
}

/** Do two texts of one config file hold the same document? (uninstall: is the backup still it?) */
export function sameDocument(file: ConfigFile, a: string, b: string): boolean {
  try {
    const parse = file.format === "json" ? (t: string) => JSON.parse(t) : parseToml;
    return JSON.stringify(sortKeys(parse(a))) === JSON.stringify(sortKeys(parse(b)));
  } catch {
    return false;
  }
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (!isObject(v)) return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys(v[k])]),
  );
}
