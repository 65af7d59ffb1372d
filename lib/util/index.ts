/**
 * lib/util: Small things everything uses: atomic files, checkpoints, float16, seeded random numbers, progress bars, paths,
 * locks, notebook display.
 * May import: nothing of the method but the Vocabulary (checkpoints carry one).
 */
export * from "./checkpoint";
export * from "./display";
export * from "./float16";
export * from "./io";
export * from "./lock";
export * from "./paths";
export * from "./progress";
export * from "./rng";
