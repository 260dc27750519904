// The isolation wall's public entry: identity, limits, cgroups, the seccomp rules and their BPF.
export * from "./cgroups.js";
export * from "./identity.js";
export * from "./limits.js";
export * from "./schema.js";
export * from "./seccomp/index.js";
