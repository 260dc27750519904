import { WallError } from "../box/errors.js";
import { DockerRuntime } from "./docker.js";
import { GvisorRuntime } from "./gvisor.js";
import type { RuntimeName } from "./names.js";
import { NamespacesRuntime } from "./namespaces.js";
import type { Runtime, RuntimeCheck } from "./runtime.js";

/** A runtime fourwall knows of but cannot run yet: doctor says so, run refuses (exit 125). */
class PlannedRuntime implements Runtime {
  constructor(
    readonly name: RuntimeName,
    private readonly what: string,
  ) {}
  check(): RuntimeCheck {
    return { runtime: this.name, available: false, detail: `${this.what}: not implemented in this version`, fix: "use --runtime namespaces" };
  }
  launch(): never {
    const check = this.check();
    throw new WallError("isolation", check.detail, check.fix!);
  }
}

export function runtimeFor(name: RuntimeName): Runtime {
  switch (name) {
    case "namespaces":
      return new NamespacesRuntime();
    case "gvisor":
      return new GvisorRuntime();
    case "docker":
      return new DockerRuntime();
    case "vm":
      return new PlannedRuntime(name, "microVM (QEMU)");
  }
}

export const allRuntimes = (): Runtime[] => (["namespaces", "gvisor", "docker", "vm"] as const).map(runtimeFor);
