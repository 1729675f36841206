import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { StreamscoreError, describeError, isStreamscoreError } from '../errors.js';
import { ModelRunner, type RunnerOptions } from '../inference/runner.js';
import type { Logger } from '../telemetry/logger.js';
import { ModelRepository } from './repository.js';
import { checkVariant } from './variant.js';
import type { RoutingSpec } from './routing.js';

export type Route = 'primary' | 'canary' | 'shadow';

/** Resolved routing: loaded, validated versions. */
export interface Routing {
  readonly primary: ModelRunner;
  readonly canary: { readonly runner: ModelRunner; readonly share: number } | undefined;
  readonly shadows: readonly ModelRunner[];
  /** Scores what the primary or canary fails on; undefined when none is routed (or it failed to load). */
  readonly fallback?: ModelRunner | undefined;
}

/** A routing in use; release() once the work that read it is done. */
export interface Hold {
  readonly routing: Routing;
  /** A second, independent hold on the same routing (for work that outlives the first). */
  retain(): Hold;
  release(): void;
}

export interface LiveModelsEvents {
  loaded(version: string, seconds: number): void;
  refused(version: string, reason: string, message: string): void;
  /** A version's inference worker died and was replaced. */
  restarted(version: string): void;
  switched(routing: Routing, previous: Routing | undefined): void;
}

interface Loaded {
  runner: ModelRunner;
  refs: number;
  retired: boolean;
}

/**
 * The versions of one model that take traffic. apply() loads and validates what a routing spec
 * needs, then swaps the whole routing at once; readers take a Hold per batch, so a batch is scored
 * by exactly one routing and a session is released only when no batch holds it any more.
 *
 * A version that fails to load or validate never takes traffic: a refused primary keeps the
 * current one serving (with 'latest', the highest version that is valid), a refused canary or
 * shadow is left out. A refusal is remembered until the version's files change, so a bad folder
 * is reported once, not at every check.
 */
export class LiveModels {
  readonly repository: ModelRepository;
  readonly model: string;
  readonly #options: RunnerOptions;
  readonly #events: LiveModelsEvents;
  readonly #log: Logger;
  readonly #loaded = new Map<string, Loaded>();
  readonly #refused = new Map<string, { signature: string; reason: string; message: string }>();
  #current: Routing | undefined;
  #applying: Promise<Routing> | undefined;

  constructor(options: {
    repository: ModelRepository;
    model: string;
    runner: RunnerOptions;
    logger: Logger;
    events: LiveModelsEvents;
  }) {
    this.repository = options.repository;
    this.model = options.model;
    this.#options = options.runner;
    this.#log = options.logger;
    this.#events = options.events;
  }

  get current(): Routing | undefined {
    return this.#current;
  }

  /** Versions refused and why (until their files change). */
  get refusals(): ReadonlyMap<string, { reason: string; message: string }> {
    return this.#refused;
  }

  hold(): Hold {
    const routing = this.#current;
    if (routing === undefined) throw new Error('LiveModels.hold before the first apply()');
    return this.#hold(routing);
  }

  /**
   * Makes a spec live. Throws only when nothing could serve at all (no valid primary and none
   * serving yet); otherwise keeps the best valid routing and reports refusals through events.
   * Calls are serialised. With strict, a spec any of whose versions is refused is not applied at
   * all: the current routing keeps serving and ROUTING_INVALID says which versions and why.
   */
  async apply(spec: RoutingSpec, options: { strict?: boolean } = {}): Promise<Routing> {
    const strict = options.strict ?? false;
    const previous = this.#applying ?? Promise.resolve(this.#current);
    const next = previous.then(
      () => this.#apply(spec, strict),
      () => this.#apply(spec, strict),
    );
    this.#applying = next;
    try {
      return await next;
    } finally {
      if (this.#applying === next) this.#applying = undefined;
    }
  }

  /** Releases every session; the instance is unusable afterwards. */
  async close(): Promise<void> {
    await this.#applying?.catch(() => undefined);
    this.#current = undefined;
    const runners = [...this.#loaded.values()].map((loaded) => loaded.runner);
    this.#loaded.clear();
    await Promise.all(runners.map((runner) => runner.release()));
  }

  async #apply(spec: RoutingSpec, strict: boolean): Promise<Routing> {
    const versions = await this.repository.listVersions(this.model);
    const missing: string[] = [];
    const load = async (version: string) => {
      const runner = await this.#load(version, versions);
      if (runner === undefined) missing.push(version);
      return runner;
    };
    const primary = await this.#resolvePrimary(spec.primary, versions);
    if (spec.primary !== 'latest' && primary.metadata.version !== spec.primary) missing.push(spec.primary);
    let canary: Routing['canary'];
    if (spec.canary !== undefined && spec.canary.share > 0) {
      const runner = await load(spec.canary.version);
      if (runner !== undefined) canary = { runner, share: spec.canary.share };
    }
    const shadows: ModelRunner[] = [];
    for (const version of spec.shadows) {
      const runner = await load(version);
      if (runner !== undefined) shadows.push(runner);
    }
    const fallback = spec.fallback === undefined ? undefined : await load(spec.fallback);
    if (strict && missing.length > 0) {
      // What this spec loaded beyond the current routing is released again.
      if (this.#current !== undefined) await this.#retireUnused(this.#current);
      const why = missing.map((v) => `${v}: ${this.#refused.get(v)?.message ?? 'no valid version'}`);
      throw new StreamscoreError(
        'ROUTING_INVALID',
        `model "${this.model}": the routing names versions that cannot serve (${why.join('; ')})`,
        { context: { model: this.model, reason: this.#refused.get(missing[0]!)?.reason ?? 'not_found' } },
      );
    }
    const routing: Routing = { primary, canary, shadows, fallback };
    const previous = this.#current;
    if (previous !== undefined && sameRouting(previous, routing)) return previous;
    this.#current = routing;
    this.#events.switched(routing, previous);
    await this.#retireUnused(routing);
    return routing;
  }

  async #resolvePrimary(policy: string, versions: string[]): Promise<ModelRunner> {
    const candidates = policy === 'latest' ? [...versions].reverse() : [policy];
    for (const version of candidates) {
      const runner = await this.#load(version, versions);
      if (runner !== undefined) return runner;
    }
    if (this.#current !== undefined) {
      this.#log.warn(
        { model: this.model, policy, serving: this.#current.primary.metadata.version },
        'no valid version for the primary policy; the current primary keeps serving',
      );
      return this.#current.primary;
    }
    const tried = candidates.map((v) => `${v}: ${this.#refused.get(v)?.message ?? 'not on disk'}`).join('; ');
    const onDisk =
      versions.length > 0
        ? `versions on disk: ${versions.join(', ')}`
        : `no versions under ${join(this.repository.root, this.model)}`;
    throw new ModelUnavailableError(
      `No valid version of model "${this.model}" for primary "${policy}" (${tried ? `${tried}; ` : ''}${onDisk})`,
    );
  }

  /** A loaded runner for the version, or undefined if it is absent or refused. */
  async #load(version: string, versions: string[]): Promise<ModelRunner | undefined> {
    const loaded = this.#loaded.get(version);
    if (loaded !== undefined && !loaded.retired) return loaded.runner;
    if (!versions.includes(version)) {
      this.#refuse(version, 'not_found', `version "${version}" is not on disk`, '');
      return undefined;
    }
    const signature = await this.#signature(version);
    const refused = this.#refused.get(version);
    if (refused !== undefined && refused.signature === signature) return undefined;
    const started = performance.now();
    try {
      const runner = await ModelRunner.load(await this.repository.load(this.model, version), {
        ...this.#options,
        hooks: { onRestart: () => this.#events.restarted(version) },
      });
      try {
        await checkVariant(this.repository, runner, this.#options);
      } catch (error) {
        await runner.release();
        throw error;
      }
      this.#refused.delete(version);
      this.#loaded.set(version, { runner, refs: 0, retired: false });
      this.#events.loaded(version, (performance.now() - started) / 1_000);
      return runner;
    } catch (error) {
      this.#refuse(version, refusalReason(error), describeError(error), signature);
      return undefined;
    }
  }

  #refuse(version: string, reason: string, message: string, signature: string): void {
    const previous = this.#refused.get(version);
    this.#refused.set(version, { signature, reason, message });
    if (previous?.signature !== signature || previous.message !== message) {
      this.#events.refused(version, reason, message);
    }
  }

  /** Changes whenever the version's files change (those model.json lists too), so a fixed folder is tried again. */
  async #signature(version: string): Promise<string> {
    const dir = join(this.repository.root, this.model, version);
    const files = ['model.json', 'model.onnx', ...(await listedFiles(join(dir, 'model.json')))];
    const parts: string[] = [];
    for (const file of files) {
      const info = await stat(join(dir, file)).catch(() => undefined);
      parts.push(info === undefined ? '-' : `${info.size}:${info.mtimeMs}`);
    }
    return parts.join('|');
  }

  #hold(routing: Routing): Hold {
    const runners = runnersOf(routing);
    for (const runner of runners) this.#entry(runner).refs += 1;
    let released = false;
    return {
      routing,
      retain: () => this.#hold(routing),
      release: () => {
        if (released) return;
        released = true;
        for (const runner of runners) {
          const entry = this.#entry(runner);
          entry.refs -= 1;
          if (entry.retired && entry.refs === 0) this.#dispose(runner);
        }
      },
    };
  }

  #entry(runner: ModelRunner): Loaded {
    const entry = this.#loaded.get(runner.metadata.version);
    if (entry?.runner === runner) return entry;
    for (const candidate of this.#retired) if (candidate.runner === runner) return candidate;
    throw new Error(`LiveModels: runner ${runner.metadata.version} is not tracked`);
  }

  readonly #retired = new Set<Loaded>();

  async #retireUnused(routing: Routing): Promise<void> {
    const live = new Set(runnersOf(routing));
    const toRelease: ModelRunner[] = [];
    for (const [version, entry] of this.#loaded) {
      if (live.has(entry.runner)) continue;
      this.#loaded.delete(version);
      entry.retired = true;
      if (entry.refs === 0) toRelease.push(entry.runner);
      else this.#retired.add(entry);
    }
    await Promise.all(toRelease.map((runner) => runner.release()));
  }

  #dispose(runner: ModelRunner): void {
    for (const entry of this.#retired) if (entry.runner === runner) this.#retired.delete(entry);
    runner
      .release()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'releasing a model session failed'));
  }
}

/** No version could serve as primary: start-up cannot go on. */
export class ModelUnavailableError extends Error {
  override readonly name = 'ModelUnavailableError';
}

function runnersOf(routing: Routing): ModelRunner[] {
  const runners = [routing.primary, ...routing.shadows];
  if (routing.canary !== undefined) runners.push(routing.canary.runner);
  if (routing.fallback !== undefined) runners.push(routing.fallback);
  return [...new Set(runners)];
}

function sameRouting(a: Routing, b: Routing): boolean {
  return (
    a.primary === b.primary &&
    a.canary?.runner === b.canary?.runner &&
    a.canary?.share === b.canary?.share &&
    a.fallback === b.fallback &&
    a.shadows.length === b.shadows.length &&
    a.shadows.every((runner, i) => runner === b.shadows[i])
  );
}

/** The paths in model.json's "files", or none when it cannot be read (the load then says why). */
async function listedFiles(metadataPath: string): Promise<string[]> {
  try {
    const files: unknown = (JSON.parse(await readFile(metadataPath, 'utf8')) as { files?: unknown }).files;
    if (!Array.isArray(files)) return [];
    return files.flatMap((file: unknown) =>
      typeof file === 'object' && file !== null && typeof (file as { path?: unknown }).path === 'string'
        ? [(file as { path: string }).path]
        : [],
    );
  } catch {
    return [];
  }
}

/** A low-cardinality label for a refusal: the reason the raising code put in the error's context. */
export function refusalReason(error: unknown): string {
  if (isStreamscoreError(error)) {
    if (error.code !== 'MODEL_INVALID') return error.code.toLowerCase();
    if (typeof error.context.reason === 'string') return error.context.reason;
  }
  return 'invalid';
}
