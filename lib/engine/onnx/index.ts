/**
 * lib/engine/onnx: ONNX: the protobuf writer and graph builder, Keras → ONNX conversion, and ONNX Runtime sessions.
 * May import: util only.
 */
export * from "./keras";
export * from "./proto";
export * from "./session";
export * from "./ops";
export * from "./params";
