# syntax=docker/dockerfile:1
# streamscore image: `docker build -t streamscore .`, then `docker run streamscore serve` (see
# docker-compose.yml for a full stack). CPU inference only: the onnxruntime-node package ships the
# CPU runtime, and the repo's .npmrc skips its optional CUDA download.

FROM node:24-slim AS build
WORKDIR /app

# Dependencies first, so that editing sources reuses this layer. --ignore-scripts because the root
# "prepare" script is the TypeScript build and the sources are not copied yet; the dependencies'
# own install scripts are not needed (onnxruntime-node's only fetches the CUDA provider, which
# .npmrc skips anyway; protobufjs' only prints a version-scheme warning).
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund

COPY . .
# Build with the dev dependencies, then drop them, and drop onnxruntime-node's prebuilt binaries for
# other platforms (about 240 MB; only linux/<this arch> is loaded). models/ and schemas/ are
# created if absent so that the COPY lines of the runtime stage never fail.
RUN npm run build \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
  && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 -type d ! -name linux \
    -exec rm -rf {} + \
  && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -path '*/linux/*' -type d \
    ! -name "$(node -p process.arch)" -exec rm -rf {} + \
  && mkdir -p models schemas

FROM node:24-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/schemas ./schemas
COPY --from=build /app/models ./models

# The image's unprivileged "node" user, numeric so that runAsNonRoot checks can verify it.
USER 1000:1000
# /metrics, /healthz and /readyz (STREAMSCORE_METRICS_PORT).
EXPOSE 9464
ENTRYPOINT ["node", "--max-semi-space-size=8", "dist/src/cli.js"]
CMD ["serve"]
