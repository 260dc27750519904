import { z } from "zod";

// Owned by the approval gate. Three kinds of action, each with rules whose decision is
// allow | ask | deny; when several rules match one action the strictest decision wins
// (deny > ask > allow). Rules are data: matching lives in rules.ts.

export const DECISIONS = ["allow", "ask", "deny"] as const;
export type Decision = (typeof DECISIONS)[number];

const decision = (what: string) => z.enum(DECISIONS).describe(what);

export const FS_OPS = ["delete", "overwrite", "rename", "chmod"] as const;
export type FsOp = (typeof FS_OPS)[number];

const execRule = z.strictObject({
  command: z
    .string()
    .min(1)
    .describe(
      'words the command starts with; * matches one word or part of one, e.g. "npm test", "git push *", "make *"',
    ),
  decision: decision("what happens when it matches"),
});

const fsRule = z.strictObject({
  path: z
    .string()
    .min(1)
    .describe(
      "a path in the workdir, relative to it: * within a name, ** across directories, e.g. .git/**, dist/**",
    ),
  ops: z
    .array(z.enum(FS_OPS))
    .min(1)
    .default([...FS_OPS])
    .describe("which changes the rule covers"),
  decision: decision("what happens to a change of a file that existed before the run"),
});

const netRule = z.strictObject({
  host: z.string().min(1).describe("a host name, *.example.com for subdomains, or * for every host"),
  methods: z
    .array(z.string().regex(/^[A-Z]+$/))
    .optional()
    .describe("limit the rule to these HTTP methods (CONNECT for HTTPS tunnels)"),
  decision: decision("what happens when the proxy asks about this host"),
});

/**
 * The .git files git rewrites on every commit, fetch or checkout: approving them one by one
 * would train people to say yes without reading. Objects are content-addressed (a rewrite is a
 * copy); deleting them (gc) still asks. Refs, packed-refs, HEAD, the reflogs and the index are
 * allowed here only as files: what they mean is judged as history by git itself (history.ts):
 * a fast-forward flows, a branch moved backwards, a deleted ref or a rewritten reflog asks.
 */
export const DEFAULT_FS_RULES: z.output<typeof fsRule>[] = [
  { path: ".git/index", ops: ["overwrite", "rename", "chmod"], decision: "allow" },
  { path: ".git/objects/**", ops: ["overwrite", "rename", "chmod"], decision: "allow" },
  { path: ".git/refs/**", ops: ["overwrite", "rename", "delete"], decision: "allow" },
  { path: ".git/packed-refs", ops: ["overwrite", "rename"], decision: "allow" },
  { path: ".git/logs/**", ops: ["overwrite", "rename", "delete"], decision: "allow" },
  { path: ".git/*HEAD", ops: ["overwrite", "rename"], decision: "allow" },
  { path: ".git/COMMIT_EDITMSG", ops: [...FS_OPS], decision: "allow" },
];

export const gateSchema = z
  .strictObject({
    exec: z
      .strictObject({
        readOnly: decision(
          "commands the classifier knows to be read-only (ls, cat, grep, git status, ...)",
        ).default("allow"),
        destructive: decision(
          "commands the classifier knows to destroy or publish (rm, git push --force, find -delete, ...)",
        ).default("ask"),
        unknown: decision("every other command (the classifier cannot vouch for it)").default("ask"),
        rules: z
          .array(execRule)
          .default([])
          .describe("per-command decisions, over the classifier's; strictest match wins"),
      })
      .prefault({})
      .describe("commands an agent asks about through its hook or `fourwall gate exec`"),
    fs: z
      .strictObject({
        default: decision(
          "deleting, overwriting, renaming or chmod-ing a file that existed in the workdir before the run",
        ).default("ask"),
        rules: z.array(fsRule).default(DEFAULT_FS_RULES).describe("per-path decisions; strictest match wins"),
      })
      .prefault({})
      .describe(
        "changes to pre-existing workdir files: held in a copy-on-write layer until a human says yes",
      ),
    net: z
      .strictObject({
        rules: z
          .array(netRule)
          .default([])
          .describe("per-host decisions when egress.unknown is ask (unmatched hosts ask)"),
      })
      .prefault({})
      .describe("hosts no egress rule allows, when egress.unknown is ask"),
    pause: z
      .boolean()
      .default(true)
      .describe(
        "pause a destructive syscall on a pre-existing workdir file until the answer (namespaces runtime); false: the copy-on-write layer alone holds it and asks at exit",
      ),
    timeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(86_400)
      .default(120)
      .describe("an unanswered request is denied after this long"),
    always: z
      .enum(["box", "off"])
      .default("box")
      .describe(
        'what "always" means at a prompt: yes to the same request for the rest of this box run (box), or not offered (off)',
      ),
  })
  .describe("the approval gate: read-only work flows, destructive work waits for a human yes");

export type GatePolicy = z.output<typeof gateSchema>;
export type ExecRule = z.output<typeof execRule>;
export type FsRule = z.output<typeof fsRule>;
export type NetRule = z.output<typeof netRule>;
