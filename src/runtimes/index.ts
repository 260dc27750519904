import type { RuntimeName } from "../core/runtime-names.js";
import { DockerRuntime } from "./docker.js";
import { GvisorRuntime } from "./gvisor.js";
import { NamespacesRuntime } from "./namespaces.js";
import type { Runtime } from "./runtime.js";
import { VmRuntime } from "./vm.js";

/** What the caller chose beyond the runtime's name: with docker, the image to run (`--image`). */
export interface RuntimeChoices {
  image?: string;
}

export function runtimeFor(name: RuntimeName, choices: RuntimeChoices = {}): Runtime {
  switch (name) {
    case "namespaces":
      return new NamespacesRuntime();
    case "gvisor":
      return new GvisorRuntime();
    case "docker":
      return new DockerRuntime(choices.image ? { image: choices.image } : {});
    case "vm":
      return new VmRuntime();
  }
}

export const allRuntimes = (): Runtime[] =>
  (["namespaces", "gvisor", "docker", "vm"] as const).map((name) => runtimeFor(name));
