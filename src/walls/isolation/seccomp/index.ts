// The seccomp wing of the isolation wall: the rule table (data), its BPF compiler, the syscall numbers.
export {
  BPF_MAXINSNS,
  buildSeccompFilter,
  hostSeccompArch,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
} from "./bpf.js";
export * from "./rules.js";
export * from "./syscalls.js";
