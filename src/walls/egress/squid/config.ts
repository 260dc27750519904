import { inPrefix, internalRangesV4, internalRangesV6, parseIP } from "../rules/addresses.js";
import type { CompiledRule, EgressPlan, HostPattern } from "../rules/rules.js";

// Pure: an EgressPlan -> a squid 5 configuration that enforces the same policy, as far as squid can.
// The http_access lines run in the builtin proxy's order: scheme, deny rules, "not on the list" (decided
// on the name alone, so squid resolves only names the policy allows), ports and paths, method limits,
// then deny CIDRs and the internal-address guard on the resolved addresses, and last one allow line
// for what a rule took. Every deny line ends in an annotate_transaction ACL naming the reason, which becomes the
// X-Fourwall-Denied header, the short error body and a field of the access log fourwall reads back.
//
// Inside tunnels (squid-openssl, squid built with OpenSSL): ssl_bump peeks at the ClientHello without
// decrypting anything, splices a tunnel whose SNI the rule that took its CONNECT name also allows (an
// IP target: only without SNI), and terminates the rest; a tunnel that does not start with TLS is
// refused, except through a tcp:// rule's ports, which are spliced unlooked-at (the opt-out). Squid
// needs a certificate for any ssl-bump port even when it only peeks: a throwaway one per box
// (squid.ts). An absent SNI is told apart by a tiny external ACL helper (squid's ssl::server_name falls
// back to the CONNECT name when there is none).
//
// What squid cannot do here (stated, not hidden): follow plain HTTP inside a CONNECT tunnel request by
// request, so it refuses it (tunnel-not-tls) where the builtin proxy checks every Host; pair an SNI
// with the exact CONNECT name (it checks that the same rule allows both, so one wildcard rule's names
// can front for each other); ask a human about unknown names; refuse a plain-HTTP Host header that
// disagrees with the target (squid rewrites Host from the URL instead, so the origin still only sees
// the vetted name). The address guard sees every address a name resolves to; a name with one address
// inside an allowed CIDR (on that rule's port) passes with all its addresses.

export class SquidConfigError extends Error {
  override name = "SquidConfigError";
}

export interface SquidRenderOptions {
  /** Where squid listens. fourwall uses 127.0.0.1 and a port of its choice. */
  listen: { host: string; port: number };
  /**
   * A private directory holding squid's pid, logs, hosts file and error pages (one per box). Absent:
   * the paste-elsewhere form (`fourwall egress render`), which keeps squid's default paths.
   */
  dir?: string;
  /**
   * Proxy authentication every request must carry (fourwall's forwarder adds it; squid's 127.0.0.1 port is
   * reachable by every local user, the box's socket is not). Absent: none (the paste-elsewhere form, k8s).
   */
  auth?: { helper: string; passwordFile: string };
  /** squid's own name for the box, in comments. */
  box?: string;
}

/** The access log line fourwall reads back (squid-log.ts parses it). The path is last: it is the only field that may hold spaces. */
export const SQUID_LOGFORMAT = "%tS %Ss %>Hs %rm %>rd %>rP %<a %>st %<st %tr %note{fw_reason} %err_code %>rp";

/** Files under SquidRenderOptions.dir. */
export const squidFiles = (dir: string) => ({
  conf: `${dir}/squid.conf`,
  pid: `${dir}/squid.pid`,
  cacheLog: `${dir}/cache.log`,
  accessLog: `${dir}/access.log`,
  hosts: `${dir}/hosts`,
  errors: `${dir}/errors`,
  /** The throwaway certificate and key squid's ssl-bump port needs (it only peeks: nothing is signed with it). */
  bumpCert: `${dir}/bump.pem`,
  bumpKey: `${dir}/bump.key`,
  /** The external ACL helper that says whether a ClientHello carried no SNI. */
  sniHelper: `${dir}/no-sni.sh`,
  /** The per-run proxy credential's hash (basic_ncsa_auth's file, 0600). */
  passwd: `${dir}/passwd`,
});

/** The helper's program: squid sends "<sni or -> <acl data>" per line and reads OK (no SNI) or ERR. */
export const SQUID_SNI_HELPER = `#!/bin/sh
while read -r sni rest; do
  if [ "$sni" = - ]; then echo OK; else echo ERR; fi
done
`;

const reasonAcl = (reason: string) => `fw_r_${reason.replaceAll("-", "_")}`;

function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
}

/** A path prefix as squid's urlpath_regex, with the builtin's segment-boundary meaning. */
export function pathRegex(prefix: string): string {
  return `^${escapeRegex(prefix)}${prefix.endsWith("/") ? "" : "([/?]|$)"}`;
}

const portList = (ports: Array<[number, number]>) =>
  ports.map(([lo, hi]) => (lo === hi ? String(lo) : `${lo}-${hi}`)).join(" ");

const cidrText = (h: Extract<HostPattern, { kind: "cidr" }>) => `${h.network}/${h.prefix}`;

/**
 * Drops CIDRs inside another CIDR of the same list: squid keeps the smaller one and ignores the wider
 * (it says so only as a warning), which would silently open the rest of the wider range.
 */
export function withoutSubsets(cidrs: string[]): string[] {
  const parsed = cidrs.map((c) => {
    const [ip, bits] = c.split("/");
    const bytes = parseIP(ip!)!;
    return { c, bytes, prefix: bits === undefined ? bytes.length * 8 : Number(bits) };
  });
  return parsed
    .filter(
      (a, i) =>
        !parsed.some(
          (b, j) =>
            j !== i &&
            b.bytes.length === a.bytes.length &&
            b.prefix <= a.prefix &&
            inPrefix(a.bytes, b.bytes, b.prefix) &&
            (b.prefix < a.prefix || j < i),
        ),
    )
    .map((p) => p.c);
}

/**
 * Drops names that another entry of the same dstdomain ACL already covers: squid refuses to start
 * when an ACL lists both `a.test` and `.a.test` (or `.b.a.test` under `.a.test`).
 */
export function dedupeDomains(entries: string[]): string[] {
  const unique = [...new Set(entries)];
  const wild = unique.filter((e) => e.startsWith(".")).map((e) => e.slice(1));
  return unique
    .filter((e) => {
      const name = e.startsWith(".") ? e.slice(1) : e;
      return !wild.some((w) =>
        e.startsWith(".") ? name !== w && name.endsWith(`.${w}`) : name === w || name.endsWith(`.${w}`),
      );
    })
    .sort();
}

/** True when some name pattern in `rules` allows `name` itself (exactly, or as a subdomain of a wildcard). */
function nameCovered(rules: CompiledRule[], name: string): boolean {
  return rules.some(
    (r) =>
      r.host.kind === "name" && (r.host.wildcard ? name.endsWith(`.${r.host.name}`) : r.host.name === name),
  );
}

class Lines {
  readonly acls: string[] = [];
  readonly access: string[] = [];
  readonly reasons = new Set<string>();
  readonly marks = new Set<string>();
  private n = 0;

  acl(kind: string, values: string[], base = "fw_x"): string {
    const name = `${base}${++this.n}`;
    this.acls.push(`acl ${name} ${kind} ${values.join(" ")}`);
    return name;
  }

  deny(reason: string, ...acls: string[]): void {
    this.reasons.add(reason);
    this.access.push(`http_access deny ${[...acls, reasonAcl(reason)].join(" ")}`);
  }

  allow(...acls: string[]): void {
    this.access.push(`http_access allow ${acls.join(" ")}`);
  }

  /** A line that never matches, run for the side effect of its annotating ACL once `acls` all match. */
  mark(annotate: string, ...acls: string[]): void {
    this.marks.add(annotate);
    this.access.push(`http_access deny ${[...acls, annotate, "fw_never"].join(" ")}`);
  }

  /** ACLs matching the ClientHello's SNI against a name pattern, like host() does for the CONNECT name. */
  sni(h: Extract<HostPattern, { kind: "name" }>): string[] {
    const kind = "ssl::server_name --client-requested";
    if (!h.wildcard) return [this.acl(kind, [h.name], "fw_sni")];
    return [this.acl(kind, [`.${h.name}`], "fw_sni"), `!${this.acl(kind, [h.name], "fw_sni_apex")}`];
  }

  /** ACLs matching a host pattern: a list of names that must all match (the last may be negated). */
  host(h: HostPattern, base: string): string[] {
    if (h.kind === "cidr") return ["fw_iplit", this.acl("dst", [cidrText(h)], base)];
    if (!h.wildcard) return [this.acl("dstdomain -n", [h.name], base)];
    // squid's ".example.com" also matches example.com itself; a fourwall wildcard does not.
    return [
      this.acl("dstdomain -n", [`.${h.name}`], base),
      `!${this.acl("dstdomain -n", [h.name], `${base}_apex`)}`,
    ];
  }
}

/** The squid 5 configuration for a plan. Throws SquidConfigError for what squid cannot enforce. */
export function renderSquidConfig(plan: EgressPlan, options: SquidRenderOptions): string {
  if (plan.unknown === "ask")
    throw new SquidConfigError(
      "egress.unknown: ask needs the builtin proxy (squid cannot hold a request while a human decides)",
    );
  const L = new Lines();
  const nameAllows = plan.allow.filter((r) => r.host.kind === "name");
  const cidrAllows = plan.allow.filter((r) => r.host.kind === "cidr");
  const hasPaths = [...plan.allow, ...plan.deny].some((r) => r.path !== undefined);

  // 1. Only plain HTTP in absolute form and CONNECT: squid would otherwise speak TLS or FTP for the box.
  L.deny("scheme-not-supported", "!fw_connect", "!fw_http");
  if (hasPaths) {
    // Path rules compare prefixes; squid does not resolve dot segments or decode %2e before comparing.
    L.deny("path-not-normal", "!fw_connect", "fw_odd_path");
  }

  // 2. Deny rules by name, and deny CIDRs on IP literals: before anything is resolved.
  const denyAfterResolve: Array<{ rule: CompiledRule; acls: string[]; ports: string }> = [];
  for (const rule of plan.deny) {
    const acls = L.host(rule.host, "fw_d");
    const ports = L.acl("port", [portList(rule.ports)], "fw_dport");
    if (rule.host.kind === "cidr") {
      denyAfterResolve.push({ rule, acls: acls.slice(1), ports });
      L.deny("deny-rule", ...acls, ports);
    } else if (rule.path === undefined) {
      L.deny("deny-rule", ...acls, ports);
    } else {
      // A tunnel hides the path, so a path-scoped deny refuses the whole tunnel.
      L.deny("tunnel-not-inspectable", "fw_connect", ...acls, ports);
      L.deny("deny-rule", ...acls, ports, L.acl("urlpath_regex", [pathRegex(rule.path)], "fw_dpath"));
    }
  }

  // 3. Not on the list: decided on the name as written, so squid never resolves a name the policy does not allow.
  const names = dedupeDomains(
    nameAllows.map((r) =>
      r.host.kind === "name" && r.host.wildcard ? `.${r.host.name}` : (r.host as { name: string }).name,
    ),
  );
  if (names.length > 0) {
    L.deny("not-allowed", "!fw_iplit", `!${L.acl("dstdomain -n", names, "fw_allowed_names")}`);
    const apexes = dedupeDomains(
      nameAllows
        .filter((r) => r.host.kind === "name" && r.host.wildcard && !nameCovered(plan.allow, r.host.name))
        .map((r) => (r.host as { name: string }).name),
    );
    if (apexes.length > 0) L.deny("not-allowed", L.acl("dstdomain -n", apexes, "fw_wild_apex"));
  } else L.deny("not-allowed", "!fw_iplit");
  const allowedCidrs =
    cidrAllows.length > 0
      ? L.acl(
          "dst",
          withoutSubsets(cidrAllows.map((r) => cidrText(r.host as Extract<HostPattern, { kind: "cidr" }>))),
          "fw_allowed_cidrs",
        )
      : undefined;
  if (allowedCidrs) L.deny("not-allowed", "fw_iplit", `!${allowedCidrs}`);
  else L.deny("not-allowed", "fw_iplit");

  // 4. The allow rules, judged now but applied last: a line that never matches marks the transaction
  // as it goes (squid runs a line's ACLs left to right, and annotate_transaction acts at once), so
  // the denials below can say "no rule took it" without an allow line ending the list early.
  const pathRules: string[][] = [];
  for (const rule of plan.allow) {
    const acls = [...L.host(rule.host, "fw_a"), L.acl("port", [portList(rule.ports)], "fw_aport")];
    if (rule.path !== undefined) {
      pathRules.push([...acls]);
      // a rule with a path never matches a tunnel
      acls.push("!fw_connect", L.acl("urlpath_regex", [pathRegex(rule.path)], "fw_apath"));
    }
    L.mark("fw_mark_rule", ...acls);
  }
  for (const acls of pathRules) L.deny("tunnel-not-inspectable", "!fw_ruled", "fw_connect", ...acls);
  for (const acls of pathRules) L.deny("path-not-allowed", "!fw_ruled", ...acls);
  L.deny("port-not-allowed", "!fw_ruled");

  // 5. Method limits: every matching limit must list the method; a tunnel counts as CONNECT.
  for (const limit of plan.methods) {
    const hostAcls = limit.host ? L.host(limit.host, "fw_m") : [];
    const methods = L.acl("method", limit.methods, "fw_methods");
    L.deny("tunnel-not-inspectable", "fw_connect", ...hostAcls, `!${methods}`);
    L.deny("method-not-allowed", ...hostAcls, `!${methods}`);
  }

  // 6. Deny CIDRs and the internal-address guard, on the addresses the name resolves to (every one of
  // them): only names the policy allows get this far, so only they are ever resolved.
  for (const d of denyAfterResolve) L.deny("deny-rule", ...d.acls, d.ports);
  const pinned = Object.keys(plan.pins).sort();
  const pinnedAcl = pinned.length > 0 ? L.acl("dstdomain -n", dedupeDomains(pinned), "fw_pinned") : undefined;
  // An address inside an allowed CIDR passes the guard on that rule's ports (marked as in step 4).
  for (const rule of cidrAllows) {
    const range = L.acl(
      "dst",
      [cidrText(rule.host as Extract<HostPattern, { kind: "cidr" }>)],
      "fw_exempt_range",
    );
    L.mark("fw_mark_exempt", range, L.acl("port", [portList(rule.ports)], "fw_exempt_port"));
  }
  const byKind = new Map<string, string[]>();
  for (const { cidr, kind } of [...internalRangesV4(), ...internalRangesV6()]) {
    byKind.set(kind, [...(byKind.get(kind) ?? []), cidr]);
  }
  const exempt = [pinnedAcl, cidrAllows.length > 0 ? "fw_exempt" : undefined]
    .filter((a): a is string => a !== undefined)
    .map((a) => `!${a}`);
  for (const [kind, cidrs] of byKind) {
    L.deny(
      `address-${kind}`,
      L.acl("dst", withoutSubsets(cidrs), `fw_int_${kind.replaceAll("-", "_")}`),
      ...exempt,
    );
  }

  // 7. What passed every check and a rule took; nothing else.
  L.allow("fw_ruled");
  L.deny("not-allowed");

  // 8. Inside the tunnels http_access let through: peek at the ClientHello, splice or terminate.
  const bump: string[] = [];
  for (const rule of plan.allow.filter((r) => r.protocol === "tcp" && r.path === undefined)) {
    // The opt-out: spliced at once, before squid looks at a byte.
    bump.push(
      `ssl_bump splice ${[...L.host(rule.host, "fw_raw"), L.acl("port", [portList(rule.ports)], "fw_rawport")].join(" ")}`,
    );
  }
  bump.push("ssl_bump peek fw_step1");
  L.reasons.add("sni-mismatch").add("sni-missing").add("tunnel-not-tls");
  // An IP target: standard clients send no SNI there (RFC 6066), so a name would be fronting.
  bump.push("ssl_bump splice fw_iplit fw_nosni", `ssl_bump terminate fw_iplit ${reasonAcl("sni-mismatch")}`);
  bump.push(`ssl_bump terminate fw_nosni ${reasonAcl("sni-missing")}`);
  for (const rule of nameAllows.filter((r) => r.path === undefined && r.protocol !== "tcp")) {
    const h = rule.host as Extract<HostPattern, { kind: "name" }>;
    const ports = L.acl("port", [portList(rule.ports)], "fw_sniport");
    bump.push(`ssl_bump splice ${[...L.host(h, "fw_sdst"), ports, ...L.sni(h)].join(" ")}`);
  }
  bump.push(`ssl_bump terminate ${reasonAcl("sni-mismatch")}`);

  const dir = options.dir;
  const files = dir ? squidFiles(dir) : undefined;
  const { host, port } = options.listen;
  const listen = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  // The paste-elsewhere form names where to put the certificate and helper (see squidFiles for what they are).
  const tls = files ?? squidFiles("/etc/squid/fourwall");
  const out: string[] = [
    `# squid 5 configuration generated by fourwall from the egress policy${options.box ? ` of box ${options.box}` : ""}.`,
    "# Regenerated for every box; edit the policy, not this file. Needs squid built with OpenSSL (Debian: squid-openssl).",
    "",
    "# One listener; fourwall checks it is bound (squid keeps running when a listener fails). ssl-bump: to peek",
    "# at the TLS ClientHello in tunnels; the certificate is never used (no tunnel is decrypted).",
    `http_port ${listen} ssl-bump tls-cert=${tls.bumpCert} tls-key=${tls.bumpKey} generate-host-certificates=off`,
    "icp_port 0",
    "htcp_port 0",
    "",
    "# A forward proxy for one box: no cache, no helpers, nothing written outside its own files.",
    "cache deny all",
    "cache_mem 0 MB",
    "digest_generation off",
    "pinger_enable off",
    "client_db off",
    "netdb_filename none",
    "cache_store_log none",
    "logfile_rotate 0",
    "shutdown_lifetime 0 seconds",
    "# Nothing about the box or this host leaks upstream or to the box.",
    "forwarded_for delete",
    "via off",
    "httpd_suppress_version_string on",
    "visible_hostname fourwall",
    "reply_header_access X-Cache deny all",
    "reply_header_access X-Cache-Lookup deny all",
  ];
  if (files) {
    out.push(
      `pid_filename ${files.pid}`,
      `cache_log ${files.cacheLog}`,
      `coredump_dir ${dir}`,
      `error_directory ${files.errors}`,
      `# The policy's pins (resolve: HOST=ADDRESS), then the host's /etc/hosts.`,
      `hosts_file ${files.hosts}`,
      `logformat fourwall ${SQUID_LOGFORMAT}`,
      `access_log stdio:${files.accessLog} fourwall`,
    );
  } else if (pinned.length > 0) {
    out.push(
      "# The policy pins names (resolve:); put these lines in squid's hosts_file (default /etc/hosts):",
      ...pinned.flatMap((name) => plan.pins[name]!.map((a) => `#   ${a} ${name}`)),
    );
  }
  if (options.auth)
    out.push(
      "# Only fourwall's forwarder knows the per-run secret: another local user reaching the port gets 407.",
      "# One request per connection, so the forwarder's header covers every request on it.",
      `auth_param basic program ${options.auth.helper} ${options.auth.passwordFile}`,
      "auth_param basic children 2 startup=0 idle=1",
      "auth_param basic realm fourwall",
      "auth_param basic credentialsttl 1 hour",
      "client_persistent_connections off",
    );
  out.push(
    "",
    "# Helpers used below.",
    "acl fw_connect method CONNECT",
    "acl fw_http proto HTTP",
    "acl fw_iplit dstdom_regex -n -i ^([0-9.]+|\\[?[0-9a-f:.]*:[0-9a-f:.]*\\]?)$",
  );
  if (hasPaths) out.push("acl fw_odd_path urlpath_regex -i [\\] (^|/)(\\.|%2e){1,2}([/?]|$)");
  out.push(...[...L.reasons].sort().map((r) => `acl ${reasonAcl(r)} annotate_transaction fw_reason=${r}`));
  out.push(
    "acl fw_never note fw_never_set",
    "acl fw_mark_rule annotate_transaction fw_rule=yes",
    "acl fw_ruled note fw_rule yes",
  );
  if (L.marks.has("fw_mark_exempt"))
    out.push("acl fw_mark_exempt annotate_transaction fw_guard=exempt", "acl fw_exempt note fw_guard exempt");
  if (!files)
    out.push(
      "# Make the ssl-bump certificate and the SNI helper once, readable by squid's user:",
      `#   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 -subj /CN=fourwall-peek-only -keyout ${tls.bumpKey} -out ${tls.bumpCert}`,
      `#   ${tls.sniHelper}, mode 755: ${SQUID_SNI_HELPER.trim().split("\n").slice(1).join(" ; ")}`,
    );
  out.push(
    "acl fw_denied note fw_reason",
    "acl fw_step1 at_step SslBump1",
    `external_acl_type fw_sni_helper ttl=0 negative_ttl=0 children-max=2 children-startup=0 children-idle=1 %ssl::>sni ${tls.sniHelper}`,
    "acl fw_nosni external fw_sni_helper",
    "",
    "# The policy's rules.",
    ...L.acls,
    "",
    "# Deny first; the last line denies the rest.",
    ...(options.auth ? ["acl fw_auth proxy_auth REQUIRED", "http_access deny !fw_auth"] : []),
    ...L.access,
    "",
    "# Inside allowed tunnels: TLS whose SNI the same rule allows, or (tcp:// rules) anything; else terminate.",
    ...bump,
    // (a CONNECT already refused keeps its own reason: squid answers it inside the tunnel too)
    `on_unsupported_protocol respond !fw_denied ${reasonAcl("tunnel-not-tls")}`,
    "on_unsupported_protocol respond all",
  );
  out.push(
    "",
    "# Why a request was refused, for the agent and for the audit log.",
    'reply_header_add X-Fourwall-Denied "%note{fw_reason}" fw_denied',
    "",
  );
  return out.join("\n");
}

/** The hosts_file squid reads: the plan's pins first (they win), then the host's own /etc/hosts minus pinned names. */
export function renderSquidHosts(plan: EgressPlan, etcHosts: string): string {
  const pinned = new Set(Object.keys(plan.pins));
  const lines = Object.entries(plan.pins).flatMap(([name, addrs]) =>
    addrs.map((a) => `${a.replace(/^\[|\]$/g, "")} ${name}`),
  );
  for (const raw of etcHosts.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    const [addr, ...names] = line.split(/\s+/);
    const kept = names.filter((n) => !pinned.has(n.toLowerCase()));
    if (addr && kept.length > 0) lines.push(`${addr} ${kept.join(" ")}`);
  }
  return `${lines.join("\n")}\n`;
}

/** The body of every error page squid sends (short, like the builtin proxy's; the reason comes from the annotation). */
export const SQUID_ERROR_TEMPLATE = "fourwall egress (squid): %M %U denied (@Squid{%note{fw_reason}}, %c)\n";
