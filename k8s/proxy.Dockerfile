# fourwall's egress proxy as a container image: `fourwall egress serve` with the policy mounted at
# /etc/fourwall/policy.json (a ConfigMap on Kubernetes). Non-root, and happy on a read-only root.
# Build from the project root after `npm run build`:
#   docker build -f k8s/proxy.Dockerfile -t fourwall-egress .
# BASE must hold Node >= 20 on a glibc system (the splice helper is a glibc binary).
ARG BASE=node:20-bookworm-slim
FROM ${BASE}
COPY package.json /opt/fourwall/package.json
COPY bin/ /opt/fourwall/bin/
COPY dist/ /opt/fourwall/dist/
COPY native/build/fourwall-splice /opt/fourwall/native/build/fourwall-splice
USER 65532:65532
EXPOSE 3128
# The proxy's V8 flags (docs/benchmarks.md, issue 16): a 1 MiB young generation and no optimising
# compiler keep it under 64 MiB with 1,000 tunnels open; its byte paths are native (sockets, TLS,
# llhttp, splice), so JavaScript speed barely shows.
ENTRYPOINT ["node", "--max-semi-space-size=1", "--no-opt", "/opt/fourwall/bin/fourwall.js"]
CMD ["egress", "serve", "-p", "/etc/fourwall/policy.json", "--listen", "0.0.0.0:3128"]
