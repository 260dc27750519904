import { z } from "zod";

// The egress wall's credential and input-gate slices. A credential entry binds a secret read on the
// host to the hosts it may be sent to; the box only ever holds a per-run sentinel, which the proxy
// swaps for the secret on the way out (docs/credentials.md).

const METHOD = /^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export const credentialSchema = z
  .strictObject({
    name: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, _ . - (at most 64)")
      .optional()
      .describe("the entry's name in the audit log (default: fromEnv, or the file's name)"),
    fromEnv: z
      .string()
      .regex(ENV_NAME, "an environment variable name")
      .optional()
      .describe("where the secret is taken on the host: this variable of fourwall's environment"),
    fromFile: z
      .string()
      .min(1)
      .optional()
      .describe("...or this file on the host (its first line; ~ is the host's HOME)"),
    hosts: z
      .array(z.string().min(1))
      .min(1)
      .describe(
        "where the secret may go: host names as in egress.allow, without port or path (api.example.com, *.example.com); each must be allowed by egress",
      ),
    methods: z
      .array(z.string().regex(METHOD, "an HTTP method in capitals, e.g. GET"))
      .min(1)
      .optional()
      .describe("only these methods get the secret (default: all)"),
    paths: z
      .array(z.string().startsWith("/", "a path prefix starts with /"))
      .min(1)
      .optional()
      .describe("only requests under these path prefixes get the secret (default: all)"),
    outOfScope: z
      .enum(["refuse", "pass"])
      .default("refuse")
      .describe(
        "a request to a bound host outside methods/paths that carries the sentinel: refuse it (403), or pass it on with the sentinel unswapped",
      ),
    body: z
      .boolean()
      .default(false)
      .describe(
        "also swap the sentinel in request bodies (streaming); off by default: a body swap lets the agent store the secret where it can read it back",
      ),
    env: z
      .string()
      .regex(ENV_NAME, "an environment variable name")
      .optional()
      .describe("the box's variable that holds the sentinel (default: fromEnv's name; none for fromFile)"),
    file: z
      .string()
      .startsWith("/", "an absolute path inside the box")
      .optional()
      .describe("a file inside the box (read-only) that holds the sentinel"),
    git: z
      .boolean()
      .default(false)
      .describe(
        "git over HTTPS: the box's git config sends the sentinel as the password (Basic auth, user x-access-token) to each bound host",
      ),
    optional: z
      .boolean()
      .default(false)
      .describe(
        "a missing secret skips the entry with a note instead of refusing to start (the agent presets' keys)",
      ),
  })
  .refine((c) => (c.fromEnv === undefined) !== (c.fromFile === undefined), {
    message: "name exactly one source: fromEnv or fromFile",
  })
  .describe("a secret kept outside the box and swapped in by the proxy");

export const inputRuleSchema = z
  .strictObject({
    hosts: z
      .array(z.string().min(1))
      .min(1)
      .describe("the hosts whose responses are screened (egress.allow syntax, no port or path; * for all)"),
    maxBytes: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("largest response body let into the box (bytes); a larger one is cut off"),
    contentTypes: z
      .array(z.string().regex(/^[a-z0-9!#$&^_.+-]+\/([a-z0-9!#$&^_.+-]+|\*)$/, "type/subtype or type/*"))
      .min(1)
      .optional()
      .describe("media types let in (application/json, text/*); others are refused"),
    hook: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe(
        "a command (argv) that sees each response (head in FOURWALL_INPUT_* variables, body on stdin, at most hookMaxBytes) and blocks it by exiting non-zero",
      ),
    hookMaxBytes: z
      .number()
      .int()
      .positive()
      .max(64 * 1024 * 1024)
      .default(1024 * 1024)
      .describe("the hook buffers bodies up to this size; a larger body is refused"),
  })
  .describe("input gate: screening of responses that flow into the box");

export type CredentialPolicy = z.output<typeof credentialSchema>;
export type CredentialPolicyInput = z.input<typeof credentialSchema>;
export type InputRulePolicy = z.output<typeof inputRuleSchema>;
