import { z } from "zod";
import { sizeSchema } from "../../core/units.js";
import { policyPathProblem } from "./glob.js";

/** A list of policy paths; `globs`: whether its entries are patterns expanded against the host. */
const pathList = (what: string, globs: boolean) =>
  z
    .array(
      z
        .string()
        .min(1)
        .superRefine((p, ctx) => {
          const problem = policyPathProblem(p, globs);
          if (problem) ctx.addIssue({ code: "custom", message: problem });
        }),
    )
    .default([])
    .describe(what);

const GLOBS =
  "globs `*` `?` `[..]` match within one name (`\\` takes the next character literally; a leading dot only by an explicit `.`) and are expanded against the host when the box starts, at most 1000 matches; `**` and `..` are errors";

export const filesystemSchema = z
  .strictObject({
    root: z
      .string()
      .startsWith("/")
      .default("/")
      .describe("the read-only root the box sees: the host's / or a rootfs directory"),
    hide: pathList(
      `more secrets to make invisible inside the box, on top of the built-in list (~/, absolute, or relative to the workdir); ${GLOBS}; a path that cannot be hidden (the workdir or above it) is an error`,
      true,
    ),
    homeVisible: pathList(
      "more of HOME the box sees read-only, on top of the built-in allowlist (shell rc files, toolchains, PATH dirs); relative to ~, * globs allowed; secrets inside stay hidden",
      true,
    ),
    scanLimit: z
      .number()
      .int()
      .positive()
      .default(100_000)
      .describe(
        "entries the plan may look at in the workdir (or the repository around it) for nested .env files, git repositories and shell start-up files; past it the box does not start",
      ),
    writable: pathList(
      "more host paths the box may write (e.g. an agent's own config dir), one path each (globs are errors); one that does not exist is skipped with a note",
      false,
    ),
    state: pathList(
      "an agent's own config and state (e.g. ~/.claude/, ~/.codex/): writable like `writable`, and made on the host (owned by HOME's owner, 0700/0600) before the box starts when missing, so a first run's state persists; a trailing / makes a directory, else a file (a .json one holds {}); they stay after exit",
      false,
    ),
    readOnly: pathList(
      `more paths that stay read-only (relative to the workdir, or absolute): inside a writable place a path without a glob is protected even before it exists (a placeholder stops its creation); outside, a path the box would not see (under /tmp, or in HOME beyond the allowlist) is shown read-only, secrets in it still hidden, and a secret itself is refused; ${GLOBS}: a glob protects the files that match when the box starts, not files created later under a matching name`,
      true,
    ),
    scratch: pathList(
      "more paths that get an empty private tmpfs that vanishes at exit (e.g. ~/.cache), one path each (globs are errors)",
      false,
    ),
    tmp: z
      .union([z.literal(false), z.strictObject({ size: sizeSchema.prefault("1GiB") })])
      .prefault({ size: "1GiB" })
      .describe("the private /tmp: false to leave the box without a writable /tmp, or its size"),
    caches: z
      .boolean()
      .default(true)
      .describe(
        "package manager caches (npm/npx, pip, uv, yarn) kept between boxes, per user and egress allowlist, in fourwall's own cache directory: never the host's (a box could poison it)",
      ),
    allowDotEnv: z
      .boolean()
      .default(false)
      .describe("let the box read .env* and *.env files in the workdir, at any depth (masked by default)"),
    allowPersistence: z
      .array(z.string())
      .default([])
      .describe("names from the persistence list (e.g. .vscode, .git/hooks) the box may write after all"),
  })
  .describe("the filesystem wall: host read-only, one writable workdir, secrets invisible");

export type FilesystemPolicy = z.output<typeof filesystemSchema>;

export const envSchema = z
  .strictObject({
    pass: z
      .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*\*?$/, "a variable name, optionally ending in *"))
      .default([])
      .describe(
        "host variables that pass into the box, on top of PATH, HOME, LANG, TERM, TZ, USER (NAME or PREFIX*)",
      ),
    set: z
      .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string())
      .default({})
      .describe("variables set inside the box"),
  })
  .describe("the box's environment: scrubbed to an allowlist");

export type EnvPolicy = z.output<typeof envSchema>;
