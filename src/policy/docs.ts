import { policyJsonSchema } from "./schema.js";

type JsonSchema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: boolean | JsonSchema;
};

function typeOf(s: JsonSchema): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.anyOf) return s.anyOf.map(typeOf).join(" | ");
  if (s.type === "array") return `list of ${s.items ? typeOf(s.items) : "any"}`;
  if (s.type === "object" && !s.properties && typeof s.additionalProperties === "object") {
    return `map of ${typeOf(s.additionalProperties)}`;
  }
  if (s.type === "integer" && s.anyOf === undefined) return "integer";
  return Array.isArray(s.type) ? s.type.join(" | ") : (s.type ?? "any");
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

/**
 * The policy reference as a markdown table, generated from the same zod schema that validates
 * policies (through its JSON Schema), so the docs cannot drift from the code.
 */
export function policyDocsMarkdown(): string {
  const rows: string[] = [];
  const walk = (prefix: string, schema: JsonSchema) => {
    for (const [key, prop] of Object.entries(schema.properties ?? {})) {
      if (key === "$schema") continue;
      const name = prefix ? `${prefix}.${key}` : key;
      const isSection = prop.type === "object" && prop.properties !== undefined;
      const def = prop.default === undefined || isSection ? "" : `\`${JSON.stringify(prop.default)}\``;
      rows.push(
        `| \`${name}\` | ${isSection ? "section" : cell(typeOf(prop))} | ${def} | ${cell(prop.description ?? "")} |`,
      );
      if (isSection) walk(name, prop);
    }
  };
  walk("", policyJsonSchema() as JsonSchema);
  return [
    "# Policy reference",
    "",
    "Generated from the policy schema (`fourwall policy docs`); `fourwall policy schema` prints the JSON Schema for editors.",
    "Every key is optional; unknown keys are errors. Sizes take a number of bytes or a unit: KiB, MiB, GiB (also k, m, g).",
    "",
    "| key | type | default | meaning |",
    "|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
}
