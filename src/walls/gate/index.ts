// The approval gate's public entry: rules, the change-set and its review, approvers, the box's socket.
export * from "./approvers/command.js";
export * from "./approvers/diff.js";
export * from "./approvers/inbox.js";
export { visible } from "./approvers/render.js";
export * from "./approvers/terminal.js";
export * from "./changeset.js";
export * from "./facts.js";
export { openDir } from "./fsat.js";
export * from "./layer.js";
export * from "./paths.js";
export * from "./plan.js";
export * from "./review.js";
export * from "./schema.js";
export * from "./service.js";
export * from "./shell/words.js";
export * from "./socket.js";
export * from "./store.js";
export * from "./types.js";
