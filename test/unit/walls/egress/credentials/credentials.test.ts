import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { text } from "node:stream/consumers";
import { describe, test } from "node:test";
import { boundTo, CredentialError } from "../../../../../src/walls/egress/credentials/compile.js";
import { inputRuleFor, screenHead } from "../../../../../src/walls/egress/credentials/input-gate.js";
import {
  applyCredentialEnv,
  CredentialPlanError,
  gitBasicHeader,
  planCredentials,
} from "../../../../../src/walls/egress/credentials/plan.js";
import { makeSentinel } from "../../../../../src/walls/egress/credentials/sentinel.js";
import {
  carriesSentinel,
  judgeRequest,
  type LiveCredential,
  SentinelInBody,
  StreamReplace,
} from "../../../../../src/walls/egress/credentials/swap.js";
import { normaliseHost } from "../../../../../src/walls/egress/rules/hostname.js";
import { compileEgressPlan, type EgressPlan } from "../../../../../src/walls/egress/rules/rules.js";
import { type EgressPolicyInput, egressSchema } from "../../../../../src/walls/egress/schema.js";

const plan = (input: EgressPolicyInput): EgressPlan => compileEgressPlan(egressSchema.parse(input));
const host = (text: string) => {
  const h = normaliseHost(text);
  if ("error" in h) throw new Error(h.error);
  return h;
};

describe("sentinels", () => {
  const shapes: Array<[string, RegExp]> = [
    [`sk-ant-api03-${"a1B_-".repeat(19)}AA`, /^sk-ant-api03-[A-Za-z0-9_-]{97}$/],
    [`sk-proj-${"Ab1".repeat(52)}`, /^sk-proj-[A-Za-z0-9]{156}$/],
    [`sk-${"x9Z".repeat(16)}`, /^sk-[A-Za-z0-9]{48}$/],
    [`ghp_${"aB3".repeat(12)}`, /^ghp_[A-Za-z0-9]{36}$/],
    ["deadbeefdeadbeefdeadbeefdeadbeefdeadbeef", /^[0-9a-f]{40}$/],
    ["short-key1", /^[A-Za-z0-9_-]{24}$/], // shorter than 24: padded to 24 random characters
  ];
  for (const [secret, shape] of shapes)
    test(`keeps the shape of ${secret.slice(0, 12)}…`, () => {
      const a = makeSentinel(secret);
      const b = makeSentinel(secret);
      assert.match(a, shape);
      assert.notEqual(a, b, "never reused");
      assert.ok(!a.includes(secret) && !secret.includes(a));
    });
});

const live = (input: EgressPolicyInput, secrets: Record<string, string>): LiveCredential[] =>
  (plan(input).credentials ?? []).map((entry) => ({
    entry,
    secret: secrets[entry.name]!,
    sentinel: `SENT-${entry.name}-0123456789abcdef`,
  }));

describe("judgeRequest", () => {
  const creds = live(
    {
      allow: ["api.example.com", "other.example.com", "git.example.com"],
      credentials: [
        { name: "api", fromEnv: "API", hosts: ["api.example.com"], methods: ["GET", "POST"], paths: ["/v1"] },
        { name: "loose", fromEnv: "LOOSE", hosts: ["api.example.com"], paths: ["/v2"], outOfScope: "pass" },
        { name: "git", fromEnv: "GIT", hosts: ["git.example.com"], body: true },
      ],
    },
    { api: "real-api-secret-1", loose: "real-loose-secret", git: "real-git-secret-22" },
  );
  const judge = (h: string, method: string, target: string, rawHeaders: string[]) =>
    judgeRequest(creds, { host: host(h), method, target, pathname: target.split("?")[0]!, rawHeaders }, (e) =>
      boundTo(e, host(h)),
    );

  test("swaps a sentinel in headers and the request target for its bound host in scope", () => {
    const v = judge("api.example.com", "GET", "/v1/models?key=SENT-api-0123456789abcdef", [
      "Authorization",
      "Bearer SENT-api-0123456789abcdef",
      "X-Other",
      "plain",
    ]);
    assert.ok(v.ok);
    assert.equal(v.target, "/v1/models?key=real-api-secret-1");
    assert.deepEqual(v.rawHeaders, ["Authorization", "Bearer real-api-secret-1", "X-Other", "plain"]);
    assert.deepEqual(v.swapped, ["api"]);
    const finds = v.scrub.map(([s]) => s);
    for (const raw of ["real-api-secret-1", "real-loose-secret"]) assert.ok(finds.includes(raw), raw);
    assert.ok(!finds.includes("real-git-secret-22"), "only what is bound here");
  });

  test("swaps inside Basic credentials (git's user:token)", () => {
    const header = gitBasicHeader("SENT-git-0123456789abcdef").split(": ")[1]!;
    const v = judge("git.example.com", "GET", "/repo.git/info/refs", ["Authorization", header]);
    assert.ok(v.ok);
    assert.equal(
      Buffer.from(v.rawHeaders[1]!.split(" ")[1]!, "base64").toString(),
      "x-access-token:real-git-secret-22",
    );
  });

  test("a sentinel to a host it is not bound to is refused, wherever it hides", () => {
    for (const [target, headers] of [
      ["/?k=SENT-api-0123456789abcdef", []],
      ["/", ["X-Leak", "SENT-git-0123456789abcdef"]],
      ["/", ["Authorization", `Basic ${Buffer.from("u:SENT-api-0123456789abcdef").toString("base64")}`]],
    ] as Array<[string, string[]]>) {
      const v = judge("other.example.com", "GET", target, headers);
      assert.equal(v.ok, false);
      assert.equal(!v.ok && v.reason, "credential-exfiltration");
    }
  });

  test("scopes: out of scope is refused, or passed unswapped when the entry says pass", () => {
    const wrongMethod = judge("api.example.com", "DELETE", "/v1/x", [
      "Authorization",
      "SENT-api-0123456789abcdef",
    ]);
    assert.deepEqual(wrongMethod, { ok: false, reason: "credential-out-of-scope", name: "api" });
    const wrongPath = judge("api.example.com", "GET", "/v10", ["Authorization", "SENT-api-0123456789abcdef"]);
    assert.equal(!wrongPath.ok && wrongPath.reason, "credential-out-of-scope");
    const dotdot = judge("api.example.com", "GET", "/v1/../admin", [
      "Authorization",
      "SENT-api-0123456789abcdef",
    ]);
    assert.equal(!dotdot.ok && dotdot.reason, "credential-out-of-scope");
    const passed = judge("api.example.com", "GET", "/v1/x", ["X-Loose", "SENT-loose-0123456789abcdef"]);
    assert.ok(passed.ok);
    assert.deepEqual(passed.passed, ["loose"]);
    assert.deepEqual(passed.rawHeaders, ["X-Loose", "SENT-loose-0123456789abcdef"]);
  });

  test("bodies: swapped only where the entry asks, forbidden where the host is not bound", () => {
    const v = judge("git.example.com", "POST", "/x", []);
    assert.ok(v.ok);
    assert.deepEqual(v.body.replace, [["SENT-git-0123456789abcdef", "real-git-secret-22"]]);
    assert.deepEqual(
      v.body.forbid.map((f) => f.name),
      ["api", "loose"],
    );
  });
});

describe("StreamReplace", () => {
  const run = async (chunks: string[], pairs: Array<{ find: string; put: string | null; name: string }>) =>
    text(Readable.from(chunks.map((c) => Buffer.from(c))).pipe(new StreamReplace(pairs)));

  test("replaces a needle split across chunks, at every split point", async () => {
    const body = "before SENTINEL-xyz middle SENTINEL-xyz after";
    for (let i = 0; i <= body.length; i++)
      for (const j of [i, Math.min(body.length, i + 3)]) {
        const out = await run(
          [body.slice(0, i), body.slice(i, j), body.slice(j)],
          [{ find: "SENTINEL-xyz", put: "secret-longer-value", name: "a" }],
        );
        assert.equal(out, "before secret-longer-value middle secret-longer-value after");
      }
  });

  test("a forbidden needle fails the stream before any of it passes", async () => {
    const seen: string[] = [];
    const stream = Readable.from([Buffer.from("abc SENT"), Buffer.from("INEL def")]).pipe(
      new StreamReplace([{ find: "SENTINEL", put: null, name: "api" }]),
    );
    stream.on("data", (d: Buffer) => seen.push(String(d)));
    const err = await new Promise<unknown>((resolve) => stream.on("error", resolve));
    assert.ok(err instanceof SentinelInBody);
    assert.equal((err as SentinelInBody).credential, "api");
    assert.ok(!seen.join("").includes("SENT"), seen.join(""));
  });
});

describe("carriesSentinel", () => {
  test("finds sentinels in a head, plain or in Basic", () => {
    assert.ok(carriesSentinel("GET /?SENTX HTTP/1.1\r\n", ["SENTX"]));
    assert.ok(
      carriesSentinel(`Authorization: Basic ${Buffer.from("a:SENTX").toString("base64")}`, ["SENTX"]),
    );
    assert.ok(!carriesSentinel("GET / HTTP/1.1", ["SENTX"]));
  });
});

describe("policy", () => {
  test("a bound host must be allowed by egress, and not denied", () => {
    assert.throws(
      () => plan({ credentials: [{ fromEnv: "K", hosts: ["api.example.com"] }] }),
      (e: unknown) =>
        e instanceof CredentialError &&
        e.field === "credentials.0.hosts.0" &&
        /not allowed by egress.allow/.test(e.message),
    );
    assert.throws(
      () =>
        plan({
          allow: ["*.example.com"],
          deny: ["api.example.com"],
          credentials: [{ fromEnv: "K", hosts: ["api.example.com"] }],
        }),
      /refused by egress.deny/,
    );
    assert.doesNotThrow(() =>
      plan({ allow: ["*.example.com"], credentials: [{ fromEnv: "K", hosts: ["api.example.com"] }] }),
    );
    assert.doesNotThrow(() =>
      plan({ allow: ["api.example.com:8443"], credentials: [{ fromEnv: "K", hosts: ["api.example.com"] }] }),
    );
  });
  test("one source, a host without port or path", () => {
    assert.throws(() => egressSchema.parse({ credentials: [{ hosts: ["a.test"] }] }), /exactly one source/);
    assert.throws(
      () => plan({ allow: ["a.test"], credentials: [{ fromEnv: "K", hosts: ["a.test:443"] }] }),
      /without port or path/,
    );
  });
});

describe("planCredentials", () => {
  const egress = plan({
    allow: ["api.example.com", "github.com"],
    credentials: [
      { name: "api", fromEnv: "API_KEY", hosts: ["api.example.com"] },
      {
        name: "gh",
        fromFile: "~/.secret/gh",
        hosts: ["github.com"],
        env: "GH_TOKEN",
        file: "/run/gh-token",
        git: true,
      },
      { name: "opt", fromEnv: "ANTHROPIC_API_KEY", hosts: ["api.example.com"], optional: true },
    ],
  });
  const ctx = {
    hostEnv: { API_KEY: "sk-realrealrealrealrealreal1", OTHER: "x" },
    home: "/home/u",
    readFile: (f: string) =>
      f === "/home/u/.secret/gh" ? "ghp_abcdefghijklmnopqrstuvwxyz0123456789\n" : undefined,
    writable: ["/home/u/proj"],
  };

  test("sentinels for each entry, the secrets held but never serialised, notes for skipped optional ones", () => {
    const p = planCredentials(egress, ctx);
    assert.deepEqual(
      p.bindings.map((b) => [b.name, b.env, b.file, b.gitHosts]),
      [
        ["api", "API_KEY", undefined, []],
        ["gh", "GH_TOKEN", "/run/gh-token", ["github.com"]],
      ],
    );
    assert.match(p.bindings[1]!.sentinel, /^ghp_[A-Za-z0-9]{36}$/);
    assert.equal(p.secrets.get("gh"), "ghp_abcdefghijklmnopqrstuvwxyz0123456789");
    const json = JSON.stringify(p);
    assert.ok(!json.includes("sk-realreal") && !json.includes("ghp_abcdef"), json);
    assert.match(p.notes[0]!, /ANTHROPIC_API_KEY is not set.*OAuth/);
  });

  test("two entries for one box variable share its sentinel; it may go to the hosts of both", () => {
    const shared = plan({
      allow: ["api.example.com", "stand-in.test"],
      credentials: [
        { name: "preset", fromEnv: "API_KEY", hosts: ["api.example.com"] },
        { name: "flag", fromEnv: "API_KEY", hosts: ["stand-in.test"] },
      ],
    });
    const p = planCredentials(shared, ctx);
    assert.equal(p.bindings[0]!.sentinel, p.bindings[1]!.sentinel);
    const both: LiveCredential[] = (shared.credentials ?? []).map((entry) => ({
      entry,
      secret: "sk-realrealrealrealrealreal1",
      sentinel: p.bindings[0]!.sentinel,
    }));
    for (const h of ["api.example.com", "stand-in.test"]) {
      const v = judgeRequest(
        both,
        {
          host: host(h),
          method: "GET",
          target: "/",
          pathname: "/",
          rawHeaders: ["X-Key", p.bindings[0]!.sentinel],
        },
        (e) => boundTo(e, host(h)),
      );
      assert.ok(v.ok && v.rawHeaders[1] === "sk-realrealrealrealrealreal1", h);
    }
    const elsewhere = judgeRequest(
      both,
      {
        host: host("evil.test"),
        method: "GET",
        target: "/",
        pathname: "/",
        rawHeaders: ["X-Key", p.bindings[0]!.sentinel],
      },
      (e) => boundTo(e, host("evil.test")),
    );
    assert.equal(elsewhere.ok, false);
    const clash = plan({
      allow: ["api.example.com"],
      credentials: [
        { name: "a", fromEnv: "API_KEY", hosts: ["api.example.com"] },
        { name: "b", fromEnv: "OTHER_KEY", env: "API_KEY", hosts: ["api.example.com"] },
      ],
    });
    const withOther = { ...ctx, hostEnv: { ...ctx.hostEnv, OTHER_KEY: "sk-otherotherotherother22" } };
    assert.throws(
      () => planCredentials(clash, withOther),
      /both set the box's \$API_KEY from different secrets/,
    );
  });

  test("the box's environment: the source variable gone, the sentinel and CA variables in", () => {
    const p = planCredentials(egress, ctx);
    const env = applyCredentialEnv(
      { PATH: "/bin", API_KEY: "sk-realrealrealrealrealreal1", HOME: "/h" },
      egress,
      p,
    );
    assert.equal(env.API_KEY, p.bindings[0]!.sentinel);
    assert.equal(env.GH_TOKEN, p.bindings[1]!.sentinel);
    assert.equal(env.SSL_CERT_FILE, "/run/fourwall/ca-bundle.pem");
    assert.equal(env.NODE_EXTRA_CA_CERTS, "/run/fourwall/ca.pem");
    assert.throws(
      () => applyCredentialEnv({ LEAK: "token=sk-realrealrealrealrealreal1" }, egress, p),
      (e: unknown) => e instanceof CredentialPlanError && /LEAK/.test(e.message),
    );
  });

  test("a missing secret refuses, a source the box can write refuses", () => {
    assert.throws(() => planCredentials(egress, { ...ctx, hostEnv: {} }), /\$API_KEY is not set/);
    const inWorkdir = plan({
      allow: ["a.test"],
      credentials: [{ fromFile: "/home/u/proj/.token", hosts: ["a.test"] }],
    });
    assert.throws(() => planCredentials(inWorkdir, ctx), /path the box can write/);
  });
});

describe("input gate", () => {
  const rules = plan({
    input: [{ hosts: ["*.example.com"], maxBytes: 10, contentTypes: ["application/json", "text/*"] }],
  }).input!;
  test("rules by host; content types and declared sizes judged on the head", () => {
    assert.ok(inputRuleFor(rules, host("a.example.com")));
    assert.equal(inputRuleFor(rules, host("example.org")), undefined);
    const rule = rules[0]!;
    assert.equal(
      screenHead(rule, { contentType: "application/json; charset=utf-8", contentLength: "5" }),
      undefined,
    );
    assert.equal(screenHead(rule, { contentType: "text/html" }), undefined);
    assert.equal(screenHead(rule, { contentType: "application/octet-stream" }), "input-content-type");
    assert.equal(screenHead(rule, {}), "input-content-type");
    assert.equal(screenHead(rule, { contentType: "text/plain", contentLength: "11" }), "input-too-large");
  });
});
