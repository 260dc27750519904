import pc from "picocolors";
import { EXIT_BOX_FAILED } from "../core/errors.js";
import { PolicyError } from "../policy/errors.js";
import { checkPolicyFile } from "../policy/load.js";
import { policyJsonSchema } from "../policy/schema.js";

export function policyCheckCommand(file: string, options: { json?: true }): number {
  try {
    const { policy } = checkPolicyFile(file, process.cwd());
    if (options.json) process.stdout.write(`${JSON.stringify({ ok: true, file, policy }, null, 2)}\n`);
    else process.stdout.write(`${pc.green("ok")} ${file}\n`);
    return 0;
  } catch (error) {
    if (!(error instanceof PolicyError)) throw error;
    if (options.json)
      process.stdout.write(`${JSON.stringify({ ok: false, file, problems: error.problems }, null, 2)}\n`);
    else process.stderr.write(`${pc.red(error.message)}\n`);
    return EXIT_BOX_FAILED;
  }
}

export function policySchemaCommand(): number {
  process.stdout.write(`${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
  return 0;
}
