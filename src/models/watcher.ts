import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import type { LiveModels } from './live.js';
import type { RoutingSpec } from './routing.js';

/**
 * Hot reload: every interval, a cheap fingerprint of the routing file and of the model's version
 * folders; when it changes, the routing is read again and applied. Polling (not fs.watch) because
 * it behaves the same on every file system, including mounted volumes where events never come.
 */
export class ModelWatcher {
  readonly #live: LiveModels;
  readonly #readSpec: () => Promise<RoutingSpec>;
  readonly #apply: (spec: RoutingSpec) => Promise<unknown>;
  readonly #routingFile: string;
  readonly #intervalMs: number;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #tick: Promise<void> | undefined;
  #fingerprint = '';

  constructor(options: {
    live: LiveModels;
    readSpec: () => Promise<RoutingSpec>;
    /** How a spec is made live (default: LiveModels.apply). */
    apply?: (spec: RoutingSpec) => Promise<unknown>;
    routingFile: string;
    intervalMs: number;
    logger: Logger;
  }) {
    this.#live = options.live;
    this.#readSpec = options.readSpec;
    this.#apply = options.apply ?? ((spec) => this.#live.apply(spec));
    this.#routingFile = options.routingFile;
    this.#intervalMs = options.intervalMs;
    this.#log = options.logger;
  }

  /** Takes the current state as the baseline, then checks every interval. */
  async start(): Promise<void> {
    this.#fingerprint = await this.#currentFingerprint();
    if (this.#intervalMs === 0) return;
    this.#timer = setInterval(() => {
      this.#tick ??= this.check().finally(() => (this.#tick = undefined));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  /** One check; applies the routing again if anything changed. Never throws. */
  async check(): Promise<void> {
    try {
      const fingerprint = await this.#currentFingerprint();
      if (fingerprint === this.#fingerprint) return;
      this.#fingerprint = fingerprint;
      await this.#apply(await this.#readSpec());
    } catch (error) {
      // A broken routing file or a folder being copied: keep serving what is live, say why once.
      this.#log.error(
        { err: error },
        `model reload failed; the current routing keeps serving: ${describeError(error)}`,
      );
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#tick;
  }

  async #currentFingerprint(): Promise<string> {
    const parts: string[] = [];
    if (this.#routingFile !== '')
      parts.push(await readFile(this.#routingFile, 'utf8').catch(() => '<unreadable>'));
    const { repository, model } = this.#live;
    for (const version of await repository.listVersions(model).catch(() => [])) {
      for (const file of ['model.json', 'model.onnx']) {
        const info = await stat(join(repository.root, model, version, file)).catch(() => undefined);
        parts.push(`${version}/${file}:${info ? `${info.size}:${info.mtimeMs}` : '-'}`);
      }
    }
    return parts.join('\n');
  }
}
