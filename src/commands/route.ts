import type { Kafka } from 'kafkajs';
import { hostname, userInfo } from 'node:os';
import { RecordDecoder } from '../codec/records.js';
import { RegistrySchemas } from '../codec/schemas.js';
import type { Config } from '../config/options.js';
import { StreamscoreError, describeError, isStreamscoreError } from '../errors.js';
import { connectAdmin, createKafka, createProducer } from '../kafka/client.js';
import {
  encodeRoutingRecord,
  ensureRoutingTopic,
  readRoutingTopic,
  type RoutingUpdate,
} from '../kafka/routing-topic.js';
import { ModelRepository } from '../models/repository.js';
import { describeSpec, type RoutingEntry } from '../models/routing-record.js';
import { checkSpec, readRouting, type RoutingSpec } from '../models/routing.js';
import { createLogger } from '../telemetry/logger.js';
import { check } from './models.js';
import { registryClient } from './connect.js';

/** What `route set` changes; a field left undefined keeps its current value, '' removes it. */
export interface RouteChanges {
  primary?: string | undefined;
  canary?: string | undefined;
  share?: number | undefined;
  shadows?: string | undefined;
  fallback?: string | undefined;
}

export type RouteAction = { kind: 'set'; changes: RouteChanges } | { kind: 'promote' } | { kind: 'rollback' };

/** The routing an action makes of the current one; ROUTING_INVALID when it cannot apply. */
export function nextSpec(current: RoutingSpec, action: RouteAction): RoutingSpec {
  if (action.kind === 'promote' || action.kind === 'rollback') {
    if (current.canary === undefined) {
      throw new StreamscoreError('ROUTING_INVALID', `nothing to ${action.kind}: the routing has no canary`);
    }
    if (action.kind === 'rollback') return withoutCanary({ ...current });
    const primary = current.canary.version;
    return withoutCanary({ ...current, primary, shadows: current.shadows.filter((v) => v !== primary) });
  }
  const { changes } = action;
  const removed = (value: string) => value === '' || value === 'none';
  const next: RoutingSpec = { ...current, shadows: [...current.shadows] };
  if (changes.primary !== undefined) next.primary = changes.primary;
  if (changes.canary !== undefined) {
    next.canary = removed(changes.canary)
      ? undefined
      : { version: changes.canary, share: changes.share ?? current.canary?.share ?? 0 };
  } else if (changes.share !== undefined) {
    if (current.canary === undefined)
      throw new StreamscoreError('ROUTING_INVALID', '--share needs a canary: give --canary V too');
    next.canary = { version: current.canary.version, share: changes.share };
  }
  if (changes.shadows !== undefined)
    next.shadows = removed(changes.shadows) ? [] : changes.shadows.split(',').map((v) => v.trim());
  if (changes.fallback !== undefined) {
    if (removed(changes.fallback)) delete next.fallback;
    else next.fallback = changes.fallback;
  }
  return withoutCanary(next, false);
}

/** Drops the canary when asked to, or when it takes no share (share 0 routes nothing). */
function withoutCanary(spec: RoutingSpec, always = true): RoutingSpec {
  if (always || spec.canary?.share === 0) {
    const { canary: _dropped, ...rest } = spec;
    return { ...rest, canary: undefined };
  }
  return spec;
}

/**
 * Checks a routing as serve would apply it: the routing rules, then every version it names on
 * disk, loaded and validated. Throws ROUTING_INVALID listing every problem.
 */
export async function validateRouting(
  config: Config,
  spec: RoutingSpec,
  repository = ModelRepository.of(config),
): Promise<void> {
  try {
    checkSpec(spec, `model "${config.model}"`);
  } catch (error) {
    throw new StreamscoreError('ROUTING_INVALID', describeError(error), { context: { model: config.model } });
  }
  const versions = await repository.listVersions(config.model);
  const named = [
    ...(spec.primary === 'latest' ? [] : [spec.primary]),
    ...(spec.canary === undefined ? [] : [spec.canary.version]),
    ...spec.shadows,
    ...(spec.fallback === undefined ? [] : [spec.fallback]),
  ];
  const problems: string[] = [];
  for (const version of new Set(named)) {
    if (!versions.includes(version)) {
      problems.push(
        `version ${version} is not on disk under ${repository.root}/${config.model} (it has: ${versions.join(', ') || 'nothing'})`,
      );
      continue;
    }
    const result = await check(repository, config.model, version, config);
    if (!result.ok) problems.push(`version ${version} is refused (${result.reason}): ${result.message}`);
  }
  if (spec.primary === 'latest') {
    let valid = false;
    for (const version of [...versions].reverse()) {
      if ((await check(repository, config.model, version, config)).ok) {
        valid = true;
        break;
      }
    }
    if (!valid) problems.push(`primary latest: no valid version under ${repository.root}/${config.model}`);
  }
  if (problems.length > 0) {
    throw new StreamscoreError(
      'ROUTING_INVALID',
      `routing refused, nothing written (${describeSpec(spec)}):\n  - ${problems.join('\n  - ')}`,
      { context: { model: config.model } },
    );
  }
}

/** The routing topic's latest record for the configured model, if any. */
export async function readCurrent(config: Config): Promise<RoutingUpdate | undefined> {
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'stderr');
  return readRoutingTopic({
    kafka: createKafka(config, logger),
    topic: config.routingTopic,
    model: config.model,
    decoder: new RecordDecoder(new RegistrySchemas(registryClient(config)), config.maxValueBytes),
    logger,
  });
}

function show(config: Config, update: RoutingUpdate): string {
  const entry = update.entry!;
  const when = new Date(entry.updatedAt).toISOString();
  return (
    `model ${entry.model}: ${describeSpec(entry.spec)}\n` +
    `  ${config.routingTopic} offset ${update.offset}, updated ${when} by ${entry.updatedBy}` +
    `${entry.reason === '' ? '' : `: ${entry.reason}`}\n`
  );
}

/** `route` / `route show`: the model's routing on the routing topic; 3 when it has none. */
export async function showRoute(config: Config, json: boolean): Promise<number> {
  const current = await readCurrent(config);
  if (current?.entry === undefined) {
    process.stdout.write(
      `model ${config.model}: no routing record on ${config.routingTopic}; serve uses its settings' routing\n`,
    );
    return 3;
  }
  process.stdout.write(
    json ? `${JSON.stringify({ offset: current.offset, ...current.entry })}\n` : show(config, current),
  );
  return 0;
}

/** `route set|promote|rollback`: validates the new routing, then writes it; refused with ROUTING_INVALID. */
export async function changeRoute(
  config: Config,
  action: RouteAction,
  options: { reason: string; by: string | undefined },
): Promise<number> {
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'stderr');
  const kafka = createKafka(config, logger);
  const admin = await connectAdmin(kafka, config);
  try {
    if (await ensureRoutingTopic(admin, config.routingTopic))
      process.stderr.write(`created ${config.routingTopic} (compacted)\n`);
  } finally {
    await admin.disconnect();
  }
  const current = await readCurrent(config);
  // No record yet: changes start from the routing serve runs from its settings.
  const base = current?.entry?.spec ?? (await readRouting(config));
  const spec = nextSpec(base, action);
  await validateRouting(config, spec);
  const entry: RoutingEntry = {
    model: config.model,
    spec,
    rollout: current?.entry?.rollout,
    updatedAt: Date.now(),
    updatedBy: options.by ?? `${userInfo().username}@${hostname()}`,
    reason: options.reason === '' ? `route ${action.kind}` : options.reason,
  };
  const offset = await writeRoutingEntry(config, kafka, entry);
  process.stdout.write(
    `${describeSpec(base)}${current?.entry === undefined ? ' (settings)' : ''} -> ${describeSpec(spec)}\n` +
      show(config, { entry, offset }),
  );
  return 0;
}

/** Writes a routing record (acks from all replicas); resolves to its offset. */
export async function writeRoutingEntry(config: Config, kafka: Kafka, entry: RoutingEntry): Promise<string> {
  const value = await encodeRoutingRecord(registryClient(config), config.routingTopic, entry);
  const producer = createProducer(kafka);
  await producer.connect();
  try {
    const [written] = await producer.send({
      topic: config.routingTopic,
      acks: -1,
      messages: [{ key: config.model, value }],
    });
    return written?.baseOffset ?? '?';
  } catch (error) {
    if (isStreamscoreError(error)) throw error;
    throw new StreamscoreError(
      'KAFKA_UNAVAILABLE',
      `Cannot write to ${config.routingTopic}: ${describeError(error)}`,
      {
        cause: error,
        retriable: true,
      },
    );
  } finally {
    await producer.disconnect();
  }
}
