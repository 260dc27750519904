import { z } from "zod";
import { sizeSchema } from "../../core/units.js";

const pathList = (what: string) => z.array(z.string().min(1)).default([]).describe(what);

export const filesystemSchema = z
  .strictObject({
    root: z
      .string()
      .startsWith("/")
      .default("/")
      .describe("the read-only root the box sees: the host's / or a rootfs directory"),
    hide: pathList(
      "more secrets to make invisible inside the box, on top of the built-in list (~ and * globs allowed; a path that cannot be hidden is an error)",
    ),
    homeVisible: pathList(
      "more of HOME the box sees read-only, on top of the built-in allowlist (shell rc files, toolchains, PATH dirs); relative to ~, * globs allowed; secrets inside stay hidden",
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
      "more host paths the box may write (e.g. an agent's own config dir); one that does not exist is skipped with a note",
    ),
    readOnly: pathList(
      "more paths inside the workdir that stay read-only (relative to the workdir, or absolute)",
    ),
    scratch: pathList("more paths that get an empty private tmpfs that vanishes at exit (e.g. ~/.cache)"),
    tmp: z
      .union([z.literal(false), z.strictObject({ size: sizeSchema.prefault("1GiB") })])
      .prefault({ size: "1GiB" })
      .describe("the private /tmp: false to leave the box without a writable /tmp, or its size"),
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
