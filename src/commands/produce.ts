import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CompressionTypes, Partitioners, type Message } from 'kafkajs';
import type { Config } from '../config/options.js';
import { RecordEncoder } from '../codec/predictions.js';
import type { FeatureEvent } from '../codec/requests.js';
import { connect } from './connect.js';
import { StreamscoreError } from '../errors.js';
import { ModelRepository } from '../models/repository.js';
import type { OutcomeRecord } from '../drift/outcomes.js';
import {
  EventGenerator,
  LabelDrawer,
  readFeatureSpecs,
  readLabelSpec,
  type DriftOptions,
} from '../produce/generator.js';
import { createLogger } from '../telemetry/logger.js';

export interface ProduceOptions {
  count: number;
  /** Events per second; 0 sends as fast as the broker takes them. */
  rate: number;
  keys: number;
  seed: number;
  runId: string;
  /** Feature spec file; default training/<model>_features.json when it exists. */
  spec?: string | undefined;
  drift?: DriftOptions | undefined;
  /** Share of events that repeat an earlier event's features exactly (0 to 1). */
  repeatShare?: number | undefined;
  /** Also write outcomes: labels drawn from the spec's label rule, after the events. */
  outcomes?: OutcomeOptions | undefined;
}

export interface OutcomeOptions {
  /** Share of events (0 to 1) that get an outcome. */
  share: number;
  /** Wait after the last event before the outcomes are written, milliseconds. */
  delayMs: number;
}

/** An outcome to write once the events are out: its request, its key, its label. */
interface PendingOutcome {
  requestId: string;
  key: string;
  label: 0 | 1;
}

/** Records per produce request: large enough to amortise the round trip, small enough to pace. */
const CHUNK = 500;

/** `streamscore produce`: writes synthetic FeatureEvents for the configured model's features. */
export async function produce(config: Config, options: ProduceOptions): Promise<number> {
  const logger = createLogger(config.logLevel);
  const repository = ModelRepository.of(config);
  const version = await repository.resolveVersion(config.model, config.modelVersion);
  const { metadata } = await repository.load(config.model, version);
  const specPath = options.spec ?? join('training', `${config.model}_features.json`);
  if (options.spec !== undefined && !existsSync(specPath)) {
    throw new StreamscoreError('CONFIG_INVALID', `--spec: ${specPath} does not exist`);
  }
  const specs = existsSync(specPath) ? readFeatureSpecs(specPath) : [];
  const generator = new EventGenerator({
    featureNames: metadata.inputs[0]!.features,
    specs,
    seed: options.seed,
    keys: options.keys,
    runId: options.runId,
    drift: options.drift,
    repeatShare: options.repeatShare,
  });

  let labels: LabelDrawer | undefined;
  if (options.outcomes !== undefined) {
    const label = existsSync(specPath) ? readLabelSpec(specPath) : undefined;
    if (label === undefined) {
      throw new StreamscoreError(
        'CONFIG_INVALID',
        `--outcomes: ${specPath} has no "label" section to draw labels from`,
      );
    }
    labels = new LabelDrawer(label, options.seed);
  }
  const outcomes: PendingOutcome[] = [];

  const topics = [config.requestsTopic, ...(labels === undefined ? [] : [config.outcomesTopic])];
  const { kafka, schemas, schemaIds } = await connect(config, logger, topics, {
    [config.requestsTopic]: 'feature-event.avsc',
    ...(labels === undefined ? {} : { [config.outcomesTopic]: 'outcome.avsc' }),
  });
  const encoder = new RecordEncoder<FeatureEvent>(schemas, schemaIds.get(config.requestsTopic)!);
  // The Java client's partitioner, so keys land where any other producer would put them.
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const started = performance.now();
  try {
    let sent = 0;
    while (sent < options.count) {
      const size = Math.min(CHUNK, options.count - sent);
      if (options.rate > 0) {
        // Pace by schedule, not by sleeping a fixed time per chunk, so slow sends do not drift.
        const due = started + (sent / options.rate) * 1_000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      const messages: Message[] = [];
      const chunk = options.rate > 0 ? Math.min(size, Math.max(1, Math.ceil(options.rate / 50))) : size;
      for (let i = 0; i < chunk; i += 1) {
        const event = generator.next();
        messages.push({ key: event.entity_key, value: await encoder.encode(event) });
        if (labels !== undefined) {
          const { label } = labels.draw(event.features);
          if (labels.chance(options.outcomes!.share)) {
            outcomes.push({ requestId: event.request_id, key: event.entity_key, label });
          }
        }
      }
      await producer.send({
        topic: config.requestsTopic,
        messages,
        acks: -1,
        compression: CompressionTypes.None,
      });
      sent += chunk;
    }
    const seconds = (performance.now() - started) / 1_000;
    logger.info(
      {
        topic: config.requestsTopic,
        count: sent,
        seconds: Number(seconds.toFixed(3)),
        rate: Math.round(sent / seconds),
      },
      `produced ${sent} events to ${config.requestsTopic}`,
    );
    if (labels !== undefined) {
      const delayMs = options.outcomes!.delayMs;
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      const outcomeEncoder = new RecordEncoder<OutcomeRecord>(schemas, schemaIds.get(config.outcomesTopic)!);
      for (let from = 0; from < outcomes.length; from += CHUNK) {
        const messages: Message[] = [];
        for (const outcome of outcomes.slice(from, from + CHUNK)) {
          const record = { request_id: outcome.requestId, observed: outcome.label, observed_at: Date.now() };
          // Keyed as the event was, so the outcome lands on its request's partition (co-partitioned).
          messages.push({ key: outcome.key, value: await outcomeEncoder.encode(record) });
        }
        await producer.send({
          topic: config.outcomesTopic,
          messages,
          acks: -1,
          compression: CompressionTypes.None,
        });
      }
      logger.info(
        {
          topic: config.outcomesTopic,
          count: outcomes.length,
          positives: outcomes.filter((o) => o.label === 1).length,
        },
        `produced ${outcomes.length} outcomes to ${config.outcomesTopic}`,
      );
    }
    return 0;
  } finally {
    await producer.disconnect();
    logger.flush();
  }
}
