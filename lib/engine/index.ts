/**
 * lib/engine: What makes the method fast, beneath it: the tfjs backend choice and the kernels it lacks, the optimiser step,
 * and ONNX (onnx/: protobuf, Keras → ONNX, ONNX Runtime sessions).
 * May import: util only; never the method folders.
 */
export * from "./backend";
export * from "./kernels";
export * from "./optimize";
export * from "./onnx";
export * from "./ops";
export * from "./adam";
