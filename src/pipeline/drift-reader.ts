import { RecordDecoder } from '../codec/records.js';
import { RequestDecoder, type DecoderLimits, type FeatureEvent } from '../codec/requests.js';
import type { SchemaSource } from '../codec/schemas.js';
import type { DriftMonitor } from '../drift/monitor.js';
import type { DriftReport } from '../drift/report.js';
import { describeError } from '../errors.js';
import type { Logger } from '../telemetry/logger.js';
import { STALLS } from './health.js';
import { untilRegistryAnswers, type RegistryOutcome } from './registry-wait.js';

/** The four topics the drift monitor reads. */
export interface DriftTopics {
  requests: string;
  predictions: string;
  shadow: string;
  outcomes: string;
}

/** One consumed record on its way into the monitor. */
export interface DriftRecordContext {
  readonly topic: string;
  readonly value: Buffer | null;
  /** Keeps the group membership alive while reading the record waits (a registry outage). */
  heartbeat(): Promise<void>;
  /** False once the record should be given up: stopping, or the partition is no longer ours. */
  live(): boolean;
}

type Decoded =
  { ok: true; event: FeatureEvent } | { ok: true; record: unknown } | { ok: false; message: string };

/**
 * decode -> dispatch, one record at a time, without Kafka: a record becomes input of the monitor,
 * or a skip counted by the monitor. Requests are read as serve reads them (RequestDecoder: only the
 * FeatureEvent fields are interpreted, so a field serve ignores cannot make the monitor skip an
 * event serve scored); predictions, shadow records and outcomes are read whole (RecordDecoder).
 *
 * A registry that does not answer is not the record's fault: the record waits, with heartbeats,
 * until the registry answers or the record is given up, so that an outage never shows up as skips
 * (nor as drift, from the windows missing those records). A registry that refuses us (credentials,
 * TLS) will not change by waiting and goes to onFatal.
 */
export class DriftReader {
  readonly #topics: DriftTopics;
  readonly #monitor: DriftMonitor;
  readonly #requests: RequestDecoder;
  readonly #records: RecordDecoder;
  readonly #log: Logger;
  readonly #onFatal: (error: unknown) => void;
  #stalledSince: number | undefined;

  constructor(options: {
    topics: DriftTopics;
    schemas: SchemaSource;
    limits: DecoderLimits;
    monitor: DriftMonitor;
    logger: Logger;
    onFatal: (error: unknown) => void;
  }) {
    this.#topics = options.topics;
    this.#monitor = options.monitor;
    // No required features: the monitor reads whichever features each version's profile names.
    this.#requests = new RequestDecoder(options.schemas, options.limits, []);
    this.#records = new RecordDecoder(options.schemas, options.limits.maxValueBytes);
    this.#log = options.logger;
    this.#onFatal = options.onFatal;
  }

  /** True while records wait for the schema registry to answer. */
  get waiting(): boolean {
    return this.#stalledSince !== undefined;
  }

  /**
   * Reads one record into the monitor: the reports of the windows it closed (none for a skipped
   * record), or undefined when the record was given up unread (stopping, or a fatal registry
   * failure), so that it is read again by whoever reads the partition next.
   */
  async read(context: DriftRecordContext): Promise<DriftReport[] | undefined> {
    let result: RegistryOutcome<Decoded>;
    try {
      result = await untilRegistryAnswers(
        () => this.#decode(context.topic, context.value),
        context,
        (error) => this.#stall(error),
      );
    } catch (error) {
      // One record the decoders did not expect must not hold up the partition behind it.
      result = {
        outcome: 'answered',
        value: {
          ok: false,
          message: `${error instanceof Error ? error.name : 'error'}: ${describeError(error)}`,
        },
      };
    }
    if (result.outcome === 'refused') {
      this.#onFatal(result.error);
      return undefined;
    }
    if (result.outcome === 'given up') {
      this.#recover('the record waiting for it was given up');
      return undefined;
    }
    this.#recover();
    return this.#dispatch(context.topic, result.value);
  }

  async #decode(topic: string, value: Buffer | null): Promise<Decoded> {
    if (topic === this.#topics.requests) {
      const result = await this.#requests.decode(value);
      return result.ok ? { ok: true, event: result.event } : { ok: false, message: result.message };
    }
    const result = await this.#records.decode(value);
    return result.ok ? { ok: true, record: result.record } : { ok: false, message: result.message };
  }

  /** Hands one decoded record to the monitor by the topic it came from. */
  #dispatch(topic: string, decoded: Decoded): DriftReport[] {
    const monitor = this.#monitor;
    if (!decoded.ok) return this.#skip(`${topic}: ${decoded.message}`);
    if ('event' in decoded) return monitor.onRequest(decoded.event);
    const { record } = decoded;
    const fields = typeof record === 'object' && record !== null ? (record as Record<string, unknown>) : {};
    if (typeof fields.request_id !== 'string') {
      return this.#skip(`${topic}: not a streamscore record (no request_id)`);
    }
    if (topic === this.#topics.outcomes) {
      if (typeof fields.observed === 'number' && typeof fields.observed_at === 'number') {
        return monitor.onOutcome(record as Parameters<DriftMonitor['onOutcome']>[0]);
      }
      return this.#skip(`${topic}: not an Outcome record`);
    }
    const prediction = typeof fields.model_version === 'string' && typeof fields.outputs === 'object';
    if (topic === this.#topics.predictions && prediction) {
      return monitor.onPrediction(record as Parameters<DriftMonitor['onPrediction']>[0]);
    }
    if (topic === this.#topics.shadow && prediction && typeof fields.served_version === 'string') {
      return monitor.onShadow(record as Parameters<DriftMonitor['onShadow']>[0]);
    }
    return this.#skip(`${topic}: not a Prediction or ShadowPrediction record`);
  }

  #skip(message: string): DriftReport[] {
    this.#monitor.recordSkip('UNDECODABLE', { message });
    return [];
  }

  #stall(cause: unknown): void {
    if (this.#stalledSince !== undefined) return;
    this.#stalledSince = Date.now();
    this.#log.warn(
      { stall: 'registry', err: cause },
      `stalled (registry): ${STALLS.registry}: ${describeError(cause)}; records wait, none is skipped for it`,
    );
  }

  /** Nothing waits on the registry any more: it answered, or (with `givenUp`) the wait was dropped. */
  #recover(givenUp?: string): void {
    const since = this.#stalledSince;
    if (since === undefined) return;
    this.#stalledSince = undefined;
    const seconds = (Date.now() - since) / 1_000;
    if (givenUp === undefined) this.#log.info({ stall: 'registry', seconds }, 'recovered (registry)');
    else this.#log.info({ stall: 'registry', seconds }, `no longer waiting (registry): ${givenUp}`);
  }
}
