import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

export interface CanaryCertificate {
  certPem: string;
  keyPem: string;
  /** Where the certificate (its own CA) is written for the probe's --cacert. */
  certPath: string;
}

/**
 * A self-signed certificate for the HTTPS canary, made fresh for each run with openssl (Node has
 * no API to issue an X.509 certificate); it is its own CA, for clients' --cacert. The key stays in
 * `keyDir`, outside anything a box sees. The test suite's origins use it too.
 */
export async function makeCanaryCertificate(
  keyDir: string,
  certPath: string,
  names: string[],
  subject = "fourwall prove canary",
): Promise<CanaryCertificate & { keyPath: string }> {
  const keyPath = path.join(keyDir, "canary-key.pem");
  const san = [...names.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",");
  await promisify(execFile)(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${subject}`,
      "-addext",
      `subjectAltName=${san}`,
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-keyout",
      keyPath,
      "-out",
      certPath,
    ],
    { timeout: 10_000 },
  );
  const [certPem, keyPem] = await Promise.all([readFile(certPath, "utf8"), readFile(keyPath, "utf8")]);
  return { certPem, keyPem, certPath, keyPath };
}
