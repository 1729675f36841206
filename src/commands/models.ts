import type { Config } from '../config/options.js';
import { describeError } from '../errors.js';
import { ModelRunner } from '../inference/runner.js';
import { ModelRepository } from '../models/repository.js';

/** `streamscore models list`: every model and version on disk, each loaded and checked. */
export async function listModels(config: Config): Promise<number> {
  const repository = new ModelRepository(config.modelsDir);
  let failures = 0;
  for (const name of await repository.listModels()) {
    for (const version of await repository.listVersions(name)) {
      try {
        const runner = await ModelRunner.load(await repository.load(name, version), {
          executionProvider: 'cpu',
          threads: 1,
        });
        const { metadata } = runner;
        process.stdout.write(
          `${name}/${version}\tok\t${metadata.inputs[0]!.features.length} features -> ${metadata.outputs.map((o) => o.name).join(', ')}\t${metadata.description ?? ''}\n`,
        );
        await runner.release();
      } catch (error) {
        failures += 1;
        process.stdout.write(`${name}/${version}\trefused\t${describeError(error)}\n`);
      }
    }
  }
  return failures === 0 ? 0 : 1;
}
