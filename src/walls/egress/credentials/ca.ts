import "reflect-metadata"; // @peculiar/x509's dependency injection needs it before it loads
import { webcrypto } from "node:crypto";
import { isIP } from "node:net";
import { createSecureContext, type SecureContext } from "node:tls";
import * as x509 from "@peculiar/x509";

// The run's certificate authority: made when the proxy starts, held only in this process's memory
// (the private keys are CryptoKeys; the leaf key's PEM lives in the TLS contexts), never written
// anywhere, gone when fourwall exits, however it exits. The box trusts its certificate through the CA
// bundle in the run dir; it never sees a key. Leaves are made per host on first use (~25 ms), for
// the hosts the proxy terminates TLS for only.

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const DAY = 24 * 60 * 60 * 1000;

export interface RunCa {
  /** The CA certificate (PEM): the only part that leaves this process (into the box's bundle). */
  certPem: string;
  /** A TLS context serving a leaf for `host` (name or IP), made once per host. */
  contextFor(host: string): Promise<SecureContext>;
}

const serial = () =>
  Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString("hex")
    .replace(/^[89a-f]/, "1");

export async function createRunCa(runId: string): Promise<RunCa> {
  const subtle = webcrypto.subtle;
  const now = Date.now();
  // not extractable: the CA key signs inside WebCrypto and can never be exported, even by this process
  const caKeys = (await subtle.generateKey(ALG, false, ["sign", "verify"])) as CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=fourwall run ${runId} CA, O=fourwall (per-run, key in memory only)`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 7 * DAY),
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
  // One leaf key for every host of the run (a leaf per host would cost a key generation each).
  const leafKeys = (await subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const pkcs8 = Buffer.from(await subtle.exportKey("pkcs8", leafKeys.privateKey));
  const leafKeyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END PRIVATE KEY-----\n`;
  pkcs8.fill(0);
  const contexts = new Map<string, Promise<SecureContext>>();
  const makeLeaf = async (host: string): Promise<SecureContext> => {
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${host.length <= 64 ? host : "fourwall leaf"}`,
      issuer: caCert.subject,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + 7 * DAY),
      signingKey: caKeys.privateKey,
      publicKey: leafKeys.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([
          isIP(host) ? { type: "ip", value: host } : { type: "dns", value: host },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
      ],
    });
    return createSecureContext({
      key: leafKeyPem,
      cert: `${cert.toString("pem")}\n${caCert.toString("pem")}\n`,
    });
  };
  return {
    certPem: `${caCert.toString("pem")}\n`,
    contextFor(host) {
      let ctx = contexts.get(host);
      if (!ctx) {
        ctx = makeLeaf(host);
        contexts.set(host, ctx);
        ctx.catch(() => contexts.delete(host));
      }
      return ctx;
    },
  };
}
