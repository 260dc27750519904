# squid as fourwall's in-cluster egress proxy (`fourwall k8s render|apply --proxy squid`): Debian's
# squid built with OpenSSL (it peeks at TLS ClientHellos, decrypts nothing) and openssl for the
# throwaway peek-only certificate made at start. The Deployment's command does the rest: it copies
# the configuration generated from the policy (a ConfigMap at /etc/fourwall) into its emptyDir and
# runs squid in the foreground as a non-root user, happy on a read-only root.
#   docker build -f k8s/squid.Dockerfile -t fourwall-egress-squid .
# A BASE that already has squid and openssl skips apt (the tests build on one made from the host's
# own squid, with no mirror to reach); debian:bookworm-slim always installs them.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN if command -v squid >/dev/null && command -v openssl >/dev/null; then exit 0; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends squid-openssl openssl \
 && rm -rf /var/lib/apt/lists/*
USER 65532:65532
EXPOSE 3128
