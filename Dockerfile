# syntax=docker/dockerfile:1
# tag-connector as one compiled Bun binary in an image built FROM scratch: the binary, the C libraries and
# dynamic loader it links against, CA certificates, and nothing else (scripts/rootfs.sh says exactly what).
#   docker build --build-arg COMMIT=$(git rev-parse --short HEAD) -t tag-connector .
#   docker run --rm tag-connector version

FROM oven/bun:1.4.5-debian AS build
WORKDIR /src
RUN test -f /etc/ssl/certs/ca-certificates.crt || { apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/*; }
COPY package.json bun.lock bunfig.toml ./
RUN bun install --frozen-lockfile --production
COPY tsconfig.json ./
COPY src ./src
# What `tag-connector version` reports as the commit (.git is not in the build context).
ARG COMMIT=unknown
RUN bun build --compile --minify-whitespace --minify-syntax --define "TC_BUILD_COMMIT=\"${COMMIT}\"" \
      src/cli.ts --outfile /out/tag-connector \
 && /out/tag-connector version
# The final image's whole file system, in /rootfs: scripts/rootfs.sh, which the tests run too.
COPY scripts/rootfs.sh ./scripts/
RUN sh scripts/rootfs.sh /rootfs /out/tag-connector

FROM scratch
COPY --from=build /rootfs/ /
# Bun trusts its bundled Mozilla roots; this adds the image's bundle (replace the file to add a private CA).
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
# The garbage collector's memory budget (README, "Memory"): without it JavaScriptCore sizes its heap from
# the host's RAM and lets garbage pile up to hundreds of MB under load.
ENV BUN_JSC_forceRAMSize=134217728
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/tag-connector"]
CMD ["extract-tasks"]
