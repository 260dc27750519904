import { z } from "zod";
import { egressSchema } from "../walls/egress/index.js";
import { envSchema, filesystemSchema } from "../walls/filesystem/index.js";
import { gateSchema } from "../walls/gate/index.js";
import { isolationSchema } from "../walls/isolation/index.js";
import { PRESET_NAMES } from "./presets.js";

/**
 * The policy: the single source of truth for types, validation, defaults and the editor's JSON
 * Schema. Each wall owns its slice (src/walls/<wall>/schema.ts); this file only composes them.
 */
export const policySchema = z
  .strictObject({
    $schema: z.string().optional().describe("path or URL of the JSON Schema, for editors"),
    version: z.literal(1).default(1).describe("policy format version"),
    preset: z
      .union([z.enum(PRESET_NAMES), z.array(z.enum(PRESET_NAMES))])
      .optional()
      .describe(
        "built-in presets merged under this policy: the domains, writable config paths and variables an agent needs",
      ),
    isolation: isolationSchema.prefault({}),
    filesystem: filesystemSchema.prefault({}),
    env: envSchema.prefault({}),
    egress: egressSchema.prefault({}),
    gate: gateSchema.prefault({}),
  })
  .describe("fourwall policy");

export type Policy = z.output<typeof policySchema>;
export type PolicyInput = z.input<typeof policySchema>;

/** The JSON Schema of the policy file (what a user writes: defaults shown, nothing required). */
export function policyJsonSchema(): object {
  return z.toJSONSchema(policySchema, { io: "input", unrepresentable: "any" });
}
