import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { Command } from "@commander-js/extra-typings";
import { daemonRunChoice } from "../../../src/box/run-request.js";
import { addRunFlags } from "../../../src/cli/run-flags.js";
import { daemonTakesOptions, flagNames, RUN_FLAGS, runFlagsFor } from "../../../src/plan/run-flags.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** `run` as the CLI defines it: the same table (cli/main.ts), parsed by commander. */
function commanderRun(args: string[]): { command: string[]; options: Record<string, unknown> } {
  let got: { command: string[]; options: Record<string, unknown> } | undefined;
  const program = new Command().exitOverride().enablePositionalOptions();
  addRunFlags(addRunFlags(program.command("run"), "box"), "run")
    .argument("<command...>")
    .passThroughOptions()
    .exitOverride()
    .configureOutput({ writeErr: () => {} })
    .action((command, options) => {
      got = { command, options: options as Record<string, unknown> };
    });
  program.parse(["run", ...args], { from: "user" });
  assert.ok(got, "commander ran the action");
  return got;
}

describe("the one table of `run` flags", () => {
  it("holds every flag `fourwall run --help` lists, each daemon-capable or Node-only with a reason", () => {
    const help = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "run", "--help"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    assert.equal(help.status, 0, help.stderr);
    const listed = [...help.stdout.matchAll(/^ {2}(-\S+?)(?:,? |$)(?:(--\S+))?/gm)]
      .flatMap((m) => [m[1]!, m[2]].filter((n): n is string => !!n && n !== "-h" && n !== "--help"))
      .map((n) => n.replace(/,$/, ""));
    const known = RUN_FLAGS.flatMap(flagNames);
    assert.ok(listed.length >= known.length, `help lists ${listed.join(" ")}`);
    for (const name of listed) assert.ok(known.includes(name), `${name} is in plan/run-flags.ts`);
    for (const flag of RUN_FLAGS) {
      if (flag.daemon === true) {
        assert.ok(["value", "list"].includes(flag.arity), `${flag.spelling}: the daemon parses values only`);
        const [name] = flagNames(flag);
        const choice = daemonRunChoice([name!, "v", "true"]);
        assert.ok(!("fallback" in choice), `${flag.spelling} is taken by the daemon`);
        const landed = (choice.options as unknown as Record<string, unknown>)[flag.key];
        assert.deepEqual(
          landed,
          flag.arity === "list" ? ["v"] : "v",
          `${flag.spelling} lands in ${flag.key}`,
        );
      } else {
        assert.ok(flag.daemon.nodeOnly.length > 10, `${flag.spelling} says why it is Node-only`);
        for (const name of flagNames(flag)) {
          const args = flag.arity === "switch" ? [name, "true"] : [name, "v", "true"];
          assert.ok("fallback" in daemonRunChoice(args), `${name} goes the Node way`);
        }
      }
    }
  });

  it("gives the same options in both parsers, for every command line the daemon takes", () => {
    const taken = [
      ["--", "true"],
      ["true"],
      ["ls", "-p", "x"],
      ["-p", "f.yaml", "-w", "dir", "--", "ls", "-l"],
      ["--policy=f.yaml", "--workdir", "d", "echo", "--", "x"],
      ["-a", "x.test", "--allow=y.test", "-a", "z.test:8443", "sh", "-c", "echo"],
      ["--preset", "node-dev", "--preset", "python-dev", "--resolve", "h=127.0.0.1", "true"],
      ["--approver", "exit 1", "--", "--not-a-flag"],
      ["--approver", "-x", "true"],
      ["--secret", "KEY@api.test", "--secret", "KEY@b.test", "-r", "namespaces", "true"],
      ["-w", "--", "true"],
      ["-", "x"],
    ];
    for (const args of taken) {
      const cli = commanderRun(args);
      const daemon = daemonRunChoice(args);
      assert.ok(!("fallback" in daemon), `${args.join(" ")}: taken by the daemon`);
      assert.deepEqual(daemon.command, cli.command, `${args.join(" ")}: the command`);
      // every option commander set is the daemon's, with the same value, and no other
      const set = (o: object) =>
        Object.fromEntries(
          Object.entries(o).filter(([, v]) => v !== undefined && !(Array.isArray(v) && v.length === 0)),
        );
      assert.deepEqual(set(daemon.options), set(cli.options), `${args.join(" ")}: the options`);
      assert.ok(
        daemonTakesOptions(cli.options),
        `${args.join(" ")}: the Node path agrees the daemon takes it`,
      );
    }
    // A Node-only flag, or a form the daemon does not read (combined short, a value twice): commander
    // parses them, the daemon sends them the Node way.
    const nodeOnly = [
      ["--dry-run", "true"],
      ["--audit", "/tmp/a.jsonl", "true"],
      ["--proxy=squid", "true"],
      ["--ro", "/opt", "true"],
      ["--inbox", "--", "true"],
      ["-v", "true"],
    ];
    for (const args of nodeOnly) {
      assert.equal(daemonTakesOptions(commanderRun(args).options), false, args.join(" "));
      assert.ok("fallback" in daemonRunChoice(args), args.join(" "));
    }
    for (const args of [
      ["-pf.yaml", "true"],
      ["-p", "a", "-p", "b", "true"],
    ]) {
      commanderRun(args);
      assert.ok("fallback" in daemonRunChoice(args), args.join(" "));
    }
  });

  it("runFlagsFor gives back every option it is handed, to commander and to the daemon alike", () => {
    const options = {
      workdir: "/w",
      policy: "p.yaml",
      preset: ["node-dev"],
      allow: ["a.test:80", "b.test"],
      resolve: ["a.test=127.0.0.1"],
      secret: ["KEY@a.test"],
      runtime: "namespaces",
      approver: "sh -c 'exit 1'",
    };
    const args = [...runFlagsFor(options), "--", "true"];
    const daemon = daemonRunChoice(args);
    assert.ok(!("fallback" in daemon), args.join(" "));
    assert.deepEqual(daemon.options, options);
    assert.deepEqual(commanderRun(args).options, { ...options, ro: [] }); // commander: lists default to []
    // a Node-only option is passed too (the daemon then sends the run the Node way), never dropped
    const withRo = runFlagsFor({ ...options, ro: ["/opt/tool"], audit: "/tmp/a.jsonl", verbose: true });
    assert.deepEqual(commanderRun([...withRo, "true"]).options.ro, ["/opt/tool"]);
    assert.equal(commanderRun([...withRo, "true"]).options.audit, "/tmp/a.jsonl");
    assert.ok("fallback" in daemonRunChoice([...withRo, "true"]));
    // an option run has no flag for is refused, not dropped
    assert.throws(() => runFlagsFor({ ...options, env: ["HOME"] }), /no flag for env/);
  });
});
