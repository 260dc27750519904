// The filesystem wall's public entry: the mount plan, the scrubbed environment, the host view.
export * from "./env.js";
export * from "./git.js";
export * from "./gitconfig.js";
export * from "./host-view.js";
export * from "./lists.js";
export * from "./mounts.js";
export * from "./passwd.js";
export * from "./plan.js";
export * from "./schema.js";
export * from "./state.js";
export * from "./tool-config.js";
export * from "./visibility.js";
export * from "./walk.js";
