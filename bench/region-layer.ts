/**
 * What the main job's region layer costs in a training step: the main job's decoder (128/128/256, V = 40) on
 * ONNX Runtime, batch 64 of 13-word captions, with the region layer (1,024-wide conv4 features → 256) and on
 * 256-wide features without it, alternating. The difference bounds what computing the layer once per image
 * (instead of once per caption) could save. Figures: docs/main-job.md.
 *
 *   npx tsx bench/region-layer.ts [rounds] [steps]
 */
import * as os from "node:os";
import { DecoderRNN, OnnxTrainer, defaultInitializer, getDefaultConfig } from "../lib/captioning";
import { initBackend } from "../lib/engine";

async function msPerStep(regionLayer: boolean, steps: number): Promise<number> {
  const encoderDim = regionLayer ? 1024 : 256;
  const config = {
    ...getDefaultConfig(40),
    ...{ embedSize: 128, attentionDim: 128, decoderDim: 256, dropout: 0.1, encoderDim },
    ...(regionLayer ? { regionLayer, regionDim: 256 } : {}),
  };
  const decoder = new DecoderRNN(config, defaultInitializer(1));
  const trainer = new OnnxTrainer(config, 49);
  const params = await OnnxTrainer.parameters(decoder);
  const [B, T] = [64, 13];
  const features = new Float32Array(B * 49 * encoderDim).map((_, i) => (i % 97) / 97);
  const captions = new Int32Array(B * T).map((_, i) => (i % T === 0 ? 1 : 4 + (i % 30)));
  const step = (seed: number) => trainer.step(params, features, captions, B, T, { seed, lambda: 0, dropout: 0.1 });
  await step(0); // compiles the graph
  const t0 = performance.now();
  for (let i = 1; i <= steps; i++) await step(i);
  const ms = (performance.now() - t0) / steps;
  await trainer.dispose();
  decoder.dispose();
  return ms;
}

async function main() {
  const [rounds, steps] = [Number(process.argv[2] ?? 2), Number(process.argv[3] ?? 15)];
  await initBackend({ quiet: true });
  console.log(`${os.cpus().length} cores; ms per training step (batch 64, 13 words), ${steps} steps a run`);
  for (let r = 0; r < rounds; r++)
    for (const layer of [true, false])
      console.log(
        `${layer ? "region layer 1,024 → 256" : "256-wide features, no layer"}: ${(await msPerStep(layer, steps)).toFixed(1)}`,
      );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
