import { DEFAULT_ENV_PASS } from "./lists.js";
import type { EnvPolicy } from "./schema.js";

const matches = (name: string, rule: string) =>
  rule.endsWith("*") ? name.startsWith(rule.slice(0, -1)) : name === rule;

/**
 * The box's environment: only allowlisted host variables pass (PATH, HOME, LANG, TERM, TZ, USER
 * and the policy's names), then the policy's and fourwall's own values are set. SSH_AUTH_SOCK,
 * cloud and API tokens never pass unless the policy names them.
 */
export function planEnvironment(
  policy: EnvPolicy,
  hostEnv: Record<string, string | undefined>,
  fixed: Record<string, string>,
): Record<string, string> {
  const rules = [...DEFAULT_ENV_PASS, ...policy.pass];
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(hostEnv)) {
    if (value !== undefined && rules.some((rule) => matches(name, rule))) env[name] = value;
  }
  env.PATH ??= "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  return { ...env, ...policy.set, ...fixed };
}
