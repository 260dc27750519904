/**
 * The settings files the agent presets bind read-only in the box (issue 15): Codex's config.toml
 * turns Codex's own sandbox off (it cannot start inside the box) and bounds its connection
 * retries (a refused host never comes back), keeping the user's settings.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parse } from "smol-toml";
import { planGate, renderCodexConfig } from "../../../../src/walls/gate/plan.js";
import { gateSchema } from "../../../../src/walls/gate/schema.js";

// biome-ignore lint/suspicious/noExplicitAny: parsed TOML, read field by field
const read = (text: string): any => JSON.parse(JSON.stringify(parse(text)));

describe("renderCodexConfig", () => {
  it("a missing config: the sandbox mode and bounded connection retries", () => {
    assert.deepEqual(read(renderCodexConfig("")), {
      sandbox_mode: "danger-full-access",
      features: { unbounded_connection_retries: false },
    });
  });

  it("keeps the user's settings, replaces a top-level sandbox_mode, leaves profiles alone", () => {
    const user = [
      "# mine",
      'model = "gpt-5"',
      'sandbox_mode = "workspace-write"',
      "",
      "[features]",
      "web_search = true",
      "[profiles.ci]",
      'sandbox_mode = "read-only"',
      "[mcp_servers.fs]",
      'command = "npx"',
    ].join("\n");
    const out = read(renderCodexConfig(user));
    assert.equal(out.sandbox_mode, "danger-full-access");
    assert.equal(out.model, "gpt-5");
    assert.deepEqual(out.features, { web_search: true, unbounded_connection_retries: false });
    assert.equal(out.profiles.ci.sandbox_mode, "read-only", "a profile is the user's explicit choice");
    assert.equal(out.mcp_servers.fs.command, "npx");
  });

  it("the user's own unbounded_connection_retries stays; a config that does not parse is left as it is", () => {
    const own = read(renderCodexConfig("[features]\nunbounded_connection_retries = true\n"));
    assert.equal(own.features.unbounded_connection_retries, true);
    assert.equal(renderCodexConfig("model = \n"), "model = \n");
  });

  it("the codex preset binds both hooks.json and config.toml", () => {
    const plan = planGate(gateSchema.parse({}), {
      home: "/home/u",
      presets: ["codex"],
      fourwall: ["/usr/bin/node", "/opt/fourwall.js"],
    });
    assert.deepEqual(
      plan.settings.map((s) => [s.kind, s.target]),
      [
        ["hooks", "/home/u/.codex/hooks.json"],
        ["codex-config", "/home/u/.codex/config.toml"],
      ],
    );
  });
});
