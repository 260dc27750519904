import { Command, Option } from "@commander-js/extra-typings";
import { RUNTIME_NAMES } from "../runtimes/names.js";

const collect = (value: string, previous: string[]) => [...previous, value];

const program = new Command()
  .name("fourwall")
  .description("Run an AI agent behind four walls, and prove the walls hold.")
  .version("0.1.0")
  .enablePositionalOptions()
  .showHelpAfterError();

/** The options that build a box, shared by `run` and `up`. */
function withBoxOptions(command: Command) {
  return command
    .option("-w, --workdir <dir>", "the one writable directory (default: the current directory)")
    .option("-p, --policy <file>", "policy file, YAML or JSON (default: ./fourwall.yaml if present)")
    .option("--preset <name>", "add a built-in preset: claude-code | codex | node-dev | python-dev", collect, [] as string[])
    .option("-a, --allow <rule>", "add an egress allow rule: example.com | *.example.com | example.com:8443", collect, [] as string[])
    .option("--resolve <host=ip>", "pin a host name to an address at the proxy (repeatable)", collect, [] as string[])
    .addOption(new Option("-r, --runtime <name>", "isolation runtime").choices(RUNTIME_NAMES))
    .option("--audit <file>", "append every decision as JSON Lines to this file");
}

withBoxOptions(program.command("run").description("run a command inside a box"))
  .option("--dry-run", "print the plan instead of running it")
  .option("--json", "with --dry-run: the plan as JSON")
  .option("-v, --verbose", "say what the box is made of before running")
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

program.command("box-daemon", { hidden: true }).action(async () => {
  const { daemonCommand } = await import("./box.js");
  process.exitCode = await daemonCommand();
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

program
  .command("ls")
  .description("list your persistent boxes")
  .option("--json", "machine-readable output")
  .action(async (options) => {
    const { lsCommand } = await import("./box.js");
    process.exitCode = lsCommand(options);
  });

program
  .command("doctor")
  .description("what this host supports, runtime by runtime, and how to fix what is missing")
  .option("--json", "machine-readable output")
  .action(async (options) => {
    const { doctorCommand } = await import("./doctor.js");
    process.exitCode = await doctorCommand(options);
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
  .option("--preset <name>", "add a built-in preset: claude-code | codex | node-dev | python-dev", collect, [] as string[])
  .option("--only <wall>", "only these walls: isolation | filesystem | egress | gate (repeatable, or a,b)", collect, [] as string[])
  .option("--against <wrapper>", "run the probes under another wrapper instead of a box, e.g. 'sh -c' or 'srt -s {srt-settings} -c'")
  .option("--json", "machine-readable result on stdout")
  .option("--junit <file>", "also write JUnit XML for CI")
  .action(async (options) => {
    const { proveCommand } = await import("./prove.js");
    process.exitCode = await proveCommand(options);
  });

program
  .command("demo")
  .description("an agent does real work in a box, then, hijacked, tries to steal ~/.ssh and phone home")
  .action(async () => {
    const { demoCommand } = await import("./demo.js");
    process.exitCode = await demoCommand();
  });

await program.parseAsync(process.argv);
