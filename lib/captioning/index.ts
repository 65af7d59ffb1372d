/**
 * lib/captioning: Show, Attend and Tell: Attention, DecoderRNN, its hand-written backward, greedy and beam search, training,
 * metrics (BLEU, CIDEr-D, ROUGE-L as pycocoevalcap), evaluation, heatmaps, reports and the main job.
 * May import: data, encoder, engine, util; never matching or cli.
 */
export * from "./attention";
export * from "./bptt";
export * from "./caption-images";
export * from "./decoder";
export * from "./endings";
export * from "./evaluate";
export * from "./generate";
export * from "./beam-tree";
export * from "./heatmap";
export * from "./metrics";
export * from "./onnx-decode";
export * from "./onnx-train";
export * from "./pipeline";
export * from "./recurrence";
export * from "./report";
export * from "./scst";
export * from "./step-engine";
export * from "./synthetic-eval";
export * from "./train";
