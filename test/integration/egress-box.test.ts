/**
 * The egress wall from inside a real box, both launch modes: the proxy is the only way out.
 * Origins are host loopback services pinned with --resolve; "outside" is only ever loopback.
 * Each check also runs against a deliberately broken box (the host's network namespace).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { MODES, type Mode, makeFixture, sh } from "../helpers/box.js";

let origin: http.Server;
let port = 0;
before(async () => {
  origin = http.createServer((req, res) => res.end(`origin-body ${req.url}`));
  await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
  port = (origin.address() as AddressInfo).port;
});
after(() => origin.close());

const flags = () => ["-a", `allowed.test:${port}`, "--resolve", `allowed.test=127.0.0.1`, "--resolve", `other.test=127.0.0.1`];

for (const mode of MODES) {
  describe(`egress wall in the box (${mode})`, () => {
    it("lets an allowlisted origin through the proxy (curl, python, git's env), body checked", async () => {
      const fx = makeFixture(mode);
      const r = await sh(
        fx,
        `curl -s -m 5 http://allowed.test:${port}/curl; echo; ` +
          `/usr/bin/python3 -c 'import urllib.request; print(urllib.request.urlopen("http://allowed.test:${port}/py", timeout=5).read().decode())'`,
        { flags: flags() },
      );
      assert.match(r.stdout, /origin-body \/curl/, r.stderr);
      assert.match(r.stdout, /origin-body \/py/, r.stderr);
    });

    it("refuses an unlisted host with a 403 and the reason, and says so at exit", async () => {
      const fx = makeFixture(mode);
      const audit = path.join(fx.home, "audit.jsonl");
      const r = await sh(fx, `curl -s -m 5 -o /dev/null -D - http://other.test:${port}/`, { flags: [...flags(), "--audit", audit] });
      assert.match(r.stdout, /403/);
      assert.match(r.stdout, /X-Fourwall-Denied: not-allowed/i);
      assert.match(r.stderr, /egress blocked 1 request/);
      const events = readFileSync(audit, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      assert.ok(events.some((e) => e.wall === "egress" && e.decision === "deny" && e.host === "other.test"));
    });

    const holes: { name: string; script: () => string; hole: (out: string) => boolean; weaken: Partial<Record<Mode, string[]>> }[] = [
      {
        name: "a direct connection to a host address fails at once (no route but the proxy)",
        script: () => `curl -s -m 3 --noproxy '*' http://127.0.0.1:${port}/direct; echo; python3 -c 'import socket; s=socket.socket(); s.settimeout(2); s.connect(("127.0.0.1", ${port})); print("CONNECTED")'`,
        hole: (out) => out.includes("origin-body /direct") || out.includes("CONNECTED"),
        weaken: { root: ["net"], user: ["net"] },
      },
      {
        name: "the box has no interface but lo and no working resolver",
        script: () => "ip -o link | grep -vc ' lo:'; getent hosts localhost.invalid >/dev/null && echo RESOLVED; cat /proc/net/route | wc -l",
        hole: (out) => out.split("\n")[0] !== "0" || out.includes("RESOLVED"),
        weaken: { root: ["net"], user: ["net"] },
      },
      {
        name: "firewall and routing tampering fails (no CAP_NET_ADMIN)",
        script: () => "ip link add fw0 type dummy 2>/dev/null && echo TAMPERED; ip route add 10.99.0.0/16 dev lo 2>/dev/null && echo TAMPERED; nft flush ruleset 2>/dev/null && echo TAMPERED; true",
        hole: (out) => out.includes("TAMPERED"),
        // No broken variant: a box that could tamper would need CAP_NET_ADMIN over a real network
        // namespace, and a leak there would change the host's own routes.
        weaken: {},
      },
    ];
    for (const check of holes) {
      it(check.name, async () => {
        const fx = makeFixture(mode);
        const r = await sh(fx, check.script(), { flags: flags() });
        assert.equal(check.hole(r.stdout), false, `${r.stdout}\n${r.stderr}`);
      });
      const weaken = check.weaken[mode];
      if (weaken) {
        it(`${check.name} — the check sees the hole in a box without ${weaken.join(" + ")}`, async () => {
          const fx = makeFixture(mode);
          const r = await sh(fx, check.script(), { weaken });
          assert.equal(check.hole(r.stdout), true, `the broken box was not caught\n${r.stdout}\n${r.stderr}`);
        });
      }
    }
  });
}
