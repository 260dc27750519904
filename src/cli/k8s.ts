import { mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import pc from "picocolors";
import { stringify } from "yaml";
import { EXIT_BOX_FAILED } from "../core/errors.js";
import { OutputFileError, writeOutputFile } from "../core/output-file.js";
import { fillCredentials } from "../k8s/credentials.js";
import {
  checkOptions,
  DEFAULT_OPTIONS,
  K8sOptionError,
  type K8sOptions,
  SQUID_PROXY_IMAGE,
} from "../k8s/options.js";
import { credentialNames, type Rendered, renderManifests } from "../k8s/render.js";
import { PolicyError } from "../policy/errors.js";
import { loadPolicy } from "../policy/load.js";
import { CredentialPlanError, SquidConfigError } from "../walls/egress/index.js";

/** The flags of `fourwall k8s render|apply|run`, as commander hands them over. */
export interface K8sFlags {
  policy?: string;
  preset: string[];
  allow: string[];
  flavor?: string;
  image?: string;
  proxyImage?: string;
  proxy?: string;
  name?: string;
  namespace?: string;
  warmPool?: string;
  runtimeClass?: string;
  withRuntimeClass?: true;
  seccomp?: string;
  workdirSize?: string;
  workdirPvc?: true;
  tmpSize?: string;
  proxyAddress?: string;
  proxyReplicas?: string;
  cilium?: true;
  out?: string;
  json?: true;
  timeout?: string;
  probeListed?: string;
}

const whole = (flag: string, text: string | undefined, fallback: number): number => {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text)) throw new K8sOptionError(`${flag}: takes a whole number, not "${text}"`);
  return Number(text);
};

export function optionsFrom(flags: K8sFlags, command: string[] = DEFAULT_OPTIONS.command): K8sOptions {
  const seccomp = flags.seccomp ?? "runtime-default";
  if (seccomp !== "runtime-default" && seccomp !== "fourwall")
    throw new K8sOptionError(`--seccomp: takes runtime-default or fourwall, not "${seccomp}"`);
  return checkOptions({
    ...DEFAULT_OPTIONS,
    flavor: (flags.flavor ?? DEFAULT_OPTIONS.flavor) as K8sOptions["flavor"],
    image: flags.image ?? DEFAULT_OPTIONS.image,
    proxyImage:
      flags.proxyImage ?? (flags.proxy === "squid" ? SQUID_PROXY_IMAGE : DEFAULT_OPTIONS.proxyImage),
    ...(flags.proxy !== undefined ? { proxy: flags.proxy as K8sOptions["proxy"] } : {}),
    name: flags.name ?? DEFAULT_OPTIONS.name,
    namespace: flags.namespace ?? DEFAULT_OPTIONS.namespace,
    warmPool: whole("--warm-pool", flags.warmPool, DEFAULT_OPTIONS.warmPool),
    runtimeClass: (flags.runtimeClass ?? DEFAULT_OPTIONS.runtimeClass) as K8sOptions["runtimeClass"],
    renderRuntimeClass: flags.withRuntimeClass === true,
    seccomp,
    workdirSize: flags.workdirSize ?? DEFAULT_OPTIONS.workdirSize,
    workdirPvc: flags.workdirPvc === true,
    tmpSize: flags.tmpSize ?? DEFAULT_OPTIONS.tmpSize,
    ...(flags.proxyAddress !== undefined ? { proxyAddress: flags.proxyAddress } : {}),
    proxyReplicas: whole("--proxy-replicas", flags.proxyReplicas, DEFAULT_OPTIONS.proxyReplicas),
    cilium: flags.cilium === true,
    command,
  });
}

/** egress.trust's files, read here (rendering reads no file). */
function readTrust(files: string[] | undefined): string[] {
  return (files ?? []).map((file) => {
    try {
      return readFileSync(file, "utf8");
    } catch (error) {
      throw new K8sOptionError(`egress.trust: cannot read ${file}: ${(error as Error).message}`);
    }
  });
}

/** Policy + flags → the rendered objects (throws PolicyError / K8sOptionError). */
export function renderFromFlags(flags: K8sFlags, command?: string[]): Rendered {
  return renderWithPlan(flags, command).rendered;
}

function renderWithPlan(flags: K8sFlags, command?: string[]) {
  const options = optionsFrom(flags, command);
  const flagPolicy: Record<string, unknown> = {};
  if (flags.allow.length > 0) flagPolicy.egress = { allow: flags.allow };
  const { policy, egress } = loadPolicy({
    file: flags.policy,
    cwd: process.cwd(),
    flags: flagPolicy,
    presets: flags.preset,
  });
  // a policy that asks for squid gets squid's image unless one is named
  const squidByPolicy = options.proxy === undefined && policy.egress.proxy === "squid" && !flags.proxyImage;
  const chosen = squidByPolicy ? { ...options, proxyImage: SQUID_PROXY_IMAGE } : options;
  try {
    const inputs = (egress.credentials ?? []).length > 0 ? { trust: readTrust(egress.trust) } : {};
    return { rendered: renderManifests(policy, egress, chosen, inputs), egress, options: chosen };
  } catch (error) {
    if (error instanceof SquidConfigError) throw new K8sOptionError(`--proxy squid: ${error.message}`);
    throw error;
  }
}

/** One message, exit 125: the manifests were not made. */
export function k8sFailure(error: unknown): number {
  if (error instanceof PolicyError || error instanceof K8sOptionError || error instanceof OutputFileError) {
    process.stderr.write(`${pc.red(`fourwall k8s: ${error.message}`)}\n`);
    return EXIT_BOX_FAILED;
  }
  throw error;
}

/** `fourwall k8s render`: the manifests on stdout (YAML, or --json), files beside them with --out. */
export function k8sRenderCommand(flags: K8sFlags): number {
  try {
    const rendered = renderFromFlags(flags);
    if (flags.json) process.stdout.write(`${JSON.stringify(rendered, null, 2)}\n`);
    else
      process.stdout.write(
        rendered.objects.map((o) => stringify(o, { aliasDuplicateObjects: false })).join("---\n"),
      );
    for (const file of rendered.files) {
      if (flags.out) {
        const target = path.join(flags.out, file.path);
        mkdirSync(path.dirname(target), { recursive: true });
        writeOutputFile(target, file.content);
        process.stderr.write(`fourwall k8s: wrote ${target} (${file.why})\n`);
      } else if (!flags.json)
        process.stderr.write(
          `fourwall k8s: ${file.path} is needed too (${file.why}); pass --out DIR to write it\n`,
        );
    }
    for (const note of rendered.notes) process.stderr.write(`${pc.yellow("note")} ${note}\n`);
    return 0;
  } catch (error) {
    return k8sFailure(error);
  }
}

const say = (line: string) => process.stderr.write(`${pc.dim("fourwall k8s:")} ${line}\n`);

/** `fourwall k8s apply`: server-side apply of the rendered objects, the proxy's IP pinned for agents. */
export async function k8sApplyCommand(flags: K8sFlags): Promise<number> {
  try {
    // every input error (a missing secret included) before touching the cluster
    const { egress, options, rendered: first } = renderWithPlan(flags);
    const { gatherCredentials } = await import("../k8s/secrets.js");
    const { materials, notes } = await gatherCredentials(egress, `${options.namespace}/${options.name}`);
    for (const note of notes) say(note);
    const holdsSecret = first.objects.some((o) => o.kind === "Secret");
    const fill = (r: Rendered): Rendered =>
      materials && holdsSecret ? fillCredentials(r, credentialNames(options), materials) : r;
    const { connect, applyAll } = await import("../k8s/cluster.js");
    const rendered = await applyAll(
      connect(),
      (proxyAddress) => fill(renderFromFlags({ ...flags, ...(proxyAddress ? { proxyAddress } : {}) })),
      say,
    );
    if (materials && holdsSecret)
      say(
        `credentials: ${materials.bindings.length} secret(s) in the Secret ${credentialNames(options).secret} (proxy only); new sentinels and CA, the proxies roll`,
      );
    for (const file of rendered.files)
      say(`${file.path} is needed on the nodes too (${file.why}): fourwall k8s render --out DIR writes it`);
    return 0;
  } catch (error) {
    if (error instanceof PolicyError || error instanceof K8sOptionError) return k8sFailure(error);
    if (error instanceof CredentialPlanError) return k8sFailure(new K8sOptionError(error.message));
    process.stderr.write(`${pc.red(`fourwall k8s apply: ${(error as Error).message}`)}\n`);
    return EXIT_BOX_FAILED;
  }
}

/** `fourwall k8s run -- CMD`: one command in a sandbox claimed from the warm pool; its exit status. */
export async function k8sRunCommand(flags: K8sFlags, command: string[]): Promise<number> {
  try {
    const options = optionsFrom(flags, command);
    if (options.flavor !== "agent-sandbox")
      throw new K8sOptionError(
        "--flavor: run claims a sandbox from an agent-sandbox warm pool (render and apply the pod flavor with kubectl)",
      );
    const { connect, runInSandbox } = await import("../k8s/cluster.js");
    return await runInSandbox(connect(), options, command, {
      stdout: process.stdout,
      stderr: process.stderr,
      log: say,
    });
  } catch (error) {
    if (error instanceof PolicyError || error instanceof K8sOptionError) return k8sFailure(error);
    process.stderr.write(`${pc.red(`fourwall k8s run: ${(error as Error).message}`)}\n`);
    return EXIT_BOX_FAILED;
  }
}

/**
 * `fourwall k8s prove`: prove's probes in a pod made from the agent template, judged and reported
 * as `fourwall prove` reports (table, --json). 0 when the walls held, 1 on a hole or a failure,
 * 125 when the pod could not be run.
 */
export async function k8sProveCommand(flags: K8sFlags): Promise<number> {
  try {
    const options = optionsFrom(flags);
    const rendered = renderFromFlags(flags);
    const timeoutMs = whole("--timeout", flags.timeout, 180) * 1000;
    const { connect, runPodToEnd } = await import("../k8s/cluster.js");
    const { proveInCluster, DEFAULT_TARGETS } = await import("../prove/targets/cluster.js");
    if (flags.probeListed && !/^https?:\/\/[^\s/]+/.test(flags.probeListed))
      throw new K8sOptionError(
        `--probe-listed: takes an http(s) URL of a host the policy allows, not "${flags.probeListed}"`,
      );
    const { probeSource } = await import("../prove/prove.js");
    const cluster = connect();
    say(`running prove's probes in a pod of the ${options.name} template (${options.runtimeClass})`);
    const { report, exitCode } = await proveInCluster(
      rendered,
      options,
      { policy: flags.policy ?? "(default)", presets: flags.preset, probe: probeSource() },
      (objects) => runPodToEnd(cluster, objects, say, timeoutMs),
      { ...DEFAULT_TARGETS, ...(flags.probeListed ? { listed: flags.probeListed } : {}) },
    );
    const { renderJson } = await import("../prove/render/json.js");
    const { renderTable } = await import("../prove/render/table.js");
    process.stdout.write(
      flags.json
        ? renderJson(report)
        : renderTable(report, {
            colors: pc.isColorSupported && process.stdout.isTTY === true,
            width: process.stdout.columns,
          }),
    );
    return exitCode;
  } catch (error) {
    if (error instanceof PolicyError || error instanceof K8sOptionError) return k8sFailure(error);
    process.stderr.write(`${pc.red(`fourwall k8s prove: ${(error as Error).message}`)}
`);
    return EXIT_BOX_FAILED;
  }
}
