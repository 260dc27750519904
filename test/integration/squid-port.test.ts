/**
 * squid listens on 127.0.0.1:PORT on the host, which every local user can reach. Only the box may use
 * it: another uid connecting straight to the port gets no response from the box's allowed origins
 * (squid demands the per-run proxy credential its forwarder adds), while the box itself still reaches
 * them with curl and python. Both launch modes; the broken box (its squid without the credential)
 * shows the test sees the open port.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import {
  chownToMode,
  MODES,
  type Mode,
  makeFixture,
  readAudit,
  startInBox,
  USER_UID,
  waitFor,
} from "../helpers/box.js";
import { type Origin, run, startHttpOrigin } from "../helpers/origins.js";

let origin: Origin;
before(async () => {
  origin = await startHttpOrigin();
});
after(() => origin?.close());

const ppid = (pid: string): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return -1;
  }
};
const comm = (pid: string): string => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
};

/** The TCP port squid listens on for the fourwall process `pid` (squid's parent is fourwall's keeper shell). */
function squidPortOf(pid: number): number | undefined {
  for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    if (comm(p) !== "squid" || ppid(String(ppid(p))) !== pid) continue;
    const out = execFileSync("ss", ["-lntpH"], { encoding: "utf8" });
    const line = out.split("\n").find((l) => l.includes(`pid=${p},`));
    const m = line && /127\.0\.0\.1:(\d+)/.exec(line);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** Another local user: nobody (65534) when the box is root's, uid 65533 when it is 65534's. */
const otherUid = (mode: Mode) => (mode === "root" ? USER_UID : USER_UID - 1);

async function asOther(mode: Mode, argv: string[]): Promise<string> {
  const u = String(otherUid(mode));
  const r = await run("setpriv", [`--reuid=${u}`, `--regid=${u}`, "--clear-groups", ...argv]);
  return `${r.stdout}\n${r.stderr}`;
}

/** A fixture whose policy lets squid reach the test origin only, and the box's script: curl and python to it. */
function boxSetup(mode: Mode) {
  const fx = makeFixture(mode);
  const policy = path.join(fx.workdir, "squid.yaml");
  writeFileSync(policy, `egress:\n  proxy: squid\n  allow: ["[127.0.0.1/32]:${origin.port}"]\n`);
  chownToMode(fx, policy);
  const url = `http://127.0.0.1:${origin.port}/from-box`;
  const script = [
    `curl -sS --max-time 5 ${url}; echo`,
    `python3 -c "import urllib.request as u; print(u.urlopen('${url}', timeout=5).read().decode())"`,
    "echo ready",
    "sleep 40",
  ].join("\n");
  return { fx, policy, script };
}

for (const mode of MODES) {
  describe(`squid's host port is the box's alone (${mode})`, () => {
    for (const weak of [false, true]) {
      it(
        weak
          ? "the broken box (squid without its credential): another uid gets through, so the test sees the hole"
          : "another uid gets nothing through squid's port; the box still reaches the origin (curl, python)",
        async () => {
          const { fx, policy, script } = boxSetup(mode);
          const audit = path.join(fx.home, "audit.jsonl");
          const box = weak
            ? startInBox(fx, ["--policy", policy], script, { weaken: ["squid-auth"] })
            : startInBox(fx, ["--policy", policy, "--audit", audit], script);
          try {
            assert.ok(await waitFor(() => box.out().includes("ready"), 30_000), `box started: ${box.out()}`);
            const fromBox = box
              .out()
              .split("\n")
              .filter((l) => l.startsWith("origin=http"));
            assert.equal(fromBox.length, 2, `curl and python in the box reach the origin: ${box.out()}`);
            const port = squidPortOf(box.child.pid!);
            assert.ok(port, "squid's port found");
            const target = `http://127.0.0.1:${origin.port}/from-other-user`;
            const hits = origin.hits;
            const plain = await asOther(mode, [
              "curl",
              "-sS",
              "--max-time",
              "5",
              "-x",
              `http://127.0.0.1:${port}`,
              target,
            ]);
            const tunnel = await asOther(mode, [
              "curl",
              "-sS",
              "--max-time",
              "5",
              "-p",
              "-x",
              `http://127.0.0.1:${port}`,
              target,
            ]);
            const reached = (out: string) => out.includes("origin=http");
            if (weak) {
              assert.ok(reached(plain), `the open port should have let another uid through: ${plain}`);
            } else {
              assert.ok(!reached(plain), `another uid got a response through squid: ${plain}`);
              assert.ok(!reached(tunnel), `another uid got a response through a squid tunnel: ${tunnel}`);
              assert.match(plain, /ERR_CACHE_ACCESS_DENIED/, plain); // squid's page for a missing proxy credential
              assert.equal(origin.hits, hits, "the origin saw another uid's request");
              // the box's audit log names the attempt (squid's log is read every 200 ms)
              const refused = () =>
                readAudit(audit).filter((e) => e.wall === "egress" && e.reason === "proxy-auth").length;
              assert.ok(await waitFor(() => refused() >= 1, 3000), "the attempt is in the audit log");
            }
          } finally {
            box.child.kill("SIGTERM");
            await box.closed;
          }
        },
      );
    }
  });
}
