/**
 * The frozen ResNet-50 as the models read it, from Keras artifacts in memory: the full network (ImageNet classes)
 * and its trunk up to a feature map's layer, and the region features of a normalised batch. No file access, so
 * that `EncoderCNN` (which loads the verified weights from disk) and the web page (which fetches them) run the same.
 */
import * as tf from "@tensorflow/tfjs";
import { FeatureMap, mapShape } from "./feature-maps";

/** The full ResNet-50 and its trunk up to `map`'s layer (the seed's `modules[:-2]` for conv5), frozen. */
export async function resnetModels(
  artifacts: tf.io.ModelArtifacts,
  map: FeatureMap,
): Promise<{ full: tf.LayersModel; trunk: tf.LayersModel }> {
  const full = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  full.trainable = false;
  const trunk = tf.model({
    inputs: full.inputs,
    outputs: full.getLayer(mapShape(map).layer).output as tf.SymbolicTensor,
    name: "encoder_cnn",
  });
  trunk.trainable = false;
  return { full, trunk };
}

/** [B, 224, 224, 3] caffe-normalised → [B, regions, featureDim]: the trunk's map, pooled where `map` says, as rows. */
export function encodeRegions(trunk: tf.LayersModel, images: tf.Tensor4D, map: FeatureMap): tf.Tensor3D {
  const { regions, featureDim, pool } = mapShape(map);
  return tf.tidy(() => {
    let out = trunk.predict(images) as tf.Tensor4D; // [B, side, side, featureDim]
    if (pool > 1) out = tf.avgPool(out, pool, pool, "valid");
    return out.reshape([images.shape[0], regions, featureDim]) as tf.Tensor3D;
  });
}
