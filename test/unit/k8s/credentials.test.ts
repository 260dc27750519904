/**
 * Credentials on a cluster: rendered with placeholders only (k8s render prints no value), filled at
 * apply so that the secrets and the CA key are in the proxy's Secret and nowhere else (not in a
 * ConfigMap, not in the agent's pod spec), the Secret mounted into the proxy Deployment only, and
 * the file the proxy reads back (egress serve --credentials) accepted by the proxy's loader.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import {
  CREDENTIALS_ANNOTATION,
  CREDENTIALS_FILE,
  FILLED_AT_APPLY,
  fillCredentials,
} from "../../../src/k8s/credentials.js";
import { DEFAULT_OPTIONS } from "../../../src/k8s/options.js";
import { credentialNames, type K8sObject, renderManifests } from "../../../src/k8s/render.js";
import { gatherCredentials } from "../../../src/k8s/secrets.js";
import { loadPolicy } from "../../../src/policy/load.js";
import { loadClusterCredentials } from "../../../src/walls/egress/index.js";

const SECRET_A = "sk-test-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SECRET_G = "ghp_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const flags = {
  egress: {
    allow: ["api.example.com", "github.com"],
    credentials: [
      { fromEnv: "EXAMPLE_KEY", hosts: ["api.example.com"], file: "/run/secrets/example" },
      { fromEnv: "GITHUB_TOKEN", hosts: ["github.com"], git: true },
      { fromEnv: "UNSET_KEY", hosts: ["api.example.com"], optional: true },
    ],
  },
};
const { policy, egress } = loadPolicy({ cwd: "/nonexistent", flags, presets: ["node-dev"] });
const options = { ...DEFAULT_OPTIONS, flavor: "pod" as const };
const names = credentialNames(options);
const rendered = renderManifests(policy, egress, options);
const find = (objects: K8sObject[], kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name)! as Record<string, unknown>;

describe("k8s credentials: rendered", () => {
  test("the Secret and the agents' ConfigMap hold placeholders only", () => {
    const secret = find(rendered.objects, "Secret", names.secret);
    assert.deepEqual(secret.stringData, { "credentials.json": FILLED_AT_APPLY });
    assert.equal((secret as unknown as K8sObject).metadata.labels?.["fourwall.dev/role"], "egress");
    const map = find(rendered.objects, "ConfigMap", names.agentMap) as { data: Record<string, string> };
    assert.ok(Object.values(map.data).every((v) => v === FILLED_AT_APPLY));
    assert.ok(rendered.notes.some((n) => n.includes("$EXAMPLE_KEY") && n.includes("k8s apply")));
  });

  test("the Secret is mounted into the proxy Deployment only; the agent pod references no Secret", () => {
    const mounting = rendered.objects.filter((o) =>
      JSON.stringify(o).includes(`"secretName":"${names.secret}"`),
    );
    assert.deepEqual(
      mounting.map((o) => o.kind),
      ["Deployment"],
    );
    const proxy = find(rendered.objects, "Deployment", names.deployment) as {
      spec: { template: { spec: { containers: { args: string[] }[] } } };
    };
    assert.deepEqual(proxy.spec.template.spec.containers[0]!.args.slice(-2), [
      "--credentials",
      CREDENTIALS_FILE,
    ]);
    const pod = find(rendered.objects, "Pod", options.name);
    const text = JSON.stringify(pod);
    assert.equal(text.includes("secretKeyRef"), false);
    assert.equal(text.includes('"secret"'), false);
    assert.ok(text.includes(`"key":"sentinel.EXAMPLE_KEY"`));
    assert.ok(text.includes(`"mountPath":"/run/secrets/example","subPath":"sentinel.EXAMPLE_KEY"`));
    assert.ok(text.includes("http.https://github.com/.extraHeader"));
  });

  test("squid cannot swap: a required credential is refused, the presets' optional keys left out", () => {
    assert.throws(
      () => renderManifests(policy, egress, { ...options, proxy: "squid" }),
      /credential EXAMPLE_KEY needs the builtin proxy/,
    );
    const cc = loadPolicy({ cwd: "/nonexistent", flags: {}, presets: ["claude-code"] });
    const squid = renderManifests(cc.policy, cc.egress, { ...options, proxy: "squid" });
    assert.equal(
      squid.objects.some((o) => o.kind === "Secret"),
      false,
    );
    assert.ok(squid.notes.some((n) => n.includes("squid cannot swap")));
  });
});

describe("k8s credentials: filled at apply", async () => {
  const env = { EXAMPLE_KEY: SECRET_A, GITHUB_TOKEN: SECRET_G };
  const { materials } = await gatherCredentials(egress, "default/fourwall", env);
  assert.ok(materials);
  const filled = fillCredentials(rendered, names, materials);

  test("the secrets and the CA key are in the proxy's Secret and nowhere else", () => {
    const secret = find(filled.objects, "Secret", names.secret) as { stringData: Record<string, string> };
    const file = JSON.parse(secret.stringData["credentials.json"]!);
    assert.deepEqual(
      file.credentials.map((c: { name: string; secret: string }) => [c.name, c.secret]),
      [
        ["EXAMPLE_KEY", SECRET_A],
        ["GITHUB_TOKEN", SECRET_G],
      ],
    );
    const keyBody = materials.ca.keyPem.split("\n")[1]!;
    for (const o of filled.objects.filter((x) => x.kind !== "Secret")) {
      const text = JSON.stringify(o);
      for (const value of [SECRET_A, SECRET_G, keyBody, "PRIVATE KEY"])
        assert.equal(text.includes(value), false, `${o.kind}/${o.metadata.name} holds a secret`);
    }
    assert.equal(JSON.stringify(rendered).includes(SECRET_A), false, "the render was not changed in place");
  });

  test("the agents' ConfigMap: sentinels, git's header, the CA certificate; the optional unset key dropped", () => {
    const map = find(filled.objects, "ConfigMap", names.agentMap) as { data: Record<string, string> };
    assert.deepEqual(Object.keys(map.data).sort(), [
      "ca-bundle.pem",
      "ca.pem",
      "git.GITHUB_TOKEN",
      "sentinel.EXAMPLE_KEY",
      "sentinel.GITHUB_TOKEN",
    ]);
    assert.match(map.data["sentinel.EXAMPLE_KEY"]!, /^sk-/);
    assert.notEqual(map.data["sentinel.EXAMPLE_KEY"], SECRET_A);
    assert.match(map.data["ca.pem"]!, /^-----BEGIN CERTIFICATE-----/);
    assert.ok(map.data["ca-bundle.pem"]!.endsWith(map.data["ca.pem"]!));
    assert.match(map.data["git.GITHUB_TOKEN"]!, /^Authorization: Basic /);
    const proxy = find(filled.objects, "Deployment", names.deployment) as {
      spec: { template: { metadata: { annotations: Record<string, string> } } };
    };
    assert.match(proxy.spec.template.metadata.annotations[CREDENTIALS_ANNOTATION]!, /^[0-9a-f]{16}$/);
  });

  test("a missing required secret stops apply before anything is made", async () => {
    await assert.rejects(
      gatherCredentials(egress, "default/fourwall", { EXAMPLE_KEY: SECRET_A }),
      /GITHUB_TOKEN/,
    );
  });

  test("the proxy reads the Secret's file back: live sentinels, the CA signs leaves; placeholders are refused", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "fourwall-k8s-cred-"));
    try {
      const secret = find(filled.objects, "Secret", names.secret) as { stringData: Record<string, string> };
      writeFileSync(path.join(dir, "credentials.json"), secret.stringData["credentials.json"]!);
      const loaded = await loadClusterCredentials(egress, path.join(dir, "credentials.json"), undefined);
      assert.deepEqual(
        loaded.live.map((l) => l.secret),
        [SECRET_A, SECRET_G],
      );
      assert.equal(loaded.ca?.certPem, materials.ca.certPem);
      assert.ok(await loaded.ca!.contextFor("api.example.com"));
      writeFileSync(path.join(dir, "placeholder.json"), FILLED_AT_APPLY);
      await assert.rejects(
        loadClusterCredentials(egress, path.join(dir, "placeholder.json"), undefined),
        /cannot read|not a credential file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
