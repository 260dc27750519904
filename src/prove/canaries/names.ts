/**
 * The host names the egress probes use. None of them is ever looked up in DNS: the listed and
 * unlisted ones end in .invalid and are pinned at fourwall's proxy; the guard name resolves from
 * /etc/hosts.
 */

export interface CanaryNames {
  /** Allowed by rule and pinned to 127.0.0.1 (for a peer that cannot pin names: localhost). */
  listed: string;
  /** Pinned to 127.0.0.1 like the listed one, but no rule allows it. */
  unlisted: string;
  /**
   * Allowed by rule but not pinned: the proxy resolves it itself, to loopback, and must refuse to
   * connect. A skip reason when no name fits the wrapper under test.
   */
  guard: string | { skip: string };
}

export const FOURWALL_NAMES: CanaryNames = {
  listed: "listed.fourwall.invalid",
  unlisted: "unlisted.fourwall.invalid",
  // fourwall's proxy gives localhost no special meaning: it resolves it like any name.
  guard: "localhost",
};

/** Names /etc/hosts maps to a loopback address, other than localhost and *.localhost. */
export function loopbackAliases(hostsFile: string): string[] {
  const names: string[] = [];
  for (const raw of hostsFile.split("\n")) {
    const [address, ...aliases] = raw.replace(/#.*/, "").trim().split(/\s+/);
    if (!address || !(address.startsWith("127.") || address === "::1")) continue;
    for (const name of aliases) {
      const lower = name.toLowerCase();
      if (lower !== "localhost" && !lower.endsWith(".localhost") && !names.includes(lower)) names.push(lower);
    }
  }
  return names;
}

/** The host prove binds its credential canary to (allowed, pinned); the probe sends the sentinel elsewhere. */
export const CREDENTIAL_HOST = "bound.fourwall.invalid";
/**
 * The host variable holding the credential canary; the box's holds a sentinel. Not FOURWALL_*: the
 * box daemon sends a caller whose FOURWALL_* variables differ from its own the Node way.
 */
export const CREDENTIAL_ENV = "FWPROVE_API_KEY";
/** The credential canary: shaped like an API key, carrying a marker the probe looks for (never in a sentinel). */
export const credentialSecret = (token: string) => `sk-fwprove-${token}-credential-canary`;
export const credentialMarker = (token: string) => `fwprove-${token}`;
