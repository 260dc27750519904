/**
 * The pure half of `fourwall prove`: the probe program's lines parsed, each probe judged against
 * its expectation with the host's evidence, the tally and the verdict. No box, no canary.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loopbackAliases } from "../../../src/prove/canaries/names.js";
import { PROBES, selectProbes } from "../../../src/prove/catalog.js";
import { evaluate, heldUp, parseProbeOutput, tally } from "../../../src/prove/evaluate.js";
import { summariseAttempts } from "../../../src/prove/judges.js";
import { makeLayout, PRECIOUS } from "../../../src/prove/layout.js";
import { srtNames } from "../../../src/prove/peers/srt.js";
import { wrapperScript } from "../../../src/prove/targets/against.js";
import type { HostEvidence, JudgeContext, ProbeReport } from "../../../src/prove/types.js";

const evidence = (over: Partial<HostEvidence> = {}): HostEvidence => ({
  landed: {},
  workdirWrite: "written by fourwall prove abc\n",
  udpReceived: 0,
  outside: { tcp: 0, udp: 0 },
  hostInit: { comm: "systemd", start: "9" },
  hostKernel: "Linux version 6.18.0 (host)",
  gate: { name: "precious-notes.txt", requests: [], precious: PRECIOUS, historyChanged: [] },
  ...over,
});
const boxCtx = (over: Partial<HostEvidence> = {}): JudgeContext => ({
  target: { kind: "box", runtime: "namespaces", rlimits: [{ name: "nproc", value: 1024 }] },
  evidence: evidence(over),
  root: true,
});
const againstCtx = (over: Partial<HostEvidence> = {}): JudgeContext => ({
  target: { kind: "against", wrapper: "sh -c" },
  evidence: evidence(over),
  root: true,
});
const judge = (id: string, data: Record<string, unknown>, ctx: JudgeContext = boxCtx()) => {
  const spec = PROBES.find((p) => p.id === id);
  assert.ok(spec, `no probe ${id}`);
  return spec.judge(data, ctx);
};

describe("prove: the catalog", () => {
  it("has unique ids, each prefixed by its wall, and every wall runs probes", () => {
    const ids = PROBES.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length);
    for (const p of PROBES) assert.ok(p.id.startsWith(`${p.wall}.`), p.id);
    for (const wall of ["isolation", "filesystem", "egress", "gate"] as const) {
      assert.ok(
        PROBES.some((p) => p.wall === wall && !p.skipAlways),
        wall,
      );
    }
  });

  it("every probe the catalog runs is implemented by the probe program under the same id", async () => {
    const { readFileSync } = await import("node:fs");
    const { probeSource } = await import("../../../src/prove/prove.js");
    const source = readFileSync(probeSource(), "utf8");
    const layout = makeLayout("/x", "t");
    const implemented = new Set([...source.matchAll(/@probe\("([^"]+)"\)/g)].map((m) => m[1]));
    for (const id of Object.keys(layout.writes)) implemented.add(id); // registered in a loop
    for (const p of PROBES.filter((s) => !s.skipAlways))
      assert.ok(implemented.has(p.id), `probe.py lacks ${p.id}`);
  });

  it("--only selects whole walls", () => {
    assert.equal(selectProbes([]).length, PROBES.length);
    assert.ok(selectProbes(["egress"]).every((p) => p.wall === "egress"));
  });
});

describe("prove: judging", () => {
  it("status fields: CapEff must be all zeros, NoNewPrivs 1, Seccomp 2", () => {
    assert.equal(judge("isolation.capabilities", { CapEff: "0000000000000000" }).status, "PASS");
    assert.deepEqual(judge("isolation.capabilities", { CapEff: "000001ffffffffff" }), {
      status: "HOLE",
      observed: "CapEff 000001ffffffffff",
    });
    assert.equal(judge("isolation.no-new-privs", { NoNewPrivs: "0" }).status, "HOLE");
    assert.equal(judge("isolation.seccomp", { Seccomp: "2" }).status, "PASS");
    assert.equal(judge("isolation.seccomp", { Seccomp: "0" }).status, "HOLE");
    assert.equal(judge("isolation.seccomp", {}).status, "FAIL", "a missing field proves nothing");
  });

  it("reached: true is a hole, false the wall holding, null inconclusive, missing a failure", () => {
    assert.equal(
      judge("filesystem.read-secrets", { reached: true, detail: "read ~/.ssh/id_ed25519" }).status,
      "HOLE",
    );
    assert.equal(judge("filesystem.read-secrets", { reached: false, detail: "ENOENT" }).status, "PASS");
    assert.equal(judge("egress.dns-lookup", { reached: null, detail: "no answer" }).status, "SKIP");
    assert.equal(judge("egress.host-loopback", {}).status, "FAIL");
  });

  it("writes are judged by the host: a write the box believes it made is no hole if the host never saw it", () => {
    const data = { attempts: ["~/.ssh/authorized_keys: written"] };
    const held = judge("filesystem.write-ssh", data);
    assert.equal(held.status, "PASS");
    assert.match(held.observed, /only in the box's own view/);
    const leaked = judge(
      "filesystem.write-ssh",
      data,
      boxCtx({ landed: { "filesystem.write-ssh": ["~/.ssh/authorized_keys"] } }),
    );
    assert.deepEqual(leaked, { status: "HOLE", observed: "on the host: ~/.ssh/authorized_keys" });
  });

  it("the symlink and .. escapes are holes when either the host changed or the box read the secret", () => {
    assert.equal(
      judge("filesystem.symlink-escape", { reached: true, detail: "read the key" }).status,
      "HOLE",
    );
    const changed = boxCtx({ landed: { "filesystem.symlink-escape": ["~/.bashrc changed"] } });
    assert.equal(
      judge("filesystem.symlink-escape", { reached: false, detail: "EROFS" }, changed).status,
      "HOLE",
    );
    assert.equal(
      judge("filesystem.dotdot-escape", { reached: false, attempts: ["../x: EROFS"] }).status,
      "PASS",
    );
  });

  it("the workdir write must land on the host, else FAIL (not HOLE: nothing leaked, the box is broken)", () => {
    assert.equal(judge("filesystem.workdir-write", { detail: "written" }).status, "PASS");
    assert.equal(
      judge("filesystem.workdir-write", { detail: "EROFS" }, boxCtx({ workdirWrite: undefined })).status,
      "FAIL",
    );
  });

  it("the listed canary must really answer", () => {
    assert.equal(judge("egress.listed-https", { reached: true, detail: "200" }).status, "PASS");
    assert.equal(judge("egress.listed-https", { reached: false, detail: "403 not-allowed" }).status, "FAIL");
  });

  it("datagrams are judged by what arrived on the host", () => {
    assert.equal(judge("egress.udp", { detail: "sent" }).status, "PASS");
    assert.equal(judge("egress.udp", { detail: "sent" }, boxCtx({ udpReceived: 1 })).status, "HOLE");
    assert.equal(
      judge("egress.dns-tunnel", { detail: "sent" }, boxCtx({ outside: { tcp: 0, udp: 2 } })).status,
      "HOLE",
    );
    assert.equal(
      judge("egress.dns-tunnel", { detail: "sent" }, boxCtx({ outside: undefined })).status,
      "SKIP",
    );
    const sawTcp = boxCtx({ outside: { tcp: 1, udp: 0 } });
    assert.equal(
      judge("egress.outside-host", { reached: false, detail: "ENETUNREACH" }, sawTcp).status,
      "HOLE",
    );
  });

  it("runtime identity: the host's own pid 1 is a hole; the namespaces runtime is bwrap; gVisor shows its own kernel", () => {
    assert.equal(
      judge("isolation.runtime", { pid1: "systemd", pid1Start: "9" }, againstCtx()).status,
      "HOLE",
    );
    assert.equal(judge("isolation.runtime", { pid1: "bwrap", pid1Start: "1" }, againstCtx()).status, "PASS");
    assert.equal(judge("isolation.runtime", { pid1: "bwrap", pid1Start: "1" }).status, "PASS");
    assert.equal(judge("isolation.runtime", { pid1: "sh", pid1Start: "1" }).status, "FAIL");
    const gvisor: JudgeContext = { ...boxCtx(), target: { kind: "box", runtime: "gvisor", rlimits: [] } };
    assert.equal(
      judge("isolation.runtime", { pid1: "sh", kernel: "Linux version 4.4.0" }, gvisor).status,
      "PASS",
    );
    assert.equal(
      judge("isolation.runtime", { pid1: "sh", kernel: "Linux version 6.18.0 (host)" }, gvisor).status,
      "FAIL",
    );
  });

  it("rlimits: a box must show the plan's values; another wrapper at least capped processes and memory", () => {
    assert.equal(judge("isolation.rlimits", { limits: { nproc: ["1024", "1024"] } }).status, "PASS");
    assert.deepEqual(judge("isolation.rlimits", { limits: { nproc: ["unlimited", "unlimited"] } }), {
      status: "HOLE",
      observed: "nproc unlimited (policy: 1024)",
    });
    const capped = { limits: { nproc: ["100", "100"], data: ["1000", "1000"] } };
    assert.equal(judge("isolation.rlimits", capped, againstCtx()).status, "PASS");
    assert.equal(
      judge("isolation.rlimits", { limits: { nproc: ["100", "100"] } }, againstCtx()).status,
      "HOLE",
    );
  });

  it("uid: reading /etc/shadow or being uid 0 is a hole", () => {
    assert.equal(judge("isolation.uid", { uid: 70000, shadow: "EACCES" }).status, "PASS");
    assert.equal(judge("isolation.uid", { uid: 0, shadow: "EACCES" }).status, "HOLE");
    assert.equal(judge("isolation.uid", { uid: 1000, shadow: "read" }).status, "HOLE");
  });

  it("summarises the box's attempts by outcome", () => {
    assert.equal(summariseAttempts({ attempts: ["/etc/a: EROFS", "/usr/b: EROFS"] }), "EROFS");
    assert.match(
      summariseAttempts({ attempts: ["~/a: written", "~/.bashrc: EROFS"] }),
      /written only in the box's own view, else EROFS/,
    );
  });
});

describe("prove: evaluation", () => {
  const specs = PROBES.filter(
    (p) => p.id === "isolation.seccomp" || p.id === "isolation.ptrace" || p.wall === "gate",
  );

  it("parses JSON lines among a wrapper's own noise, and knows whether the program finished", () => {
    const output = [
      "Running: python3 probe.py",
      '{"id": "isolation.seccomp", "data": {"Seccomp": "2"}}',
      "{not json",
      '{"id": "isolation.ptrace", "skip": "no ptrace here"}',
      '{"id": "isolation.mount", "error": "OSError: boom"}',
      '{"done": true, "ms": 812}',
    ].join("\n");
    const parsed = parseProbeOutput(output);
    assert.equal(parsed.reports.length, 3);
    assert.equal(parsed.finished, true);
    assert.equal(parsed.probeMs, 812);
    assert.equal(parseProbeOutput('{"id": "x", "data": {}}').finished, false);
  });

  it("a probe without a report fails (never passes); a broken probe fails", () => {
    const reports: ProbeReport[] = [{ id: "isolation.seccomp", data: { Seccomp: "2" } }];
    const results = evaluate(specs, reports, boxCtx(), "the box could not be built");
    const by = (id: string) => results.find((r) => r.id === id)!;
    assert.equal(by("isolation.seccomp").status, "PASS");
    assert.deepEqual(
      [by("isolation.ptrace").status, by("isolation.ptrace").observed],
      ["FAIL", "the box could not be built"],
    );
    assert.equal(by("gate.delete-asks").status, "FAIL");
    const broken = evaluate(specs, [{ id: "isolation.ptrace", error: "OSError: x" }], boxCtx(), "");
    assert.match(broken.find((r) => r.id === "isolation.ptrace")!.observed, /the probe broke: OSError/);
  });

  it("judges the gate from the host: asked and intact passes; deleted without asking is a hole", () => {
    const gate = PROBES.filter((p) => p.id === "gate.delete-asks" || p.id === "gate.denied-delete-survives");
    const reports: ProbeReport[] = gate.map((p) => ({ id: p.id, data: { unlink: "ok" } }));
    const judged = (g: HostEvidence["gate"]) =>
      evaluate(gate, reports, boxCtx({ gate: g }), "").map((r) => `${r.id}=${r.status}`);
    const asked = ['{"kind":"fs","path":"precious-notes.txt"}'];
    const g = (requests: string[], precious: string | undefined) => ({
      name: "precious-notes.txt",
      requests,
      precious,
      historyChanged: [],
    });
    assert.deepEqual(judged(g(asked, PRECIOUS)), [
      "gate.delete-asks=PASS",
      "gate.denied-delete-survives=PASS",
    ]);
    assert.deepEqual(judged(g([], undefined)), ["gate.delete-asks=HOLE", "gate.denied-delete-survives=HOLE"]);
    assert.deepEqual(judged(g(asked, "changed")), [
      "gate.delete-asks=PASS",
      "gate.denied-delete-survives=HOLE",
    ]);
  });

  it("judges the history rewrite from the host: the branch or a reflog changed there is a hole", () => {
    const spec = PROBES.filter((p) => p.id === "gate.history-rewrite");
    const judged = (historyChanged: string[], requests: string[] = []) =>
      evaluate(
        spec,
        [{ id: "gate.history-rewrite", data: { ref: "ok" } }],
        boxCtx({ gate: { name: "precious-notes.txt", requests, precious: PRECIOUS, historyChanged } }),
        "",
      )[0]!;
    assert.equal(judged([]).status, "PASS");
    assert.match(judged([], ['{"detail":"branch main moved backwards"}']).observed, /asked/);
    const h = judged(["./.git/refs/heads/main"]);
    assert.deepEqual([h.status, h.observed], ["HOLE", "rewritten on the host: ./.git/refs/heads/main"]);
  });

  it("judges the gate's layer: a setuid bit landing, a layer named or reached from the box are holes", () => {
    const byId = (id: string) => PROBES.filter((p) => p.id === id);
    const judge = (id: string, data: Record<string, unknown>, setuidMode?: number) =>
      evaluate(
        byId(id),
        [{ id, data }],
        boxCtx({ gate: { name: "p", requests: [], precious: PRECIOUS, setuidMode, historyChanged: [] } }),
        "",
      )[0]!.status;
    assert.equal(judge("gate.setuid-apply", { chmod: "ok" }, 0o755), "PASS");
    assert.equal(judge("gate.setuid-apply", { chmod: "ok" }, 0o6755), "HOLE");
    assert.equal(judge("gate.setuid-apply", { chmod: "ok" }, 0o2755), "HOLE");
    assert.equal(judge("gate.setuid-apply", { chmod: "ok" }, undefined), "FAIL");
    assert.equal(judge("gate.layer-unreachable", { upperdir: "upper", reached: [] }), "PASS");
    assert.equal(
      judge("gate.layer-unreachable", { upperdir: "/tmp/fourwall-changes-x/upper", reached: [] }),
      "HOLE",
    );
    assert.equal(
      judge("gate.layer-unreachable", { upperdir: "upper", reached: ["/tmp/fourwall-changes-x"] }),
      "HOLE",
    );
  });

  it("holds up only with no hole, no failure and at least one pass", () => {
    assert.equal(heldUp({ pass: 3, hole: 0, fail: 0, skip: 2 }), true);
    assert.equal(heldUp({ pass: 3, hole: 1, fail: 0, skip: 0 }), false);
    assert.equal(heldUp({ pass: 3, hole: 0, fail: 1, skip: 0 }), false);
    assert.equal(heldUp({ pass: 0, hole: 0, fail: 0, skip: 4 }), false, "all skipped proves nothing");
    const results = evaluate(
      specs,
      [{ id: "isolation.seccomp", data: { Seccomp: "0" } }],
      boxCtx(),
      "missing",
    );
    // seccomp 0: a hole; ptrace and the five gate probes have no report: failures, never passes
    assert.deepEqual(tally(results), { pass: 0, hole: 1, fail: 6, skip: 0 });
  });
});

describe("prove: wrappers and names", () => {
  it("a wrapper gets the probe as one shell string, or as sh -c STRING when it ends in --", () => {
    assert.equal(wrapperScript("sh -c"), 'sh -c "$1"');
    assert.equal(wrapperScript(" srt -s f.json -c "), 'srt -s f.json -c "$1"');
    assert.equal(
      wrapperScript("node weak-box.ts --weaken secrets --"),
      'node weak-box.ts --weaken secrets -- /bin/sh -c "$1"',
    );
  });

  it("finds loopback aliases in /etc/hosts, leaving out localhost, *.localhost and other addresses", () => {
    const hosts =
      "127.0.0.1 localhost\n127.0.1.1 box.example box # comment\n::1 ip6-localhost foo.localhost\n10.0.0.1 db.internal\n";
    assert.deepEqual(loopbackAliases(hosts), ["box.example", "box", "ip6-localhost"]);
  });

  it("srt's guard probe needs a dotted loopback alias, else it is skipped with the reason", () => {
    const base = { listed: "l.invalid", unlisted: "u.invalid", guard: "localhost" };
    assert.equal(srtNames(base, "127.0.0.1 localhost\n127.0.0.1 dev.test\n").guard, "dev.test");
    assert.equal(srtNames(base, "127.0.0.1 localhost\n").listed, "localhost");
    assert.ok(typeof srtNames(base, "127.0.0.1 localhost vm\n").guard === "object");
  });

  it("the layout's host checks cover every write probe but the one that must land", () => {
    const layout = makeLayout("/tmp/base", "tok");
    for (const id of Object.keys(layout.writes)) {
      if (id === "filesystem.workdir-write") assert.equal(layout.hostChecks[id], undefined);
      else assert.ok(layout.hostChecks[id]!.mustNotExist.length > 0, id);
    }
    assert.deepEqual(layout.hostChecks["filesystem.dotdot-escape"]!.mustNotExist, [
      "/tmp/base/home/fourwall-probe-tok-dotdot",
      "/tmp/base/fourwall-probe-tok-dotdot",
    ]);
  });
});

describe("probes that need a binding the box was given", () => {
  const bound: JudgeContext = {
    ...boxCtx(),
    target: { kind: "box", runtime: "namespaces", rlimits: [], bound: ["credential"] },
  };
  const specs = PROBES.filter((p) => p.needs === "credential");
  it("the credential probes need the credential binding", () => {
    assert.deepEqual(
      specs.map((p) => p.id),
      ["egress.credential-hidden", "egress.credential-exfiltration"],
    );
  });

  it("a SKIP where the box was given the binding is a FAIL; without it, a SKIP", () => {
    const reports: ProbeReport[] = specs.map((p) => ({
      id: p.id,
      skip: "the box holds no credential variable",
    }));
    for (const r of evaluate(specs, reports, bound, "none")) assert.equal(r.status, "FAIL", r.observed);
    for (const r of evaluate(specs, reports, boxCtx(), "none")) assert.equal(r.status, "SKIP");
  });

  it("credential-hidden with the binding wants a sentinel in the box, and a HOLE stays a HOLE", () => {
    assert.equal(judge("egress.credential-hidden", { reached: false, sentinel: true }, bound).status, "PASS");
    assert.equal(
      judge("egress.credential-hidden", { reached: false, sentinel: false }, bound).status,
      "FAIL",
    );
    assert.equal(judge("egress.credential-hidden", { reached: false, sentinel: false }).status, "PASS");
    assert.equal(judge("egress.credential-hidden", { reached: true, sentinel: true }, bound).status, "HOLE");
  });
});
