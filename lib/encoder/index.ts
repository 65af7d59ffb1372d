/**
 * lib/encoder: The frozen ImageNet ResNet-50 (EncoderCNN): verified weights, batch norms folded, 49 region features per image,
 * the float16 feature cache and the (features, caption) pairs both models train on.
 * May import: data, engine, util.
 */
export * from "./encoder";
export * from "./encoder-onnx";
export * from "./feature-dataset";
export * from "./features";
export * from "./fold";
export * from "./weights";
