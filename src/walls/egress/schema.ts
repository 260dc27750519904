import { z } from "zod";
import { credentialSchema, inputRuleSchema } from "./credentials/schema.js";

// Owned by the egress wall. Rule strings are validated (and parsed) by compileEgressPlan in rules.ts;
// this slice only fixes their shape so the policy file, the CLI flags and the JSON Schema agree.

const METHOD = /^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$/;

export const egressSchema = z
  .strictObject({
    allow: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "hosts the box may reach: example.com | *.example.com (subdomains only) | example.com:8443 | example.com:8000-8100 | " +
          "10.0.0.0/8 | [::1]:8080 | example.com/v2/ (path prefix, plain HTTP only). Ports 80 and 443 unless a port is named. " +
          "A tunnel (CONNECT, SOCKS) must carry TLS whose SNI names the host, or plain HTTP whose every request's Host names " +
          "it; on port 443 TLS only. tls://example.com:8443 makes those ports TLS only; tcp://git.example.com:22 lets other " +
          "protocols through those ports unchecked (the opt-out: ssh, databases). " +
          "Internal addresses (loopback, private, link-local, metadata, ...) are refused unless pinned in resolve or inside an allowed CIDR",
      ),
    deny: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "hosts the box may never reach, same syntax as allow (all ports unless one is named); deny wins over allow",
      ),
    resolve: z
      .array(z.string().regex(/^[^=\s]+=[^=\s]+$/, "HOST=ADDRESS"))
      .default([])
      .describe(
        "pin a host name to an address at the proxy, like curl --resolve (HOST=ADDRESS); a pinned address passes the " +
          "internal-address guard, but the name must still be allowed",
      ),
    methods: z
      .record(
        z.string().min(1),
        z.array(z.string().regex(METHOD, "an HTTP method in capitals, e.g. GET")).min(1),
      )
      .default({})
      .describe(
        'per-host method limits, e.g. {"api.example.com": ["GET", "HEAD"], "*": ["GET", "HEAD", "OPTIONS"]}. Keys use the ' +
          "allow syntax without port or path, or * for every host. Every matching key must list the method. HTTPS tunnels " +
          "cannot be inspected, so a tunnel to a limited host is refused unless its list names CONNECT",
      ),
    unknown: z
      .enum(["deny", "ask"])
      .default("deny")
      .describe(
        "what happens to a host that no rule allows: deny, or ask the human through the approval gate",
      ),
    transparent: z
      .boolean()
      .default(false)
      .describe(
        "also capture tools that ignore proxy settings: a stub resolver answers only allowed names and TCP to them goes to the proxy",
      ),
    proxy: z
      .enum(["builtin", "squid"])
      .default("builtin")
      .describe(
        "which proxy enforces the policy: fourwall's own (builtin) or a generated Debian squid 5 config",
      ),
    credentials: z
      .array(credentialSchema)
      .optional()
      .describe(
        "secrets kept outside the box: the box holds a per-run sentinel, the proxy swaps in the real value for the bound hosts only (builtin proxy; TLS to those hosts is terminated with a per-run CA)",
      ),
    trust: z
      .array(z.string().min(1))
      .optional()
      .describe(
        "extra CA certificate files (PEM) the proxy trusts for upstream servers it talks TLS to (bound hosts, input gate), beside the system trust store: private CAs",
      ),
    input: z
      .array(inputRuleSchema)
      .optional()
      .describe(
        "input gate: size caps, content types and a hook for responses from these hosts (plain HTTP, and TLS, which a rule here makes the proxy terminate)",
      ),
  })
  .describe("the egress wall: default deny, the allowlisting proxy is the only way out");

export type EgressPolicy = z.output<typeof egressSchema>;
export type EgressPolicyInput = z.input<typeof egressSchema>;
