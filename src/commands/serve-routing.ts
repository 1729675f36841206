import { RecordDecoder } from '../codec/records.js';
import { RegistrySchemas } from '../codec/schemas.js';
import type { Config } from '../config/options.js';
import { describeError, isStreamscoreError } from '../errors.js';
import { connectAdmin, createKafka } from '../kafka/client.js';
import { RoutingFollower, ensureRoutingTopic, type RoutingUpdate } from '../kafka/routing-topic.js';
import { ModelUnavailableError, type LiveModels } from '../models/live.js';
import { describeSpec } from '../models/routing-record.js';
import { readRouting, type RoutingSpec } from '../models/routing.js';
import type { Logger } from '../telemetry/logger.js';
import type { ServeMetrics } from '../telemetry/metrics.js';
import { registryClient } from './connect.js';

/**
 * Serve's routing from the routing topic: the latest record for the model, applied strictly (a
 * record naming a version this replica cannot load is not applied at all, so the last good routing
 * keeps serving), and the settings' routing while the topic has no record for the model.
 */
export class TopicRouting {
  readonly #config: Config;
  readonly #live: LiveModels;
  readonly #log: Logger;
  readonly #metrics: ServeMetrics;
  readonly #follower: RoutingFollower;
  /** The routing the topic asks for (undefined: the settings'), applied or not. */
  #wanted: RoutingUpdate | undefined;

  constructor(options: { config: Config; live: LiveModels; logger: Logger; metrics: ServeMetrics }) {
    this.#config = options.config;
    this.#live = options.live;
    this.#log = options.logger;
    this.#metrics = options.metrics;
    this.#follower = new RoutingFollower({
      // Patient: a broker outage while following delays routing changes, it never stops serve.
      kafka: createKafka(options.config, options.logger, { patient: true }),
      topic: options.config.routingTopic,
      model: options.config.model,
      decoder: new RecordDecoder(
        new RegistrySchemas(registryClient(options.config)),
        options.config.maxValueBytes,
      ),
      logger: options.logger,
    });
  }

  /** Reads the topic to its end and applies what it holds; then follows it. */
  async start(): Promise<void> {
    const config = this.#config;
    if (config.createTopics) {
      const admin = await connectAdmin(createKafka(config, this.#log), config);
      try {
        if (await ensureRoutingTopic(admin, config.routingTopic))
          this.#log.info({ topics: [config.routingTopic] }, 'created topics');
      } finally {
        await admin.disconnect();
      }
    }
    const latest = await this.#follower.start({
      onUpdate: (update) => this.#update(update),
      onProblem: (problem) => {
        this.#metrics.routingRejected.inc({ model: config.model, reason: problem.reason });
        this.#log.error(
          { model: config.model, topic: config.routingTopic, ...problem },
          `routing record at offset ${problem.offset} not applied; the current routing keeps serving: ${problem.message}`,
        );
      },
    });
    this.#wanted = latest?.entry === undefined ? undefined : latest;
    if (this.#wanted === undefined) {
      this.#log.info(
        { model: config.model, topic: config.routingTopic },
        `no routing record for model ${config.model} on ${config.routingTopic}; serving the settings' routing until one comes`,
      );
    } else if (await this.apply()) {
      return;
    }
    // Nothing from the topic could serve (yet): the settings' routing, if only to start.
    if (this.#live.current === undefined) await this.#live.apply(await readRouting(config));
  }

  /** The routing the replica should run: the topic's latest record, or the settings'. */
  async spec(): Promise<RoutingSpec> {
    return this.#wanted?.entry?.spec ?? (await readRouting(this.#config));
  }

  /**
   * Applies what is wanted; true if it is live. Called for each new record and again when model
   * folders change, so a record naming a version still being copied is applied once it is there.
   */
  async apply(): Promise<boolean> {
    const { model } = this.#config;
    const wanted = this.#wanted;
    const spec = await this.spec();
    try {
      await this.#live.apply(spec, { strict: wanted !== undefined });
    } catch (error) {
      // Unavailable: nothing serves yet and the record's primary cannot either.
      const rejected =
        error instanceof ModelUnavailableError ||
        (isStreamscoreError(error) && error.code === 'ROUTING_INVALID');
      if (!rejected) throw error;
      const reason =
        isStreamscoreError(error) && typeof error.context.reason === 'string'
          ? error.context.reason
          : (this.#live.refusals.get(spec.primary)?.reason ?? 'not_found');
      this.#metrics.routingRejected.inc({ model, reason });
      this.#log.error(
        { model, offset: wanted?.offset, reason },
        `routing record at offset ${wanted?.offset} (${describeSpec(spec)}) not applied; the last good routing keeps serving: ${describeError(error)}`,
      );
      return false;
    }
    this.#metrics.routingRecordTime.set({ model }, (wanted?.entry?.updatedAt ?? 0) / 1_000);
    return true;
  }

  async stop(): Promise<void> {
    await this.#follower.stop();
  }

  async #update(update: RoutingUpdate): Promise<void> {
    this.#wanted = update.entry === undefined ? undefined : update;
    const entry = update.entry;
    this.#log.info(
      {
        model: this.#config.model,
        offset: update.offset,
        updatedBy: entry?.updatedBy,
        reason: entry?.reason,
      },
      entry === undefined
        ? `routing record for ${this.#config.model} deleted; back to the settings' routing`
        : `routing record at offset ${update.offset}: ${describeSpec(entry.spec)} (by ${entry.updatedBy}${entry.reason === '' ? '' : `: ${entry.reason}`})`,
    );
    try {
      await this.apply();
    } catch (error) {
      this.#log.error({ err: error }, `routing not applied: ${describeError(error)}`);
    }
  }
}
