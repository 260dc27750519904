#!/usr/bin/env node
// The bundle (npm run build) starts fastest; from a source checkout without it, fall back to tsx.
import { existsSync } from "node:fs";

const bundle = new URL("../dist/fourwall.js", import.meta.url);
if (existsSync(bundle)) {
  await import(bundle.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../src/cli/main.ts", import.meta.url).href);
}
