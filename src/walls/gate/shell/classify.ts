import path from "node:path";
import type { Node, Parser } from "web-tree-sitter";
import { ANALYZERS, BUILTINS, type CommandClass } from "./programs.js";
import { staticText } from "./words.js";

/**
 * The command classifier: parses a shell command line with the bash grammar and classifies every
 * simple command in it — inside pipelines, lists, loops, functions, `$(…)`, `<(…)`, `sh -c '…'`,
 * `eval`, `xargs`, `find -exec`, `env`/`timeout`/`nice` wrappers — plus the redirections that
 * truncate files. Programs are resolved the way the shell would (builtins, then PATH, or the path
 * typed), and only a program that resolves outside every writable place is taken for what its name
 * says: `./sed` is not sed.
 *
 * It is advisory (it powers the immediate prompt for commands an agent asks about); the
 * copy-on-write layer is what enforces.
 */

export interface Resolution {
  /** Where the program is, if found. */
  path?: string;
  /** True when the file lives where the box cannot write (the host's read-only system dirs). */
  trusted: boolean;
}

export interface ClassifyContext {
  cwd: string;
  /** PATH lookup (or the typed path) as the box would do it. */
  resolve(program: string, cwd: string): Resolution;
  /** Whether a path exists now (a `>` onto an existing file destroys it; onto a new one creates it). */
  exists(absolutePath: string): boolean;
}

export interface SimpleCommand {
  /** The words after quote removal; undefined where a word is computed at run time. */
  words: (string | undefined)[];
  /** The program's base name, when the classifier trusts the resolution. */
  program?: string;
  class: CommandClass;
  reason: string;
}

export interface Classification {
  class: CommandClass;
  commands: SimpleCommand[];
  /** Why it is not read-only (empty when it is). */
  reasons: string[];
}

const SEVERITY: Record<CommandClass, number> = { "read-only": 0, unknown: 1, destructive: 2 };
export const worse = (a: CommandClass, b: CommandClass): CommandClass => (SEVERITY[b] > SEVERITY[a] ? b : a);

/** Variables that change which program runs or what it loads. */
const STEERING_VARS =
  /^(PATH|LD_[A-Z_]+|BASH_ENV|ENV|IFS|PS4|PROMPT_COMMAND|GIT_[A-Z_]+|PAGER|MANPAGER|EDITOR|VISUAL|PYTHONPATH|PYTHONSTARTUP|NODE_OPTIONS|PERL5LIB|PERL5OPT|RUBYOPT)$/;

const HARMLESS_TARGETS = new Set(["/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "-"]);

const MAX_DEPTH = 8;

class Walker {
  readonly commands: SimpleCommand[] = [];
  private readonly functions = new Set<string>();
  private steered = false;

  constructor(
    private readonly parser: Parser,
    private readonly ctx: ClassifyContext,
  ) {}

  private add(words: (string | undefined)[], cls: CommandClass, reason: string, program?: string) {
    const cmd: SimpleCommand = { words, class: cls, reason };
    if (program !== undefined) cmd.program = program;
    this.commands.push(cmd);
  }

  script(text: string, depth: number): void {
    if (depth > MAX_DEPTH) {
      this.add([], "unknown", "shell scripts nested too deep to follow");
      return;
    }
    const tree = this.parser.parse(text);
    if (!tree) {
      this.add([], "unknown", "the command could not be parsed");
      return;
    }
    try {
      if (tree.rootNode.hasError) this.add([], "unknown", "the command does not parse as shell");
      this.visit(tree.rootNode, depth);
    } finally {
      tree.delete();
    }
  }

  private visit(node: Node, depth: number): void {
    switch (node.type) {
      case "command":
        this.command(node, depth);
        break;
      case "function_definition": {
        const name = node.childForFieldName("name");
        if (name) this.functions.add(name.text);
        break;
      }
      case "variable_assignment":
        this.assignment(node, node.parent?.type === "command");
        break;
      case "file_redirect":
        this.redirect(node);
        break;
      case "heredoc_redirect":
      case "herestring_redirect":
        break;
      case "ERROR":
        break;
    }
    for (const child of node.namedChildren) if (child) this.visit(child, depth);
  }

  private assignment(node: Node, prefixOfCommand: boolean): void {
    const name = node.childForFieldName("name")?.text ?? node.firstNamedChild?.text ?? "";
    if (!STEERING_VARS.test(name)) return;
    if (!prefixOfCommand) this.steered = true;
    this.add([`${name}=…`], "unknown", `sets ${name}, which changes what later programs are or load`);
  }

  private redirect(node: Node): void {
    const op = node.children.find((c) => c && !c.isNamed)?.text ?? "";
    const dest =
      node.childForFieldName("destination") ??
      node.namedChildren.filter((c) => c && c.type !== "file_descriptor").at(-1) ??
      null;
    if (op === "<" || op === "<&" || op === ">&-" || op === "<&-") return;
    if ((op === ">&" || op === "<&") && dest && /^\d+$|^-$/.test(dest.text)) return; // fd duplication
    const target = dest ? staticText(dest) : undefined;
    if (
      target !== undefined &&
      (HARMLESS_TARGETS.has(target) ||
        /^\/dev\/fd\/\d+$/.test(target) ||
        (/^\d+$/.test(target) && op === ">&"))
    )
      return;
    const shown = target ?? dest?.text ?? "?";
    if (target === undefined) {
      this.add([op, shown], "destructive", `redirects (${op}) into a file named at run time`);
      return;
    }
    const exists = this.ctx.exists(path.resolve(this.ctx.cwd, target));
    if (op === ">>" || op === "&>>") {
      if (exists) this.add([op, target], "unknown", `appends to the existing file ${target}`);
      return;
    }
    if (op === "<>") {
      this.add([op, target], "unknown", `opens ${target} for writing`);
      return;
    }
    if (exists) this.add([op, target], "destructive", `truncates the existing file ${target} (${op})`);
  }

  private command(node: Node, depth: number): void {
    const nameNode = node.childForFieldName("name");
    if (!nameNode) return; // a bare assignment or redirection: handled by their own nodes
    const words: (string | undefined)[] = [];
    const inner = nameNode.firstNamedChild ?? nameNode;
    words.push(staticText(inner));
    for (const child of node.namedChildren) {
      if (!child || child === nameNode || child.id === nameNode.id) continue;
      if (child.type === "variable_assignment" || child.type.endsWith("_redirect")) continue;
      words.push(staticText(child));
    }
    this.words(words, depth);
  }

  /** Classifies one simple command given as words (from the tree, or handed back by an analyzer). */
  words(words: (string | undefined)[], depth: number): void {
    const typed = words[0];
    if (typed === undefined) {
      this.add(words, "unknown", "the program name is computed at run time");
      return;
    }
    if (this.functions.has(typed)) {
      this.add(words, "unknown", `calls ${typed}, a shell function defined in the same command`);
      return;
    }
    let name: string;
    if (!typed.includes("/") && BUILTINS.has(typed)) name = typed;
    else {
      if (this.steered && !typed.includes("/")) {
        this.add(words, "unknown", `${typed} is looked up on a PATH this command changed`);
        return;
      }
      const where = this.ctx.resolve(typed, this.ctx.cwd);
      if (!where.trusted) {
        const why = where.path
          ? `${typed} is ${where.path}, a file the box can write: not the system's ${path.basename(typed)}`
          : `${typed} is not an installed program`;
        this.add(words, "unknown", why);
        return;
      }
      name = path.basename(typed);
    }
    const analyzer = ANALYZERS[name];
    if (!analyzer) {
      this.add(words, "unknown", `${name} is not a command the gate knows to be read-only`, name);
      return;
    }
    const verdict = analyzer(words.slice(1));
    this.add(
      words,
      verdict.class,
      verdict.class === "read-only" ? verdict.reason : `${name}: ${verdict.reason}`,
      name,
    );
    if (verdict.script !== undefined) this.script(verdict.script, depth + 1);
    for (const cmd of verdict.inner ?? []) {
      if (depth + 1 > MAX_DEPTH) this.add(cmd, "unknown", "commands nested too deep to follow");
      else this.words(cmd, depth + 1);
    }
  }
}

/** Classifies a shell command line. The parser comes from loadShellParser(). */
export function classifyCommand(parser: Parser, text: string, ctx: ClassifyContext): Classification {
  const walker = new Walker(parser, ctx);
  if (text.trim() === "") return { class: "read-only", commands: [], reasons: [] };
  walker.script(text, 0);
  let cls: CommandClass = "read-only";
  for (const c of walker.commands) cls = worse(cls, c.class);
  const reasons = [...new Set(walker.commands.filter((c) => c.class !== "read-only").map((c) => c.reason))];
  return { class: cls, commands: walker.commands, reasons };
}
