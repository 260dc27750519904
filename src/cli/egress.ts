import pc from "picocolors";
import { EXIT_BOX_FAILED } from "../core/errors.js";
import { PolicyError } from "../policy/errors.js";
import { loadPolicy } from "../policy/load.js";
import {
  FirewallError,
  parseProxyAddress,
  renderIptables,
  renderNftables,
  renderSquidConfig,
  SquidConfigError,
} from "../walls/egress/index.js";

export interface RenderOptions {
  format: "squid" | "nftables" | "iptables";
  policy?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
  /** Where the proxy listens, as the box sees it. */
  proxyAddress: string;
}

/**
 * `fourwall egress render`: what fourwall would install for a policy, printed for audit or to paste
 * into another set-up (squid on a container host plus a firewall in the container's namespace).
 */
export function egressRenderCommand(options: RenderOptions): number {
  try {
    const flags: Record<string, unknown> = {};
    if (options.allow.length > 0 || options.resolve.length > 0)
      flags.egress = { allow: options.allow, resolve: options.resolve };
    const { egress, source } = loadPolicy({
      file: options.policy,
      cwd: process.cwd(),
      flags,
      presets: options.preset,
    });
    const proxy = parseProxyAddress(options.proxyAddress);
    let text: string;
    if (options.format === "squid") {
      text = `# policy: ${source}\n${renderSquidConfig(egress, { listen: proxy })}`;
    } else if (options.format === "nftables") {
      text = renderNftables(proxy);
    } else {
      text = renderIptables(proxy);
    }
    process.stdout.write(text);
    return 0;
  } catch (error) {
    if (error instanceof PolicyError) {
      process.stderr.write(`${pc.red(error.message)}\n`);
      return EXIT_BOX_FAILED;
    }
    if (error instanceof FirewallError || error instanceof SquidConfigError) {
      process.stderr.write(`${pc.red(`fourwall egress render: ${error.message}`)}\n`);
      return 2;
    }
    throw error;
  }
}

export interface PlanOptions {
  policy?: string;
  preset: string[];
  allow: string[];
  resolve: string[];
}

/**
 * `fourwall egress plan` (hidden): the compiled EgressPlan of a policy as JSON on stdout. `egress
 * serve` asks for it in a child process, so the policy's parsers (zod, yaml) never load into the
 * long-lived proxy process (they cost it ~15 MiB; docs/benchmarks.md).
 */
export function egressPlanCommand(options: PlanOptions): number {
  try {
    const flags: Record<string, unknown> = {};
    if (options.allow.length > 0 || options.resolve.length > 0)
      flags.egress = { allow: options.allow, resolve: options.resolve };
    const { egress } = loadPolicy({
      file: options.policy,
      cwd: process.cwd(),
      flags,
      presets: options.preset,
    });
    process.stdout.write(`${JSON.stringify(egress)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof PolicyError) {
      process.stderr.write(`${pc.red(error.message)}\n`);
      return EXIT_BOX_FAILED;
    }
    throw error;
  }
}
