import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { parseSize } from "../../../src/core/units.js";
import { PolicyError } from "../../../src/policy/errors.js";
import { loadPolicy } from "../../../src/policy/load.js";
import { mergeLayers } from "../../../src/policy/merge.js";
import { policyJsonSchema } from "../../../src/policy/schema.js";

const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-policy-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  writeFileSync(path.join(dir, name), text);
  return name;
};
const problems = (fn: () => unknown) => {
  try {
    fn();
  } catch (error) {
    if (error instanceof PolicyError) return error.message.split("\n");
    throw error;
  }
  assert.fail("expected a PolicyError");
};

describe("policy", () => {
  it("defaults everything: the built-in default is a valid policy", () => {
    const { policy, source } = loadPolicy({ cwd: dir });
    assert.equal(source, "(built-in default)");
    assert.equal(policy.isolation.runtime, "namespaces");
    assert.equal(policy.isolation.limits.pids, 1024);
    assert.deepEqual(policy.egress.allow, []);
  });

  it("names file, line and field for a bad value, in YAML", () => {
    const name = file("bad.yaml", "isolation:\n  limits:\n    memory: lots\n");
    assert.deepEqual(
      problems(() => loadPolicy({ file: name, cwd: dir })),
      [
        'bad.yaml:3: isolation.limits.memory: not a size: "lots" (write e.g. 512MiB, 4GiB or a number of bytes)',
      ],
    );
  });

  it("names the line of an unknown key", () => {
    const name = file("unknown.yaml", "filesystem:\n  hide: []\n  hdie: [x]\n");
    assert.deepEqual(
      problems(() => loadPolicy({ file: name, cwd: dir })),
      ['unknown.yaml:3: filesystem.hdie: unknown key "hdie"'],
    );
  });

  it("reads JSON with line numbers too", () => {
    const name = file("bad.json", '{\n  "isolation": {\n    "runtime": "chroot"\n  }\n}\n');
    const [line] = problems(() => loadPolicy({ file: name, cwd: dir }));
    assert.match(line!, /^bad\.json:3: isolation\.runtime: /);
  });

  it("reports syntax errors with a line", () => {
    const name = file("syntax.yaml", "egress:\n  allow: [a.com\n");
    assert.match(
      problems(() => loadPolicy({ file: name, cwd: dir }))[0]!,
      /^syntax\.yaml:\d+: \(top level\): not valid YAML/,
    );
  });

  it("refuses an unknown preset", () => {
    const name = file("preset.yaml", "preset: hal9000\n");
    assert.match(
      problems(() => loadPolicy({ file: name, cwd: dir }))[0]!,
      /^preset\.yaml:1: preset: unknown preset "hal9000"/,
    );
  });

  it("merges presets under the file, and flags over it", () => {
    const name = file("merge.yaml", "preset: node-dev\negress:\n  allow: [example.com]\n");
    const { policy } = loadPolicy({
      file: name,
      cwd: dir,
      flags: { egress: { allow: ["flag.test"] } },
      presets: ["python-dev"],
    });
    assert.deepEqual(policy.preset, ["node-dev", "python-dev"]);
    for (const host of ["registry.npmjs.org", "pypi.org", "example.com", "flag.test"])
      assert.ok(policy.egress.allow.includes(host), host);
  });

  it("uses ./fourwall.yaml when present", () => {
    const sub = mkdtempSync(path.join(dir, "cwd-"));
    writeFileSync(path.join(sub, "fourwall.yaml"), "isolation:\n  limits:\n    pids: 99\n");
    assert.equal(loadPolicy({ cwd: sub }).policy.isolation.limits.pids, 99);
  });

  it("merges lists without repeats and overrides scalars", () => {
    assert.deepEqual(mergeLayers({ a: [1, 2], b: { c: 1, d: 2 } }, { a: [2, 3], b: { c: 9 } }), {
      a: [1, 2, 3],
      b: { c: 9, d: 2 },
    });
  });

  it("parses sizes", () => {
    assert.equal(parseSize("512MiB"), 512 * 1024 ** 2);
    assert.equal(parseSize("4g"), 4 * 1024 ** 3);
    assert.equal(parseSize("1000"), 1000);
    assert.equal(parseSize("1.5GB"), 1.5e9);
    assert.equal(parseSize("lots"), undefined);
    assert.equal(parseSize("5 parsecs"), undefined);
  });

  it("produces a JSON Schema that knows every wall and refuses unknown keys", () => {
    const schema = policyJsonSchema() as {
      properties: Record<string, unknown>;
      additionalProperties: boolean;
    };
    for (const key of ["isolation", "filesystem", "env", "egress", "preset"])
      assert.ok(key in schema.properties, key);
    assert.equal(schema.additionalProperties, false);
  });
});

describe("policy docs", () => {
  it("docs/POLICY.md is the reference generated from the schema (regenerate: fourwall policy docs > docs/POLICY.md)", async () => {
    const { policyDocsMarkdown } = await import("../../../src/policy/docs.js");
    const committed = readFileSync(path.join(import.meta.dirname, "../../../docs/POLICY.md"), "utf8");
    assert.equal(committed, policyDocsMarkdown());
  });
});
