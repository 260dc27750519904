/** The isolation runtimes, weakest first. (No imports here: the CLI reads this at start-up.) */
export const RUNTIME_NAMES = ["namespaces", "gvisor", "docker", "vm"] as const;
export type RuntimeName = (typeof RUNTIME_NAMES)[number];
