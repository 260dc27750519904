import { type Command, Option } from "@commander-js/extra-typings";
import { RUN_FLAGS } from "../plan/run-flags.js";

const collect = (value: string, previous: string[]) => [...previous, value];

/**
 * Adds plan/run-flags.ts's flags to a commander command: `box` the box's (run and up), `run`
 * run's own. The one definition the box daemon parses `run` with too.
 */
// biome-ignore lint/suspicious/noExplicitAny: any command, whatever options it already has
export function addRunFlags<C extends Command<any, any, any>>(command: C, which: "box" | "run"): C {
  for (const flag of RUN_FLAGS) {
    if (flag.commands !== which) continue;
    const option = new Option(flag.spelling, flag.description);
    if (flag.choices) option.choices(flag.choices);
    if (flag.arity === "list") option.argParser(collect).default([] as string[]);
    command.addOption(option as never);
  }
  return command;
}
