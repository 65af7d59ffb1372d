/**
 * lib/matching: SCAN, stacked cross attention: the model, its training (ONNX Runtime on CPUs), Recall@K retrieval and the
 * agreement with human judgements.
 * May import: data, encoder, engine, util; never captioning or cli.
 */
export * from "./human-judgements";
export * from "./rank";
export * from "./retrieval";
export * from "./scan";
export * from "./scan-engine";
export * from "./scan-onnx";
export * from "./scan-train";
export * from "./search";
