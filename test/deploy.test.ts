/**
 * deploy/: the Kubernetes and KEDA manifests, validated against their schemas and checked against
 * streamscore's own settings.
 *
 * Validator: kubernetes-models with @kubernetes-models/keda (npm, one maintained project; ~20 MB
 * installed, this file runs in about a second). Their models carry JSON-schema validators compiled
 * from the Kubernetes OpenAPI spec and from KEDA's API types, installed by `npm ci`, with no network
 * at test time. Not chosen: kubeconform, a Go binary on neither npm nor PyPI that downloads its
 * schemas unless they are vendored; kubernetes-validate (PyPI), which has no KEDA schema and would
 * bring Python into `npm test`; ajv over vendored schemas, megabytes of generated files to update
 * by hand. Checked on these files (the negative cases below): wrong types, missing required fields,
 * int32 ranges, resource quantities and KEDA's string-only trigger metadata are refused. Unknown
 * fields are not: the OpenAPI schemas leave objects open (kubeconform too, without -strict), so the
 * fields that matter are also read by name below, where a misspelt one fails.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ScaledObject, type IScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1';
import { Deployment, type IDeployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Secret, type IConfigMap, type IContainer, type ISecret } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { loadConfig } from '../src/config/load.js';
import { OPTIONS, type Config } from '../src/config/options.js';

const DEPLOY = 'deploy';
/** Environment variables that Node.js reads, not streamscore. */
const RUNTIME_VARIABLES = new Set(['NODE_OPTIONS']);

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
}

/** The kinds deploy/ may hold, each with its schema. */
const KINDS = [ConfigMap, Secret, Deployment, ScaledObject] as const;

/** Validates one object against the schema of its apiVersion and kind; throws with every problem. */
function validate(object: object): void {
  const { apiVersion, kind } = object as Partial<Manifest>;
  const model = KINDS.find((m) => m.apiVersion === apiVersion && m.kind === kind);
  if (model === undefined) throw new Error(`no schema for ${String(apiVersion)} ${String(kind)}`);
  new model(object as never).validate();
}

function readYaml(path: string): unknown[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((document) => {
    if (document.errors.length > 0) throw new Error(`${path}: ${document.errors[0]!.message}`);
    return document.toJS() as unknown;
  });
}

const kustomization = readYaml(join(DEPLOY, 'kustomization.yaml'))[0] as { resources: string[] };
/** Each object of each file, with the file it came from. */
const manifests = kustomization.resources.flatMap((file) =>
  readYaml(join(DEPLOY, file)).map((object) => ({ file, object: object as Manifest })),
);

function find<T>(kind: string, name: string): T {
  const found = manifests.find(({ object }) => object.kind === kind && object.metadata.name === name);
  assert.ok(found, `deploy/ has no ${kind} ${name}`);
  return found.object as T;
}

const configMap = find<IConfigMap>('ConfigMap', 'streamscore');
const credentials = find<ISecret>('Secret', 'streamscore-credentials');
const serve = find<IDeployment>('Deployment', 'streamscore-serve');
const drift = find<IDeployment>('Deployment', 'streamscore-drift');
const autoscaling = find<IScaledObject>('ScaledObject', 'streamscore-serve');

/** What serve and drift read at start-up from the ConfigMap and the Secret, as they would. */
const environment = { ...configMap.data, ...credentials.stringData };
const config: Config = loadConfig({ env: environment });

function container(deployment: IDeployment): IContainer {
  const containers = deployment.spec!.template.spec!.containers;
  assert.equal(containers.length, 1, `${deployment.metadata!.name}: one container`);
  return containers[0]!;
}

function copy<T>(value: T): T {
  return structuredClone(value);
}

describe('deploy/ manifests', () => {
  it('lists every manifest in kustomization.yaml', () => {
    const files = readdirSync(DEPLOY).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    assert.deepEqual([...kustomization.resources].sort(), files.sort());
  });

  it('are valid against the Kubernetes and KEDA schemas', () => {
    assert.ok(manifests.length >= 5);
    for (const { file, object } of manifests) {
      assert.doesNotThrow(() => validate(object), `${file}: ${object.kind} ${object.metadata.name}`);
    }
  });

  it('would refuse a wrong field type, a missing required field or an unknown kind', () => {
    const portAsText = copy(serve);
    container(portAsText).ports![0]!.containerPort = '9464' as unknown as number;
    assert.throws(() => validate(portAsText), /containerPort must be integer/);

    const noContainers = copy(drift) as { spec: { template: { spec: Partial<{ containers: unknown }> } } };
    delete noContainers.spec.template.spec.containers;
    assert.throws(() => validate(noContainers), /spec must have required property containers/);

    const noSelector = copy(serve) as { spec: Partial<{ selector: unknown }> };
    delete noSelector.spec.selector;
    assert.throws(() => validate(noSelector), /spec must have required property selector/);

    const replicasAsText = copy(autoscaling);
    replicasAsText.spec.maxReplicaCount = '6' as unknown as number;
    assert.throws(() => validate(replicasAsText), /maxReplicaCount must be integer/);

    const tooManyReplicas = copy(autoscaling);
    tooManyReplicas.spec.maxReplicaCount = 2 ** 40;
    assert.throws(() => validate(tooManyReplicas), /maxReplicaCount must match format "int32"/);

    const memoryInWords = copy(serve);
    container(memoryInWords).resources!.limits!.memory = 'half a gigabyte';
    assert.throws(() => validate(memoryInWords), /memory must match format "quantity"/);

    const thresholdAsNumber = copy(autoscaling);
    (thresholdAsNumber.spec.triggers[0]!.metadata as Record<string, unknown>).lagThreshold = 50_000;
    assert.throws(() => validate(thresholdAsNumber), /lagThreshold must be string/);

    const noTriggers = copy(autoscaling) as { spec: Partial<{ triggers: unknown }> };
    delete noTriggers.spec.triggers;
    assert.throws(() => validate(noTriggers), /spec must have required property triggers/);

    assert.throws(() => validate({ ...copy(serve), apiVersion: 'apps/v1beta1' }), /no schema for/);
  });

  it('set only settings streamscore knows, with values it accepts', () => {
    const known = new Set<string>(Object.values(OPTIONS).map((spec) => spec.env));
    for (const name of Object.keys(environment)) assert.ok(known.has(name), `${name} is not a setting`);
    for (const deployment of [serve, drift]) {
      for (const variable of container(deployment).env ?? []) {
        assert.ok(
          known.has(variable.name) || RUNTIME_VARIABLES.has(variable.name),
          `${deployment.metadata!.name}: ${variable.name} is not a setting`,
        );
      }
      const sources = container(deployment).envFrom ?? [];
      assert.deepEqual(
        sources.map((source) => source.configMapRef?.name ?? source.secretRef?.name),
        ['streamscore', 'streamscore-credentials'],
      );
    }
  });

  for (const [deployment, command, port] of [
    [serve, 'serve', config.metricsPort],
    [drift, 'drift', config.driftMetricsPort],
  ] as const) {
    const name = deployment.metadata!.name!;
    it(`${name} runs \`streamscore ${command}\`, probed on its metrics port, stopped after its shutdown timeout`, () => {
      const pod = deployment.spec!.template.spec!;
      const main = container(deployment);
      // The image's entrypoint is the CLI (Dockerfile), so the arguments are the command.
      assert.equal(main.command, undefined);
      assert.deepEqual(main.args, [command]);
      assert.equal(main.image, container(serve).image, 'serve and drift run one image');

      const metrics = main.ports?.find((p) => p.name === 'metrics');
      assert.equal(metrics?.containerPort, port, `the metrics port is ${port}`);
      for (const [probe, path] of [
        [main.startupProbe, '/healthz'],
        [main.livenessProbe, '/healthz'],
        [main.readinessProbe, '/readyz'],
      ] as const) {
        assert.equal(probe?.httpGet?.path, path);
        assert.ok(probe.httpGet.port === 'metrics' || probe.httpGet.port === port, `${path} on ${port}`);
      }

      const grace = pod.terminationGracePeriodSeconds;
      assert.ok(
        grace !== undefined && grace * 1_000 > config.shutdownTimeoutMs,
        `terminationGracePeriodSeconds ${grace} must be longer than STREAMSCORE_SHUTDOWN_TIMEOUT_MS ${config.shutdownTimeoutMs}`,
      );
      for (const bound of ['requests', 'limits'] as const) {
        assert.ok(main.resources?.[bound]?.cpu !== undefined, `${bound}.cpu`);
        assert.ok(main.resources?.[bound]?.memory !== undefined, `${bound}.memory`);
      }
      assert.equal(pod.securityContext?.runAsNonRoot, true);
    });
  }

  it("scales serve on its group's lag, up to the requests topic's partition count", () => {
    const spec = autoscaling.spec;
    assert.equal(spec.scaleTargetRef.name, serve.metadata!.name);
    assert.equal(serve.spec!.replicas, undefined, 'the autoscaler, not the Deployment, sets the count');
    const kafkaTriggers = spec.triggers.filter((trigger) => trigger.type === 'kafka');
    assert.equal(kafkaTriggers.length, 1, 'one kafka trigger');
    const metadata = kafkaTriggers[0]!.metadata as Record<string, string>;
    assert.equal(metadata.bootstrapServers, config.kafkaBrokers.join(','));
    assert.equal(metadata.consumerGroup, config.groupId);
    assert.equal(metadata.topic, config.requestsTopic);
    assert.match(metadata.lagThreshold ?? '', /^[1-9]\d*$/);
    assert.equal(metadata.offsetResetPolicy, config.fromBeginning ? 'earliest' : 'latest');
    assert.equal(
      spec.maxReplicaCount,
      config.topicPartitions,
      'maxReplicaCount is the partition count of the requests topic (STREAMSCORE_TOPIC_PARTITIONS)',
    );
    assert.ok((spec.minReplicaCount ?? 0) >= 1 && spec.minReplicaCount! <= spec.maxReplicaCount);
  });

  it('measures CPU against the request of the serve container', () => {
    const cpu = autoscaling.spec.triggers.filter((trigger) => trigger.type === 'cpu');
    for (const trigger of cpu) {
      // Utilization is a percentage of the container's request, which must be set.
      assert.equal(trigger.metricType, 'Utilization');
      assert.equal(trigger.metadata.containerName, container(serve).name);
      assert.ok(container(serve).resources?.requests?.cpu !== undefined);
      assert.match(trigger.metadata.value ?? '', /^[1-9]\d?$/, 'a percentage below 100');
    }
  });
});
