/**
 * A model version as the runtime takes it: its metadata (model.json), the ONNX file's bytes and
 * those of its external-data files.
 * The repository (models/) reads and checks these; the runtime side only consumes them.
 */
export interface ModelInput {
  tensor: string;
  dtype: 'float32';
  /** Feature names in tensor column order. */
  features: string[];
}

export interface ModelOutput {
  /** Name in the Prediction's outputs map. */
  name: string;
  /** ONNX output tensor it is read from. */
  tensor: string;
  /** Column of a 2-D output tensor, or null for a 1-D (per-row) tensor. */
  column: number | null;
  dtype?: string;
  description?: string;
}

export interface ModelFile {
  /** Relative to the version folder, with "/" between folders. */
  path: string;
  sha256: string;
}

export interface ModelMetadata {
  name: string;
  version: string;
  description?: string;
  createdAt?: string;
  /** sha256 of model.onnx. */
  sha256: string;
  /** Every other file the model loads (external data), with its sha256; model.onnx may be listed too. */
  files?: ModelFile[];
  inputs: ModelInput[];
  outputs: ModelOutput[];
  threshold?: number;
  /** Numeric precision of the weights, when not float32 (e.g. "int8"); informational. */
  precision?: string;
  /** A version derived from another (a quantized copy): checked against it before it loads. */
  variant?: VariantOf;
  /** The drift monitor's settings for this version: `roles` overrides a feature's role (docs/drift.md). */
  drift?: { roles?: Record<string, unknown> };
}

/** What a derived version is a variant of, and how far from it it may score. */
export interface VariantOf {
  /** The source version, in the same model folder. */
  of: string;
  limits: {
    /** The largest |variant score - source score| allowed on the reference rows. */
    maxScoreDiff: number;
    /** The smallest share of reference rows where both decide alike at their thresholds. */
    minAgreement: number;
  };
}

export interface ModelVersion {
  metadata: ModelMetadata;
  /** Absolute path of model.onnx, inside the repository. */
  modelPath: string;
  /** The model file's bytes, already checked against metadata.sha256. */
  bytes: Buffer;
  /**
   * The external-data files the model names, keyed by the `location` written in it, each read from
   * the version folder and checked against its sha256 in metadata.files.
   */
  externalData: { path: string; data: Buffer }[];
}
