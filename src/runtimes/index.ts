import type { RuntimeName } from "../core/runtime-names.js";
import { DockerRuntime } from "./docker.js";
import { GvisorRuntime } from "./gvisor.js";
import { NamespacesRuntime } from "./namespaces.js";
import type { Runtime } from "./runtime.js";
import { VmRuntime } from "./vm.js";

export function runtimeFor(name: RuntimeName): Runtime {
  switch (name) {
    case "namespaces":
      return new NamespacesRuntime();
    case "gvisor":
      return new GvisorRuntime();
    case "docker":
      return new DockerRuntime();
    case "vm":
      return new VmRuntime();
  }
}

export const allRuntimes = (): Runtime[] =>
  (["namespaces", "gvisor", "docker", "vm"] as const).map(runtimeFor);
