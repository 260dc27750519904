import { randomBytes } from "node:crypto";
import { WallError } from "../core/errors.js";
import { isUnder } from "../core/paths.js";
import type { Policy } from "../policy/schema.js";
import type { EgressPlan } from "../walls/egress/index.js";
import {
  applyCredentialEnv,
  type BoxNetworkPlan,
  type CredentialBoxPlan,
  CredentialPlanError,
  gitBasicHeader,
  planBoxNetwork,
  planCredentials,
  proxyEnvironment,
} from "../walls/egress/index.js";
import type { FilesystemPlan, HostView } from "../walls/filesystem/index.js";
import {
  FilesystemPlanError,
  gitHeaderSections,
  identityFiles,
  planEnvironment,
  planFilesystem,
} from "../walls/filesystem/index.js";
import { BOX_GATE_SOCKET, type GatePlan, placeholdersInLayer, planGate } from "../walls/gate/index.js";
import type { RuntimeName } from "../walls/isolation/index.js";
import {
  buildSeccompFilter,
  type Identity,
  IdentityError,
  planIdentity,
  planRlimits,
  type Rlimit,
} from "../walls/isolation/index.js";

/** Everything a runtime needs to build one box: the walls' plans, made concrete. */
export interface BoxPlan {
  id: string;
  runtime: RuntimeName;
  command: string[];
  filesystem: FilesystemPlan;
  env: Record<string, string>;
  identity: Identity;
  rlimits: Rlimit[];
  /** Caps on the whole box, applied through a cgroup where fourwall can make one (root mode). */
  boxLimits: { memoryBytes: number; pids: number };
  /** A classic BPF program (struct sock_filter[]), as `bwrap --seccomp` reads it. */
  seccomp: Buffer;
  hostname: string;
  /** The proxy's rules (the egress wall) and how the box reaches the proxy. */
  egress: EgressPlan;
  network: BoxNetworkPlan;
  /** Credentials kept outside the box: sentinels, where the box sees them, the secrets (held, never serialised). */
  credentials: CredentialBoxPlan;
  /** The approval gate: its policy, the copy-on-write layer over the workdir, agent hook settings. */
  gate: GatePlan;
}

export interface BoxContext {
  command: string[];
  workdir: string;
  home: string;
  hostUid: number;
  hostGid: number;
  hostEnv: Record<string, string | undefined>;
  host: HostView;
  /** fourwall's installation (kept visible in the box: agent hooks run it). */
  fourwallRoot?: string;
  /** The compiled egress rules (compileEgressPlan; cached with the policy, so rules are not recompiled per run). */
  egress: EgressPlan;
  id?: string;
  /** How the box runs fourwall itself (agent hooks call `fourwall gate ...`): [node, bin/fourwall.js]. */
  fourwall?: string[];
}

/** Policy + context → BoxPlan. Pure apart from questions to `host`; throws WallError. */
export function planBox(policy: Policy, ctx: BoxContext): BoxPlan {
  const id = ctx.id ?? randomBytes(4).toString("hex");
  let filesystem: FilesystemPlan;
  try {
    filesystem = planFilesystem(policy.filesystem, {
      workdir: ctx.workdir,
      home: ctx.home,
      host: ctx.host,
      runtimeDir: ctx.hostEnv.XDG_RUNTIME_DIR,
      fourwallRoot: ctx.fourwallRoot,
      pathEnv: ctx.hostEnv.PATH,
    });
  } catch (error) {
    if (error instanceof FilesystemPlanError) {
      throw new WallError(
        "filesystem",
        error.message,
        error.fix ?? "change the policy entry (see `fourwall policy check`)",
      );
    }
    throw error;
  }
  let identity: Identity;
  try {
    identity = planIdentity({
      hostUid: ctx.hostUid,
      hostGid: ctx.hostGid,
      boxUid: policy.isolation.rootModeUid,
      home: ctx.home,
      writable: filesystem.writable,
      host: ctx.host,
    });
  } catch (error) {
    if (error instanceof IdentityError)
      throw new WallError("isolation", error.message, "run fourwall as the owner of the workdir");
    throw error;
  }
  // after the identity: the box's own passwd/group name its uid (only on the host's own root)
  if (policy.filesystem.root === "/")
    filesystem.mounts.push(
      ...identityFiles({
        uid: identity.uid,
        gid: identity.gid,
        name: ctx.hostEnv.USER ?? ctx.hostEnv.LOGNAME ?? "box",
        home: filesystem.home,
      }),
    );
  const egress = ctx.egress;
  if (egress.transparent && policy.isolation.runtime !== "namespaces") {
    // transparent mode binds its own hosts file and prepares the box's netns from outside (bwrap only, for now)
    throw new WallError(
      "egress",
      `transparent mode is built for the namespaces runtime, not ${policy.isolation.runtime}`,
      "use --runtime namespaces, or set egress.transparent: false",
    );
  }
  const network = planBoxNetwork(egress, {
    hostname: "fourwall",
    // transparent mode binds its own /etc/hosts and /etc/resolv.conf; bwrap follows a symlink there
    readlink: (p) => (ctx.host.kind(p) === "symlink" ? ctx.host.readlink(p) : undefined),
  });
  const credentials = planBoxCredentials(egress, policy.isolation.runtime, ctx, filesystem);
  const env = withGitCredentials(
    applyCredentialEnvOrThrow(
      planEnvironment(policy.env, ctx.hostEnv, {
        ...proxyEnvironment(network),
        HOME: filesystem.home,
        FOURWALL: "1",
        FOURWALL_BOX: id,
        FOURWALL_GATE_SOCKET: BOX_GATE_SOCKET,
      }),
      egress,
      credentials,
    ),
    filesystem,
    credentials,
  );
  const presets =
    policy.preset === undefined ? [] : Array.isArray(policy.preset) ? policy.preset : [policy.preset];
  const gate = planGate(policy.gate, {
    home: filesystem.home,
    presets,
    fourwall: ctx.fourwall ?? ["fourwall"],
    workdirPlaceholders: placeholdersInLayer(filesystem.placeholders, filesystem.cwd).length > 0,
  });
  // The gate's layer is a filesystem of its own: git in a workdir below its repository's root
  // (a monorepo's subdirectory) must look past it to find the repository (shown read-only).
  if (gate.overlay && filesystem.gitEntries.some((e) => !isUnder(e, filesystem.cwd)))
    env.GIT_DISCOVERY_ACROSS_FILESYSTEM = "1";
  return {
    id,
    runtime: policy.isolation.runtime,
    command: ctx.command,
    filesystem,
    env,
    identity,
    // root mode makes a cgroup for the box's memory (box/supervisor.ts); it puts RLIMIT_DATA back if it cannot
    rlimits: planRlimits(policy.isolation.limits, { cgroupCapsMemory: identity.mode === "root" }),
    boxLimits: { memoryBytes: policy.isolation.limits.memory, pids: policy.isolation.limits.pids },
    seccomp: buildSeccompFilter(),
    hostname: "fourwall",
    egress,
    network,
    credentials,
    gate,
  };
}

/** The credentials' sentinels and secrets; their files join the mounts. WallError when one cannot be kept outside. */
function planBoxCredentials(
  egress: EgressPlan,
  runtime: RuntimeName,
  ctx: BoxContext,
  filesystem: FilesystemPlan,
): CredentialBoxPlan {
  try {
    const credentials = planCredentials(egress, {
      hostEnv: ctx.hostEnv,
      home: ctx.home,
      readFile: (file) => ctx.host.readText(file, 64 * 1024),
      writable: filesystem.writable,
    });
    // (a preset's optional key that is not set binds nothing: then nothing here applies)
    const swapping = credentials.terminates;
    if (swapping && egress.proxy === "squid")
      throw new WallError(
        "egress",
        "credentials and the input gate need fourwall's own proxy (it swaps sentinels and terminates TLS); squid cannot",
        "drop --proxy squid (egress.proxy: builtin), or remove egress.credentials / egress.input",
      );
    if (swapping && runtime === "vm")
      throw new WallError(
        "egress",
        "credentials and the input gate are not built for the microVM runtime yet (the guest does not see the run's CA bundle)",
        "use --runtime namespaces, gvisor or docker",
      );
    for (const b of credentials.bindings)
      if (b.file)
        filesystem.mounts.push({
          type: "file",
          name: `credential-${b.name}`,
          target: b.file,
          content: `${b.sentinel}\n`,
          why: `credential ${b.name}: a sentinel, swapped by the proxy`,
        });
    return credentials;
  } catch (error) {
    if (error instanceof CredentialPlanError)
      throw new WallError(
        "egress",
        error.message,
        "fix egress.credentials or the host's secret (docs/credentials.md)",
      );
    throw error;
  }
}

function applyCredentialEnvOrThrow(
  env: Record<string, string>,
  egress: EgressPlan,
  credentials: CredentialBoxPlan,
): Record<string, string> {
  try {
    return applyCredentialEnv(env, egress, credentials);
  } catch (error) {
    if (error instanceof CredentialPlanError)
      throw new WallError(
        "egress",
        error.message,
        "a secret bound by egress.credentials stays outside the box",
      );
    throw error;
  }
}

/**
 * git over HTTPS: the sentinel goes in the box's generated git config (an extraHeader per bound
 * host); with no generated config (HOME is the user's own), in git's GIT_CONFIG_* variables.
 */
function withGitCredentials(
  env: Record<string, string>,
  filesystem: FilesystemPlan,
  credentials: CredentialBoxPlan,
): Record<string, string> {
  const entries = credentials.bindings.flatMap((b) =>
    b.gitHosts.map((host) => ({ host, header: gitBasicHeader(b.sentinel) })),
  );
  if (entries.length === 0) return env;
  const configs = filesystem.mounts.filter(
    (m): m is Extract<typeof m, { type: "file" }> => m.type === "file" && m.name.startsWith("gitconfig-"),
  );
  const home = configs.find((m) => m.target === `${filesystem.home}/.gitconfig`) ?? configs[0];
  if (home) {
    home.content += gitHeaderSections(entries);
    return env;
  }
  const out = { ...env };
  let n = Number(out.GIT_CONFIG_COUNT ?? 0) || 0;
  for (const e of entries) {
    out[`GIT_CONFIG_KEY_${n}`] = `http.https://${e.host}/.extraHeader`;
    out[`GIT_CONFIG_VALUE_${n}`] = e.header;
    n++;
  }
  out.GIT_CONFIG_COUNT = String(n);
  return out;
}

/**
 * The plan for a root-launched box given its own uid (the supervisor allocates one per box: a
 * hijacked box then shares no uid with another box). Pure: the identity and the box's generated
 * passwd/group lines (fourwall's own text, so the box line is found exactly) follow.
 */
export function withBoxUid(plan: BoxPlan, uid: number): BoxPlan {
  const id = plan.identity;
  if (id.mode !== "root" || id.uid === uid) return plan;
  const mounts = plan.filesystem.mounts.map((m) => {
    if (m.type !== "file" || (m.name !== "passwd" && m.name !== "group")) return m;
    const content =
      m.name === "passwd"
        ? m.content.replace(`:x:${id.uid}:${id.gid}:fourwall box:`, `:x:${uid}:${uid}:fourwall box:`)
        : m.content.replace(new RegExp(`^([^:\\n]+):x:${id.gid}:$`, "m"), `$1:x:${uid}:`);
    return { ...m, content };
  });
  return {
    ...plan,
    identity: { ...id, uid, gid: uid },
    filesystem: { ...plan.filesystem, mounts },
  };
}
