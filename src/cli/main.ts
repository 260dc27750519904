import { Command, CommanderError, Option } from "@commander-js/extra-typings";
import { EXIT_BOX_FAILED } from "../core/errors.js";
import { closeInheritedFds } from "../core/fds.js";
import { RUNTIME_NAMES } from "../core/runtime-names.js";
import { addRunFlags } from "./run-flags.js";

const collect = (value: string, previous: string[]) => [...previous, value];

// First of all: no descriptor the caller held may reach a box (src/core/fds.ts).
closeInheritedFds();

const program = new Command()
  .name("fourwall")
  .description("Run an AI agent behind four walls, and prove the walls hold.")
  .version("0.1.0")
  .enablePositionalOptions()
  // An argument error is one line (commander's, naming what is valid) and exit 125, like every
  // error that leaves nothing run; never the whole help. Inherited by every command defined below.
  .exitOverride();

/** The options that build a box, shared by `run` and `up` (one table: plan/run-flags.ts). */
const withBoxOptions = (command: Command) => addRunFlags(command, "box");

addRunFlags(withBoxOptions(program.command("run").description("run a command inside a box")), "run")
  .argument("<command...>", "the command and its arguments")
  .passThroughOptions()
  .action(async (command, options) => {
    const { runCommand } = await import("./run.js");
    process.exitCode = await runCommand(command, options as never);
  });

withBoxOptions(program.command("up").description("start a persistent box (then: fourwall exec NAME -- CMD)"))
  .requiredOption("-n, --name <name>", "the box's name")
  .action(async (options) => {
    const { upCommand } = await import("./box.js");
    process.exitCode = await upCommand(options as never);
  });

program
  .command("box-daemon", { hidden: true })
  .option("--for-run", "started for `run`: wait longer for the next one")
  .action(async (options: { forRun?: boolean }) => {
    const { daemonCommand } = await import("./box.js");
    process.exitCode = await daemonCommand(options);
  });

program
  .command("exec")
  .description("run a command inside a persistent box")
  .argument("<name>", "the box")
  .argument("<command...>", "the command and its arguments")
  .passThroughOptions()
  .action(async (name, command) => {
    const { execCommand } = await import("./box.js");
    process.exitCode = await execCommand(name, command);
  });

program
  .command("down")
  .description("stop a persistent box; nothing is left behind")
  .argument("<name>", "the box")
  .action(async (name) => {
    const { downCommand } = await import("./box.js");
    process.exitCode = await downCommand(name);
  });

const changes = program
  .command("changes")
  .description("change-sets kept instead of applied (refused, unanswered, a killed run): nothing lost");
changes
  .command("ls")
  .description("list the kept change-sets")
  .option("--json", "machine-readable output")
  .action(async (options) => {
    const { changesLs } = await import("./changes.js");
    process.exitCode = changesLs(options);
  });
changes
  .command("show")
  .description("what a kept change-set holds: each change, its kind, sizes and hashes")
  .argument("<id>", "the change-set (fourwall changes ls)")
  .option("--json", "machine-readable output")
  .action(async (id, options) => {
    const { changesShow } = await import("./changes.js");
    process.exitCode = changesShow(id, options);
  });
changes
  .command("diff")
  .description("unified diffs of a kept change-set against the host's files now (escaped, bounded)")
  .argument("<id>", "the change-set")
  .argument("[paths...]", "only these paths (or directories)")
  .option("--json", "machine-readable output")
  .action(async (id, paths, options) => {
    const { changesDiff } = await import("./changes.js");
    process.exitCode = changesDiff(id, paths, options);
  });
changes
  .command("apply")
  .description("apply a kept change-set (or only PATHs): refuses a host file that changed since the run")
  .argument("<id>", "the change-set")
  .argument("[paths...]", "only these paths (or directories)")
  .option("--force", "apply even over host files that changed since the review")
  .action(async (id, paths, options) => {
    const { changesApply } = await import("./changes.js");
    process.exitCode = changesApply(id, paths, options);
  });
changes
  .command("review")
  .description("review a kept change-set at the terminal, file by file (y/n, d for the diff)")
  .argument("<id>", "the change-set")
  .action(async (id) => {
    const { changesReviewCommand } = await import("./changes.js");
    process.exitCode = await changesReviewCommand(id);
  });
changes
  .command("drop")
  .description("delete a kept change-set for good")
  .argument("<id>", "the change-set")
  .action(async (id) => {
    const { changesDrop } = await import("./changes.js");
    process.exitCode = changesDrop(id);
  });

program
  .command("ls")
  .description("list your persistent boxes")
  .option("--json", "machine-readable output")
  .action(async (options) => {
    const { lsCommand } = await import("./box.js");
    process.exitCode = lsCommand(options);
  });

const mcp = program
  .command("mcp")
  .description("MCP servers, each in a box of its own: wrap one, or rewrite your clients' configs");
withBoxOptions(
  mcp
    .command("wrap")
    .description(
      "run one stdio MCP server in a box (stdout stays the server's JSON-RPC; fourwall speaks on stderr)",
    ),
)
  .option(
    "-e, --env <name>",
    "pass this host variable into the box (repeatable; `mcp install` passes a server's env names)",
    collect,
    [] as string[],
  )
  .option("--grace <seconds>", "after SIGTERM, how long the server has before its box is killed", "5")
  .argument("<command...>", "the server's command and its arguments (after --)")
  .passThroughOptions()
  .action(async (command, options) => {
    const { mcpWrapCommand } = await import("./mcp.js");
    process.exitCode = await mcpWrapCommand(command, options as never);
  });
for (const [name, description] of [
  ["install", "rewrite MCP client configs so every local server runs through `fourwall mcp wrap`"],
  ["uninstall", "undo `mcp install`: each server back to its own command (the backup, byte for byte)"],
] as const) {
  mcp
    .command(name)
    .description(description)
    .option(
      "--client <name>",
      "only this client: claude-code | claude-desktop | codex (repeatable; default: all found)",
      collect,
      [] as string[],
    )
    .option(
      "--config <file>",
      "this config file instead of the clients' usual ones (repeatable)",
      collect,
      [] as string[],
    )
    .option("-p, --policy <file>", "install: the policy file every wrapped server gets")
    .option("--dry-run", "show the rewrite as a diff; change nothing")
    .action(async (options) => {
      const m = await import("./mcp.js");
      process.exitCode = (name === "install" ? m.mcpInstallCommand : m.mcpUninstallCommand)(options as never);
    });
}

program
  .command("doctor")
  .description("what this host supports, runtime by runtime, and how to fix what is missing")
  .option("--json", "machine-readable output")
  .action(async (options) => {
    const { doctorCommand } = await import("./doctor.js");
    process.exitCode = await doctorCommand(options);
  });

const egress = program.command("egress").description("the egress wall: what fourwall installs for a policy");
egress
  .command("render")
  .description(
    "print the squid config, or the nftables / iptables ruleset, fourwall would install (to audit, or paste elsewhere)",
  )
  .addOption(
    new Option("--format <format>", "squid | nftables | iptables")
      .choices(["squid", "nftables", "iptables"])
      .makeOptionMandatory(),
  )
  .option("-p, --policy <file>", "policy file, YAML or JSON (default: ./fourwall.yaml if present)")
  .option("--preset <name>", "add a built-in preset", collect, [] as string[])
  .option("-a, --allow <rule>", "add an egress allow rule", collect, [] as string[])
  .option("--resolve <host=ip>", "pin a host name to an address at the proxy", collect, [] as string[])
  .option("--proxy-address <ip:port>", "where the proxy listens, as the box sees it", "127.0.0.1:3128")
  .action(async (options) => {
    const { egressRenderCommand } = await import("./egress.js");
    process.exitCode = egressRenderCommand(options as never);
  });

egress
  .command("serve")
  .description(
    "run fourwall's own proxy on its own for a policy (loopback or a unix socket), until SIGINT/SIGTERM",
  )
  .option("-p, --policy <file>", "policy file, YAML or JSON (default: ./fourwall.yaml if present)")
  .option("--preset <name>", "add a built-in preset", collect, [] as string[])
  .option("-a, --allow <rule>", "add an egress allow rule", collect, [] as string[])
  .option("--resolve <host=ip>", "pin a host name to an address at the proxy", collect, [] as string[])
  .option(
    "--listen <address>",
    "127.0.0.1:PORT, [::1]:PORT (0: any free port), 0.0.0.0:PORT / [::]:PORT (a walled-off container or pod) or /path/to.sock",
    "127.0.0.1:0",
  )
  .option("--audit <file>", "append every decision as JSON Lines to this file")
  .option(
    "--credentials <file>",
    "the sentinels, secrets and CA of a cluster's proxy (its Secret, written by fourwall k8s apply)",
  )
  .action(async (options) => {
    const { egressServeCommand } = await import("./egress-serve.js");
    process.exitCode = await egressServeCommand(options as never);
  });
egress
  .command("plan", { hidden: true })
  .description("print the compiled egress plan of a policy as JSON (what `egress serve` enforces)")
  .option("-p, --policy <file>", "policy file, YAML or JSON (default: ./fourwall.yaml if present)")
  .option("--preset <name>", "add a built-in preset", collect, [] as string[])
  .option("-a, --allow <rule>", "add an egress allow rule", collect, [] as string[])
  .option("--resolve <host=ip>", "pin a host name to an address at the proxy", collect, [] as string[])
  .action(async (options) => {
    const { egressPlanCommand } = await import("./egress.js");
    process.exitCode = egressPlanCommand(options as never);
  });

/** The options that render a policy for Kubernetes, shared by `k8s render`, `apply`, `run` and `prove`. */
function withK8sOptions(command: Command) {
  return command
    .option("-p, --policy <file>", "policy file, YAML or JSON (default: ./fourwall.yaml if present)")
    .option("--preset <name>", "add a built-in preset", collect, [] as string[])
    .option("-a, --allow <rule>", "add an egress allow rule", collect, [] as string[])
    .option("--flavor <flavor>", "agent-sandbox (SandboxTemplate + SandboxWarmPool) | pod", "agent-sandbox")
    .option("--image <image>", "the agent's container image")
    .option(
      "--proxy-image <image>",
      "the egress proxy's image (docker build -f k8s/proxy.Dockerfile ., or k8s/squid.Dockerfile for --proxy squid)",
    )
    .option(
      "--proxy <backend>",
      "builtin | squid: the proxy the Deployment runs (default: the policy's egress.proxy)",
    )
    .option("--name <name>", "base name of every object", "fourwall")
    .option("--namespace <ns>", "namespace", "default")
    .option("--warm-pool <n>", "agent-sandbox: sandboxes kept warm")
    .option("--runtime-class <name>", "gvisor | kata (the microVM tier)", "gvisor")
    .option("--with-runtime-class", "also render the RuntimeClass object (cluster-scoped)")
    .option("--seccomp <profile>", "runtime-default | fourwall (fourwall's table as a Localhost profile)")
    .option("--workdir-size <quantity>", "size of the writable workdir", "10Gi")
    .option("--workdir-pvc", "a PersistentVolumeClaim for the workdir instead of an emptyDir")
    .option("--tmp-size <quantity>", "size limit of /tmp", "1Gi")
    .option("--proxy-address <ip>", "pin the proxy Service's cluster IP (agents then need no DNS)")
    .option("--proxy-replicas <n>", "proxy replicas")
    .option("--cilium", "also render a CiliumNetworkPolicy holding the proxy to the allowed names");
}

const k8s = program.command("k8s").description("the same policy on Kubernetes (agent-sandbox + gVisor)");
withK8sOptions(k8s.command("render").description("print the manifests for a policy"))
  .option("--out <dir>", "write files that are not objects (the Localhost seccomp profile) here")
  .option("--json", "JSON instead of YAML")
  .action(async (options) => {
    const { k8sRenderCommand } = await import("./k8s.js");
    process.exitCode = k8sRenderCommand(options as never);
  });

withK8sOptions(
  k8s.command("apply").description("server-side apply the manifests to the kubeconfig's cluster"),
).action(async (options) => {
  const { k8sApplyCommand } = await import("./k8s.js");
  process.exitCode = await k8sApplyCommand(options as never);
});
withK8sOptions(k8s.command("run").description("run a command in a sandbox claimed from the warm pool"))
  .argument("<command...>", "the command and its arguments (after --)")
  .passThroughOptions()
  .action(async (command, options) => {
    const { k8sRunCommand } = await import("./k8s.js");
    process.exitCode = await k8sRunCommand(options as never, command);
  });

withK8sOptions(
  k8s
    .command("prove")
    .description("run prove's probes in a pod made from the agent template, on the kubeconfig's cluster"),
)
  .option("--json", "the report as JSON")
  .option("--timeout <seconds>", "how long the probe pod may take to end", "180")
  .option(
    "--probe-listed <url>",
    "a listed origin the egress probe reaches through the proxy (2xx/3xx holds)",
  )
  .action(async (options) => {
    const { k8sProveCommand } = await import("./k8s.js");
    process.exitCode = await k8sProveCommand(options as never);
  });

const policy = program.command("policy").description("check or describe the policy format");
policy
  .command("check")
  .description("validate a policy; errors name the file, line and field")
  .argument("<file>")
  .option("--json", "machine-readable output")
  .action(async (file, options) => {
    const { policyCheckCommand } = await import("./policy.js");
    process.exitCode = policyCheckCommand(file, options);
  });
policy
  .command("schema")
  .description("print the JSON Schema of the policy format (for editors)")
  .action(async () => {
    const { policySchemaCommand } = await import("./policy.js");
    process.exitCode = policySchemaCommand();
  });

policy
  .command("docs")
  .description("print the policy reference (markdown), generated from the schema")
  .action(async () => {
    const { policyDocsMarkdown } = await import("../policy/docs.js");
    process.stdout.write(policyDocsMarkdown());
  });

program
  .command("prove")
  .description("attack a box from inside with the walls' own canaries, and show which walls hold")
  .addOption(new Option("-r, --runtime <name>", "isolation runtime").choices(RUNTIME_NAMES))
  .option("-p, --policy <file>", "policy file, YAML or JSON (default: ./fourwall.yaml if present)")
  .option(
    "--preset <name>",
    "add a built-in preset: claude-code | codex | openclaw | node-dev | python-dev",
    collect,
    [] as string[],
  )
  .option(
    "--only <wall>",
    "only these walls: isolation | filesystem | egress | gate (repeatable, or a,b)",
    collect,
    [] as string[],
  )
  .option(
    "--against <wrapper>",
    "run the probes under another wrapper instead of a box, e.g. 'sh -c' or 'srt -s {srt-settings} -c'",
  )
  .option(
    "--exec",
    "run the probes the way `fourwall exec` runs a command in a persistent box (the fast path)",
  )
  .option("--json", "machine-readable result on stdout")
  .option("--junit <file>", "also write JUnit XML for CI")
  .action(async (options) => {
    const { proveCommand } = await import("./prove.js");
    process.exitCode = await proveCommand(options);
  });

const gate = program.command("gate").description("the approval gate, from inside a box: ask before acting");
gate
  .command("exec")
  .description("ask the gate about a command, then run it (exit 126 when denied)")
  .option("-c, --shell <line>", "a shell command line, run with /bin/sh -c")
  .argument("[command...]", "the command and its arguments")
  .passThroughOptions()
  .action(async (command, options) => {
    const { gateExecCommand } = await import("./gate.js");
    process.exitCode = await gateExecCommand(command, options);
  });
gate
  .command("claude-hook")
  .description("Claude Code PreToolUse hook (wired by the claude-code preset)")
  .action(async () => {
    const { claudeHookCommand } = await import("./gate.js");
    process.exitCode = await claudeHookCommand();
  });
gate
  .command("codex-hook")
  .description("Codex PreToolUse hook (wired by the codex preset)")
  .action(async () => {
    const { codexHookCommand } = await import("./gate.js");
    process.exitCode = await codexHookCommand();
  });
gate
  .command("classify")
  .description("what the command classifier makes of a shell command line (exit 0 = read-only)")
  .argument("<line>")
  .option("--json", "the full classification")
  .action(async (line, options) => {
    const { gateClassifyCommand } = await import("./gate.js");
    process.exitCode = await gateClassifyCommand(line, options);
  });

program
  .command("demo")
  .description("an agent does real work in a box, then, hijacked, tries to steal ~/.ssh and phone home")
  .action(async () => {
    const { demoCommand } = await import("./demo.js");
    process.exitCode = await demoCommand();
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (!(error instanceof CommanderError)) throw error;
  // help and --version end with their own status; anything else commander refused is a usage error
  const own = ["commander.helpDisplayed", "commander.help", "commander.version"].includes(error.code);
  process.exitCode = own ? error.exitCode : EXIT_BOX_FAILED;
}
