import pc from "picocolors";
import { writeOutputFile } from "../core/output-file.js";
import { runProve } from "../prove/prove.js";
import { renderJson } from "../prove/render/json.js";
import { renderJUnit } from "../prove/render/junit.js";
import { renderTable } from "../prove/render/table.js";
import { PROVE_WALLS, type ProveWall } from "../prove/types.js";

export interface ProveCommandOptions {
  runtime?: string;
  policy?: string;
  preset: string[];
  only: string[];
  against?: string;
  exec?: true;
  json?: true;
  junit?: string;
}

/** prove's own trouble (not the box's): a bad flag, a canary that could not start at all. */
const EXIT_PROVE_ERROR = 2;

/** `--only isolation,egress` and repeated `--only` both work. */
export function parseWalls(values: string[]): ProveWall[] | string {
  const walls = values
    .flatMap((v) => v.split(","))
    .map((v) => v.trim())
    .filter(Boolean);
  const unknown = walls.filter((w) => !(PROVE_WALLS as readonly string[]).includes(w));
  if (unknown.length > 0) return `unknown wall ${unknown.join(", ")} (walls: ${PROVE_WALLS.join(", ")})`;
  return [...new Set(walls)] as ProveWall[];
}

/** `fourwall prove`: 0 when every applicable probe passed, 1 on a hole or failure, 125 when no box could be built. */
export async function proveCommand(options: ProveCommandOptions): Promise<number> {
  const only = parseWalls(options.only);
  if (typeof only === "string") {
    process.stderr.write(`${pc.red(`fourwall prove: ${only}`)}\n`);
    return EXIT_PROVE_ERROR;
  }
  const progress = (message: string) => process.stderr.write(pc.dim(`fourwall prove: ${message}…\n`));
  let outcome: Awaited<ReturnType<typeof runProve>>;
  try {
    outcome = await runProve({
      policy: options.policy,
      presets: options.preset,
      runtime: options.runtime,
      cwd: process.cwd(),
      only,
      against: options.against,
      exec: options.exec === true,
      progress,
    });
  } catch (error) {
    process.stderr.write(`${pc.red(`fourwall prove: ${(error as Error).message}`)}\n`);
    return EXIT_PROVE_ERROR;
  }
  const { report, exitCode } = outcome;
  if (outcome.boxFailed !== undefined) {
    // Nothing ran: say so once, with the fix, not a row per probe that never started (the JSON
    // report has no results and the reason in its notes; no JUnit file, so CI sees no tests).
    process.stderr.write(
      `${pc.red("fourwall prove: the box could not be built, nothing was proven")}\n${outcome.boxFailed}\n`,
    );
    if (options.json) process.stdout.write(renderJson(report));
    return exitCode;
  }
  if (options.junit) {
    try {
      writeOutputFile(options.junit, renderJUnit(report));
    } catch (error) {
      process.stderr.write(`${pc.red(`fourwall prove: --junit: ${(error as Error).message}`)}\n`);
      return EXIT_PROVE_ERROR;
    }
  }
  process.stdout.write(
    options.json
      ? renderJson(report)
      : renderTable(report, {
          colors: pc.isColorSupported && process.stdout.isTTY === true,
          width: process.stdout.columns,
        }),
  );
  return exitCode;
}
