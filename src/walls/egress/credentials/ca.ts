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
  // not extractable: the CA key signs inside WebCrypto and can never be exported, even by this process
  const caKeys = (await webcrypto.subtle.generateKey(ALG, false, ["sign", "verify"])) as CryptoKeyPair;
  const caCert = await selfSignedCa(
    caKeys,
    `CN=fourwall run ${runId} CA, O=fourwall (per-run, key in memory only)`,
    7,
  );
  return caSigning(caKeys, caCert);
}

/**
 * A CA for a cluster's proxies (`fourwall k8s apply`): its key must reach every proxy replica, so it
 * is exported once, here, into the proxies' Secret; the agents get the certificate only.
 */
export async function createClusterCa(
  name: string,
  days = 365,
): Promise<{ certPem: string; keyPem: string }> {
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const caCert = await selfSignedCa(
    caKeys,
    `CN=fourwall ${name} cluster CA, O=fourwall (key in the proxies' Secret only)`,
    days,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", caKeys.privateKey));
  return { certPem: `${caCert.toString("pem")}\n`, keyPem: pem("PRIVATE KEY", pkcs8) };
}

/** The cluster CA read back in the proxy (its Secret): the key is imported non-extractable. */
export async function importCa(certPem: string, keyPem: string): Promise<RunCa> {
  const caCert = new x509.X509Certificate(certPem);
  const der = Buffer.from(keyPem.replace(/-----[A-Z ]+-----|\s/g, ""), "base64");
  const privateKey = await webcrypto.subtle.importKey("pkcs8", der, ALG, false, ["sign"]);
  der.fill(0);
  const publicKey = await caCert.publicKey.export(ALG, ["verify"]);
  return caSigning({ privateKey, publicKey } as CryptoKeyPair, caCert);
}

const pem = (label: string, der: Buffer): string => {
  const text =
    `-----BEGIN ${label}-----\n${der.toString("base64").replace(/(.{64})/g, "$1\n")}\n-----END ${label}-----\n`.replace(
      /\n\n-----END/,
      "\n-----END",
    );
  der.fill(0);
  return text;
};

async function selfSignedCa(caKeys: CryptoKeyPair, name: string, days: number) {
  const now = Date.now();
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + days * DAY),
    keys: caKeys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });
}

/** Issues leaves per host under a CA (its keys, its certificate). */
async function caSigning(caKeys: CryptoKeyPair, caCert: x509.X509Certificate): Promise<RunCa> {
  const subtle = webcrypto.subtle;
  const now = Date.now();
  // One leaf key for every host (a leaf per host would cost a key generation each).
  const leafKeys = (await subtle.generateKey(ALG, true, ["sign", "verify"])) as CryptoKeyPair;
  const leafKeyPem = pem("PRIVATE KEY", Buffer.from(await subtle.exportKey("pkcs8", leafKeys.privateKey)));
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
